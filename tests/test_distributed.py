"""ShardedBank on a local Ray cluster: any number of shards, a killed shard,
a restore from a checkpoint and a rescale each give one key-seeded
ModelBank's results, bit for bit; checkpoints are atomic; keys hash the same
in every process."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from streamrnn import ModelBank
from streamrnn.distributed.groups import GroupIndex, group_ranges, merge_snapshots, split_snapshot
from streamrnn.keys import key_bytes, key_group, key_hash

CONFIG = dict(cell="lstm", input_size=1, hidden_size=4, k1=2, k2=4, lr=0.01)
KEYS = ["a", "b", 7, ("x", 1), 2.5, None, b"raw", *(f"sensor-{i}" for i in range(40))]
# keys of every kind, and for each a key the bank takes for the same one
SAME = [("pump", "pump"), (7, 7.0), (1, True), (3, np.int64(3)), (3, np.uint8(3)), (2.5, np.float32(2.5)),
        ("s", np.str_("s")), (("a", 1), (np.str_("a"), np.float64(1.0))), (b"k", np.bytes_(b"k")),
        (frozenset({1, "a"}), frozenset({"a", 1.0})), (None, None), ((), ())]


def stream(seed: int, n_batches: int, rows: int = 24):
    """Batches over a growing set of keys (new keys keep arriving), some as
    numpy arrays of integer ids."""
    rng = np.random.default_rng(seed)
    for b in range(n_batches):
        if b % 4 == 3:
            keys = rng.integers(100, 100 + 5 * b, size=rows)  # integer ids, as an array
        else:
            pool = KEYS[: 8 + 5 * b]
            keys = [pool[i] for i in rng.integers(0, len(pool), size=rows)]
        yield keys, rng.normal(size=(rows, 1)), rng.normal(size=(rows, 1))


def persistent(model) -> np.ndarray:
    """A model's state (its buffer without the scratch part)."""
    return model.__getstate__()["_buf"]


def assert_same_models(sharded, bank):
    assert sorted(map(repr, sharded.keys)) == sorted(map(repr, bank.keys))
    assert len(sharded) == len(bank)
    for key in bank.keys:
        np.testing.assert_array_equal(persistent(sharded.model(key)), persistent(bank.model(key)))


# ------------------------------------------------------------- key hashing


def test_equal_keys_hash_equal_and_hashes_are_blake2b_of_canonical_bytes():
    for a, b in SAME:
        assert a == b and key_bytes(a) == key_bytes(b) and key_hash(a) == key_hash(b)
    distinct = [k for k, _ in SAME]
    assert len({key_bytes(k) for k in distinct}) == len(set(distinct)) == 11
    assert key_hash("pump-1") == int.from_bytes(hashlib.blake2b(b"spump-1", digest_size=8).digest(), "little")
    assert key_group(7, 4096) == key_hash(7.0) % 4096
    with pytest.raises(TypeError, match="a key of type list has no stable hash"):
        key_hash(["a"])
    with pytest.raises(ValueError, match="NaN"):
        key_hash(("a", float("nan")))


def test_keys_hash_the_same_in_every_process_and_hash_seed():
    keys = [k for pair in SAME for k in pair] + KEYS
    code = ("import json, sys, numpy as np; from streamrnn.keys import key_hash; "
            f"keys = {[repr(k) for k in keys]!r}; "
            "print(json.dumps([str(key_hash(eval(k, {'np': np}))) for k in keys]))")
    here = [str(key_hash(k)) for k in keys]
    for hash_seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout) == here


def test_a_bank_cut_by_group_and_merged_again_is_the_same_bank():
    bank = ModelBank(seed=1, seed_by_key=True, max_idle=4, **CONFIG)
    for keys, X, Y in stream(0, 6):
        bank.learn_many(keys, X, Y)
    bank.evict(["a", 7])
    snapshot = bank.snapshot()
    index = GroupIndex(16)
    parts = split_snapshot(snapshot, index.of(bank.keys))
    assert all((index.of(p["meta"]["keys"]) == g).all() for g, p in parts.items())
    merged = ModelBank.restore(merge_snapshots(list(parts.values()), snapshot))
    assert sorted(map(repr, merged.keys)) == sorted(map(repr, bank.keys))
    for keys, X, Y in stream(1, 3):
        np.testing.assert_array_equal(merged.learn_many(keys, X, Y), bank.learn_many(keys, X, Y))
    assert group_ranges(10, 3).tolist() == [0, 3, 6, 10]
    with pytest.raises(ValueError, match="n_shards must be between 1 and n_groups"):
        group_ranges(4, 5)


def test_the_core_and_the_package_import_no_ray():
    code = ("import sys, streamrnn.bank, streamrnn.distributed; from streamrnn.distributed import ShardedBank, Shard; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("where", ["folder", "memory"])
def test_a_shard_writes_and_reads_its_groups_whole(where, tmp_path):
    """A shard's groups saved to a checkpoint folder (or an fsspec URL) and
    read into a fresh shard continue as the original (no Ray needed)."""
    from streamrnn.distributed import Shard, Storage

    if where == "memory":
        pytest.importorskip("fsspec", reason="fsspec URLs need fsspec (optional)")
        storage = Storage(f"memory://streamrnn-test-{os.getpid()}")
    else:
        storage = Storage(tmp_path)
    storage.make()
    shard = Shard(dict(seed=2, max_idle=5, **CONFIG), n_groups=8)
    for keys, X, Y in stream(7, 4):
        shard.learn_many(keys, X, Y)
    written = shard.write_groups(storage, 1)
    assert sum(n for _, n in written.values()) == len(shard.keys())
    assert sorted(name for name, _ in written.values()) == sorted(n for n in storage.names() if n.endswith(".npz"))
    copy = Shard(dict(seed=2, max_idle=5, **CONFIG), n_groups=8)
    assert copy.read_groups(storage, {g: name for g, (name, _) in written.items()}, batch=4) == len(shard.keys())
    for keys, X, Y in stream(8, 3):
        np.testing.assert_array_equal(copy.learn_many(keys, X, Y), shard.learn_many(keys, X, Y))
    other = Shard(dict(seed=3, max_idle=5, **CONFIG), n_groups=8)
    group, (name, _) = next(iter(written.items()))
    with pytest.raises(ValueError, match="another configuration, seed or max_idle"):
        other.read_groups(storage, {group: name}, batch=4)
    with pytest.raises(ValueError, match="holds keys of other groups"):
        copy.read_groups(storage, {(group + 1) % 8: name}, batch=4)


# ------------------------------------------------------------------ on Ray


def test_one_two_and_three_shards_equal_one_key_seeded_bank(ray):
    from streamrnn.distributed import ShardedBank

    bank = ModelBank(seed=5, seed_by_key=True, max_idle=3, **CONFIG)
    sharded = [ShardedBank(n_shards=n, n_groups=64, seed=5, max_idle=3, **CONFIG) for n in (1, 2, 3)]
    for b, (keys, X, Y) in enumerate(stream(2, 10)):
        expected = bank.learn_many(keys, X, Y)
        for s in sharded:
            np.testing.assert_array_equal(s.learn_many(keys, X, Y), expected)
        if b in (4, 8):  # explicit evictions beside the idle ones
            gone = bank.keys[:3]
            bank.evict(gone)
            for s in sharded:
                s.evict(gone)
        query = ["a", "never-seen", *bank.keys[:5], "a"]
        X0 = np.linspace(-1, 1, len(query))[:, None]
        for s in sharded:
            np.testing.assert_array_equal(s.predict_many(query, X0), bank.predict_many(query, X0))
            np.testing.assert_array_equal(s.forecast_many(query, 3, X0), bank.forecast_many(query, 3, X0))
    for s in sharded:
        assert_same_models(s, bank)
        with pytest.raises(KeyError):
            s.evict(["a", "not-there"])
        with pytest.raises(ValueError, match=r"X must have shape \(2, 1\)"):
            s.learn_many(["a", "b"], np.zeros((3, 1)), np.zeros((2, 1)))
        with pytest.raises(TypeError, match="has no stable hash"):
            s.learn_many(["a", 1j], np.zeros((2, 1)), np.zeros((2, 1)))
    assert "a" in sharded[1] and sharded[1].recoveries == 0
    # the whole state as one ModelBank snapshot, and back
    again = ModelBank.restore(sharded[2].snapshot())
    back = ShardedBank.from_snapshot(bank.snapshot(), n_shards=2, n_groups=64)
    for keys, X, Y in stream(3, 2):
        expected = bank.learn_many(keys, X, Y)
        np.testing.assert_array_equal(again.learn_many(keys, X, Y), expected)
        np.testing.assert_array_equal(back.learn_many(keys, X, Y), expected)


def test_killed_shards_and_a_lost_driver_lose_nothing(ray, tmp_path):
    from streamrnn.distributed import ShardedBank

    def die_in_next_learn(shard):  # (a local function: Ray sends it by value)
        """Run inside a shard's process: its next learn_many ends the process."""
        def die(*args):
            os._exit(1)

        shard.bank.learn_many = die

    data = list(stream(4, 12))
    bank = ModelBank(seed=6, seed_by_key=True, max_idle=5, **CONFIG)
    sharded = ShardedBank(n_shards=2, n_groups=32, seed=6, max_idle=5, **CONFIG)
    for b, (keys, X, Y) in enumerate(data):
        if b == 3:
            sharded.checkpoint(tmp_path, offset=b)
        if b == 5:
            ray.kill(sharded._actors[0])  # a process killed between calls
        if b == 7:  # a process that dies inside a call
            ray.get(sharded._actors[1].__ray_call__.remote(die_in_next_learn))
        np.testing.assert_array_equal(sharded.learn_many(keys, X, Y), bank.learn_many(keys, X, Y))
    assert sharded.recoveries == 2
    assert_same_models(sharded, bank)
    # the driver lost: restore the checkpoint and replay the stream from its offset
    del sharded
    restored, offset = ShardedBank.restore(tmp_path, n_shards=1)  # (on fewer shards than it was taken)
    assert offset == 3 and restored.n_shards == 1
    again = ModelBank(seed=6, seed_by_key=True, max_idle=5, **CONFIG)
    for keys, X, Y in data:
        again.learn_many(keys, X, Y)
    for keys, X, Y in data[offset:]:
        restored.learn_many(keys, X, Y)
    assert_same_models(restored, again)


def test_batches_in_flight_give_the_answers_of_waiting_calls_through_shard_deaths(ray, tmp_path):
    from streamrnn.distributed import ShardedBank

    def die_in_learn(shard, after):  # (a local function: Ray sends it by value)
        """Run inside a shard's process: its learn_many call number ``after``
        (counting from 0) ends the process."""
        learn, count = shard.bank.learn_many, [0]

        def maybe_die(*args):
            count[0] += 1
            if count[0] > after:
                os._exit(1)
            return learn(*args)

        shard.bank.learn_many = maybe_die

    data = list(stream(9, 14))
    bank = ModelBank(seed=2, seed_by_key=True, max_idle=5, **CONFIG)
    expected = [bank.learn_many(keys, X, Y) for keys, X, Y in data]
    sharded = ShardedBank(n_shards=2, n_groups=32, seed=2, max_idle=5, **CONFIG)
    flights, got = [], {}
    for b, (keys, X, Y) in enumerate(data):
        if b == 4:
            sharded.checkpoint(tmp_path, offset=b)  # (collects the batches in flight first)
            assert not sharded._in_flight
        if b == 6:  # dies inside the second of the three batches sent next
            ray.get(sharded._actors[0].__ray_call__.remote(die_in_learn, 1))
        flights.append((b, sharded.learn_many_async(keys, X, Y)))
        if b == 9:
            ray.kill(sharded._actors[1])  # killed with batches in flight
        if len(flights) == 3:  # three batches in flight, the oldest collected
            b0, flight = flights.pop(0)
            got[b0] = flight.result()
            assert flight.done()
    for b0, flight in flights:
        got[b0] = flight.result()
    for b, out in enumerate(expected):
        np.testing.assert_array_equal(got[b], out)
    assert sharded.recoveries == 2
    assert_same_models(sharded, bank)
    # collected out of order: the later one first collects the earlier ones
    keys, X, Y = data[0]
    first, second = sharded.learn_many_async(keys, X, Y), sharded.learn_many_async(keys, X, Y)
    out2 = second.result()
    assert first.done()
    np.testing.assert_array_equal(first.result(), bank.learn_many(keys, X, Y))
    np.testing.assert_array_equal(out2, bank.learn_many(keys, X, Y))


def test_a_bounded_log_recovers_a_killed_shard_from_the_last_copy(ray):
    from streamrnn.distributed import ShardedBank

    bank = ModelBank(seed=8, seed_by_key=True, max_idle=5, **CONFIG)
    sharded = ShardedBank(n_shards=2, n_groups=32, seed=8, max_idle=5, **CONFIG)
    sharded.max_log = 2
    for b, (keys, X, Y) in enumerate(stream(8, 9)):
        if b == 5:
            assert len(sharded._log) <= 2 and sharded._base[0] == "snapshot"  # never more than max_log kept
            ray.kill(sharded._actors[1])
        np.testing.assert_array_equal(sharded.learn_many(keys, X, Y), bank.learn_many(keys, X, Y))
    assert sharded.recoveries == 1
    assert_same_models(sharded, bank)


def test_rescaling_two_three_one_shards_keeps_every_model(ray):
    from streamrnn.distributed import ShardedBank

    bank = ModelBank(seed=7, seed_by_key=True, max_idle=4, **CONFIG)
    sharded = ShardedBank(n_shards=2, n_groups=64, seed=7, max_idle=4, **CONFIG)
    for b, (keys, X, Y) in enumerate(stream(5, 9)):
        if b in (3, 6):
            sharded.rescale({3: 3, 6: 1}[b])
            assert sharded.n_shards == {3: 3, 6: 1}[b]
            assert_same_models(sharded, bank)
        np.testing.assert_array_equal(sharded.learn_many(keys, X, Y), bank.learn_many(keys, X, Y))
    assert_same_models(sharded, bank)


def test_an_interrupted_checkpoint_leaves_the_previous_one(ray, tmp_path, monkeypatch):
    from streamrnn.distributed import ShardedBank, Storage
    from streamrnn.distributed.checkpoint import read_manifest

    data = list(stream(6, 6))
    sharded = ShardedBank(n_shards=1, n_groups=16, seed=8, betas=(0.9, 0.99), **CONFIG)  # (a tuple: JSON's list)
    for keys, X, Y in data[:3]:
        sharded.learn_many(keys, X, Y)
    first = sharded.checkpoint(tmp_path, offset={"partition": 0, "offset": 3})
    assert {n for _, n, _ in first["groups"]} | {"manifest.json"} == set(os.listdir(tmp_path))
    at_first = sharded.snapshot()
    for keys, X, Y in data[3:]:
        sharded.learn_many(keys, X, Y)

    def interrupted(self, name, value):
        raise KeyboardInterrupt  # the driver stops before the manifest

    monkeypatch.setattr(Storage, "write_json", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sharded.checkpoint(tmp_path, offset=6)
    monkeypatch.undo()
    names = set(os.listdir(tmp_path))
    assert any(n.endswith("-000002.npz") for n in names)  # the group files of the second were written
    with open(tmp_path / "group-00001-000002.npz", "wb") as f:
        f.write(b"PK\x03\x04 torn")  # and one torn: no manifest names it
    manifest = read_manifest(Storage(tmp_path))
    assert manifest == first and all(n in names for _, n, _ in manifest["groups"])
    restored, offset = ShardedBank.restore(tmp_path, n_shards=1)
    assert offset == {"partition": 0, "offset": 3}
    reference = ModelBank.restore(at_first)
    assert_same_models(restored, reference)
    # the next complete checkpoint replaces it and removes the files of earlier ones
    second = restored.checkpoint(tmp_path, offset=3)  # (the interrupted one's number again: its files overwritten)
    assert second["checkpoint"] == 2
    assert {n for _, n, _ in second["groups"]} | {"manifest.json"} == set(os.listdir(tmp_path))
    with open(tmp_path / "manifest.json", "w") as f:
        json.dump({**second, "groups": [[0, "../../etc/passwd", 1]]}, f)
    with pytest.raises(ValueError, match="does not name its group's file"):
        ShardedBank.restore(tmp_path)


def test_the_ray_fleet_example_recovers_and_restores_exactly(ray, capsys):
    import runpy
    from pathlib import Path

    example = runpy.run_path(str(Path(__file__).parents[1] / "examples" / "ray_fleet.py"), run_name="example")
    result = example["main"](["--sensors", "60", "--steps", "17", "--hidden-size", "4", "--shards", "1"])
    out = capsys.readouterr().out
    assert result["recoveries"] == 1 and result["offset"] == 2
    assert result["equal"] and result["models_equal"] and result["replayed_equal"]
    assert "predictions equal to one in-process bank's: True" in out
    assert result["mae"]["LSTM"] > 0 and result["mae"]["persistence"] > 0


def test_shards_of_a_local_cluster_run_at_the_drivers_priority(ray):
    # Ray lowers its workers' priority (niceness 15) unless told otherwise: the
    # local cluster started by streamrnn must not, or any busy process would
    # take the cores from the shards.
    @ray.remote
    class Probe:
        def niceness(self):
            return os.nice(0)

    probe = Probe.remote()
    try:
        assert ray.get(probe.niceness.remote()) == os.nice(0)
    finally:
        ray.kill(probe)
