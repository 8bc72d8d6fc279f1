"""The keyed River wrappers sharded over Ray actors: any number of shards, a
killed shard, a restore from a checkpoint and a rescale each give one
in-process key-seeded wrapper's results on the same rows, bit for bit,
``max_idle`` evictions included; so does the command line with ``--shards``."""

import io
import pickle

import numpy as np
import pytest

from streamrnn import LSTMForecaster, load, save
from streamrnn.anomaly import PredictiveDetector
from streamrnn.distributed.groups import GroupIndex
from streamrnn.distributed.keyed_shard import KeyedShard, empty_like, merge_wrappers, split_wrapper
from streamrnn.keyed import KeyedDetector, KeyedForecaster
from streamrnn.keys import key_seed

KEYS = ["a", "b", 7, ("x", 1), None, *(f"sensor-{i}" for i in range(30))]


def rows(seed: int, n: int, pool: int = 12):
    """``n`` rows ``(key, value)`` over the first keys of ``KEYS`` (more
    keys as the stream goes on: some come, go idle, come back)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        size = min(len(KEYS), pool + t // 10)
        out.append((KEYS[int(rng.integers(0, size))], float(np.sin(t / 3) + rng.normal(scale=0.1))))
    return out


def forecaster(max_idle=None, seed=3):
    return KeyedForecaster(LSTMForecaster(hidden_size=3), seed=seed, max_idle=max_idle, seed_by_key=True)


def detector(max_idle=None, seed=3):
    return KeyedDetector(PredictiveDetector(hidden_size=3, grace_period=3), seed=seed, max_idle=max_idle,
                         seed_by_key=True)


def forecaster_of(data, key):
    """The model of ``key`` in a wrapper fed every row of ``data``."""
    bank = forecaster()
    for k, y in data:
        bank.learn_one(k, y)
    return bank[key]


def state(value):
    """A model's state as nested plain data, arrays as their dtype and bytes
    (equal for equal states, whatever objects they share; pickle's bytes
    depend on that)."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, float):
        return ("float", value.hex()) if value == value else ("float", "nan")
    if isinstance(value, dict):
        return ("dict", type(value).__name__, [(repr(k), state(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [state(v) for v in value])
    if hasattr(value, "__dict__") and not isinstance(value, type):
        got = value.__getstate__() if hasattr(value, "__getstate__") else vars(value)
        return (type(value).__qualname__, state(got if isinstance(got, dict) else vars(value)))
    return value


def assert_same_wrappers(got, expected):
    assert sorted(map(repr, got.keys)) == sorted(map(repr, expected.keys))
    for key in expected.keys:
        assert state(got[key]) == state(expected[key])


# ------------------------------------------------------------- no Ray


def test_a_key_seeded_wrapper_seeds_by_key_and_keeps_the_mode_through_save_load_and_pickle():
    bank = forecaster(max_idle=4)
    for key, y in rows(0, 40):
        bank.learn_one(key, y)
    assert all(bank[k].seed == key_seed(3, k) for k in bank.keys)
    # a key's model does not depend on the keys before it: one wrapper fed
    # only "a"'s rows holds the model a forecaster seeded key_seed(3, "a") gets
    other = forecaster(max_idle=None)
    alone = LSTMForecaster(hidden_size=3, seed=key_seed(3, "a"))
    for key, y in rows(0, 40):
        if key == "a":
            other.learn_one(key, y)
            alone.learn_one(y)
    assert state(other["a"]) == state(alone) and state(other["a"]) == state(forecaster_of(rows(0, 40), "a"))
    data = io.BytesIO()
    save(bank, data)
    data.seek(0)
    for copy in (load(data), pickle.loads(pickle.dumps(bank))):
        assert copy.seed_by_key is True and copy.forecast("b", 2) == bank.forecast("b", 2)
    assert KeyedDetector(PredictiveDetector()).seed_by_key is False
    with pytest.raises(TypeError, match="seed_by_key must be True or False"):
        KeyedForecaster(LSTMForecaster(), seed=0, seed_by_key="yes")
    with pytest.raises(TypeError, match="has no stable hash"):
        forecaster().learn_one(1j, 1.0)


def test_shards_fed_the_stream_positions_equal_one_wrapper_with_max_idle():
    """Two in-process shards, each given its keys' rows and their positions
    in the whole stream, evict and learn exactly as one wrapper (no Ray)."""
    data = rows(1, 200)
    one = detector(max_idle=15)
    index = GroupIndex(8)
    shards = [KeyedShard(empty_like(detector(max_idle=15)), 8) for _ in range(2)]
    for t, (key, y) in enumerate(data, start=1):
        expected, new = one.score_one(key, {"v": y}), key not in one
        one.learn_one(key, {"v": y})
        shard = shards[int(index.of([key])[0]) % 2]
        answers, errors, made = shard.ask_learn_many([key], [({"v": y},)], [({"v": y},)], np.array([t]),
                                                     "score_one")
        assert answers == [expected] and errors == [] and made == new
    merged = merge_wrappers([s.group_parts(clock=len(data))[g] for s in shards
                             for g in s.group_parts(clock=len(data))], one)
    assert_same_wrappers(merged, one)
    assert list(merged._last_seen.items()) == list(one._last_seen.items())
    assert len(one) < len(set(k for k, _ in data))  # (some keys were evicted)
    parts = split_wrapper(one, index.of(one.keys))
    assert sorted(sum((p.keys for p in parts.values()), []), key=repr) == sorted(one.keys, key=repr)
    with pytest.raises(ValueError, match="starts from a key-seeded wrapper"):
        KeyedShard(KeyedDetector(PredictiveDetector(), seed=0), 8)


# ------------------------------------------------------------------ on Ray


def batches(data, size=16):
    for start in range(0, len(data), size):
        chunk = data[start:start + size]
        yield [k for k, _ in chunk], [y for _, y in chunk]


def test_one_two_and_three_shards_equal_one_in_process_wrapper(ray):
    from streamrnn.distributed import ShardedKeyedDetector, ShardedKeyedForecaster

    data = rows(2, 160)
    one = forecaster(max_idle=20)
    sharded = [ShardedKeyedForecaster(LSTMForecaster(hidden_size=3), seed=3, max_idle=20, n_shards=n, n_groups=16)
               for n in (1, 2, 3)]
    for b, (keys, ys) in enumerate(batches(data)):
        expected = []
        for key, y in zip(keys, ys):
            one.learn_one(key, y)
            expected.append(one.forecast(key, 2))
        for s in sharded:
            assert s.learn_forecast_many(keys, ys, 2) == expected
        if b == 4:
            gone = one.keys[:2]
            one.evict(gone)
            for s in sharded:
                s.evict(gone)
        query = ["a", "never-seen", *one.keys[:4]]
        for s in sharded:
            assert s.forecast_many(query, 3) == [one.forecast(k, 3) for k in query]
            assert s.forecast_interval("a", 2, 0.8) == one.forecast_interval("a", 2, 0.8)
    for s in sharded:
        assert sorted(map(repr, s.keys)) == sorted(map(repr, one.keys)) and len(s) == len(one)
        gathered = s.to_keyed()
        assert_same_wrappers(gathered, one)
        assert (gathered._clock, gathered._n_created) == (one._clock, one._n_created)
        assert state(s["b"]) == state(one["b"]) if "b" in one else "b" not in s
        with pytest.raises(KeyError):
            s.evict(["not-there"])
        with pytest.raises(ValueError, match="values must have one entry per key: 2 keys, 1 values"):
            s.learn_many(["a", "b"], [1.0])
        with pytest.raises(TypeError, match="has no stable hash"):
            s.learn_one(1j, 1.0)
    # single rows, and a value the model refuses (not counted, as in-process)
    s = sharded[1]
    with pytest.raises(ValueError):
        s.learn_one("a", float("nan"))
    with pytest.raises(ValueError):
        one.learn_one("a", float("nan"))
    s.learn_one("c", 1.5)
    one.learn_one("c", 1.5)
    assert s.forecast("c", 2) == one.forecast("c", 2)
    # with a bounded log, a killed shard restarts from the last copy of the models
    s.max_log = 2
    for b, (keys, ys) in enumerate(batches(rows(6, 64))):
        if b == 3:
            assert len(s._log) <= 2 and s._base[0] == "snapshot"  # (never more than max_log kept)
            ray.kill(s._actors[1])
        s.learn_many(keys, ys)
        for key, y in zip(keys, ys):
            one.learn_one(key, y)
    assert s.recoveries == 1
    assert_same_wrappers(s.to_keyed(), one)
    # the in-process wrapper spread over shards continues exactly
    back = ShardedKeyedForecaster.from_keyed(one, n_shards=2, n_groups=16)
    keys, ys = next(batches(rows(3, 16)))
    back.learn_many(keys, ys)
    for key, y in zip(keys, ys):
        one.learn_one(key, y)
    assert_same_wrappers(back.to_keyed(), one)
    with pytest.raises(ValueError, match="seed_by_key=True"):
        ShardedKeyedForecaster.from_keyed(KeyedForecaster(LSTMForecaster(), seed=0))
    # the detector: score, then learn, row by row
    alone = detector(max_idle=25)
    sharded_detector = ShardedKeyedDetector(PredictiveDetector(hidden_size=3, grace_period=3), seed=3, max_idle=25,
                                            n_shards=2, n_groups=16)
    for keys, ys in batches(rows(4, 96)):
        xs = [{"v": y} for y in ys]
        expected = []
        for key, x in zip(keys, xs):
            expected.append(alone.score_one(key, x))
            alone.learn_one(key, x)
        assert sharded_detector.score_learn_many(keys, xs) == expected
    assert sharded_detector.score_many(["a", "zz"], [{"v": 9.0}] * 2) == [alone.score_one(k, {"v": 9.0})
                                                                        for k in ("a", "zz")]
    assert_same_wrappers(sharded_detector.to_keyed(), alone)
    for s in (*sharded, back, sharded_detector):
        s.close()


def test_killed_shards_a_lost_driver_and_rescaling_lose_nothing(ray, tmp_path):
    import os

    from streamrnn.distributed import ShardedKeyedDetector

    def die_in_next_learn(shard):  # (a local function: Ray sends it by value)
        def die(*args):
            os._exit(1)

        shard.wrapper.learn_one = die

    data = list(batches(rows(5, 192)))
    one = detector(max_idle=20)
    sharded = ShardedKeyedDetector(PredictiveDetector(hidden_size=3, grace_period=3), seed=3, max_idle=20,
                                   n_shards=2, n_groups=16)
    for b, (keys, ys) in enumerate(data):
        xs = [{"v": y} for y in ys]
        if b == 3:
            sharded.checkpoint(tmp_path, offset=b)
        if b == 5:
            ray.kill(sharded._actors[0])  # a process killed between calls
        if b == 7:  # a process that dies inside a call
            ray.get(sharded._actors[1].__ray_call__.remote(die_in_next_learn))
        if b == 9:
            sharded.rescale(3)
        if b == 10:
            sharded.rescale(1)
        expected = []
        for key, x in zip(keys, xs):
            expected.append(one.score_one(key, x))
            one.learn_one(key, x)
        assert sharded.score_learn_many(keys, xs) == expected, b
    assert sharded.recoveries == 2 and sharded.n_shards == 1
    assert_same_wrappers(sharded.to_keyed(), one)
    sharded.close()
    # the driver lost: restore the checkpoint (on 3 shards) and replay the stream from its offset
    restored, offset = ShardedKeyedDetector.restore(tmp_path, n_shards=3)
    assert offset == 3 and restored.n_shards == 3
    for keys, ys in data[offset:]:
        restored.learn_many(keys, [{"v": y} for y in ys])
    gathered = restored.to_keyed()
    assert_same_wrappers(gathered, one)
    assert (gathered._clock, gathered._n_created) == (one._clock, one._n_created)
    names = set(os.listdir(tmp_path))
    assert "manifest.json" in names and any(n.startswith("wrapper-") for n in names)
    restored.checkpoint(tmp_path, offset=len(data))
    assert sum(n.startswith("wrapper-") for n in os.listdir(tmp_path)) == 1  # the earlier one's removed
    from streamrnn.distributed import ShardedBank

    with pytest.raises(ValueError, match="a checkpoint of a sharded keyed"):
        ShardedBank.restore(tmp_path)
    restored.close()


# ------------------------------------------------------------ command line


def fleet_csv(path, n=300):
    """Two busy sensors (past the detectors' grace period of 100 rows) and
    rare ones that come and go (evicted by --max-idle)."""
    rng = np.random.default_rng(9)
    lines = ["time,sensor,temp,load"]
    for t in range(n):
        sensor = f"s{t % 2}" if t % 5 else f"rare{int(rng.integers(0, 6))}"
        spike = 8.0 if t in (252, 281) else 0.0
        lines.append(f"2026-01-01T00:{t // 60:02d}:{t % 60:02d},{sensor},{np.sin(t / 4) + spike:.3f},"
                     f"{rng.normal():.3f}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run_cli(argv):
    from streamrnn.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    status = main(argv, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_the_command_line_with_shards_writes_what_one_process_writes(ray, tmp_path):
    data = fleet_csv(tmp_path / "fleet.csv")
    columns = ["-t", "temp", "load", "--key", "sensor", "--max-idle", "12", "--no-progress"]
    common = [*columns, "--hidden-size", "3"]
    detect = ["detect", data, *common, "--time", "time"]
    status, alone, err = run_cli([*detect, "--seed-by-key", "--save", str(tmp_path / "alone.npz")])
    assert status == 0, err
    scores = [line.split(",")[2] for line in alone.splitlines()[1:]]  # (empty while a key warms up)
    assert any(float(score) > 0 for score in scores if score)
    status, sharded, err = run_cli([*detect, "--shards", "2", "--save", str(tmp_path / "sharded.npz"),
                                    "--checkpoint-every", "40"])
    assert status == 0, err
    assert sharded == alone
    saved = [load(tmp_path / name) for name in ("sharded.npz", "alone.npz")]  # (one wrapper each)
    assert_same_wrappers(*saved)
    assert [(w._clock, w._n_created, w.max_idle, w.seed_by_key) for w in saved] == [
        (300, saved[1]._n_created, 12, True)] * 2
    status, arrival, _ = run_cli(detect)  # (seeded by arrival order: other models)
    assert status == 0 and arrival != alone
    # resumed from the saved wrapper, on 3 shards and in one process: the same rows
    rest = ["detect", fleet_csv(tmp_path / "more.csv", 60), *columns, "--time", "time"]
    outs = [run_cli([*rest, "--load", str(tmp_path / name), *extra])
            for name, extra in (("alone.npz", []), ("sharded.npz", ["--shards", "3"]))]
    assert outs[0][0] == outs[1][0] == 0 and outs[0][1] == outs[1][1]
    forecast = ["forecast", data, *common, "-H", "2", "--interval", "0.9", "--with-target"]
    assert run_cli([*forecast, "--seed-by-key"])[1] == run_cli([*forecast, "--shards", "3"])[1]
    # what --shards refuses
    assert run_cli(["detect", data, *common, "--save", str(tmp_path / "arrival.npz")])[0] == 0
    for argv, message in (
            ([*rest, "--load", str(tmp_path / "arrival.npz"), "--shards", "2"], "saved without --seed-by-key"),
            (["detect", data, "-t", "temp", "--shards", "2"], "--shards needs --key"),
            ([*detect, "--ray-address", "auto"], "--ray-address needs --shards"),
            (["forecast", data, "-t", "temp", "--global", "--shards", "2"], "not to --global"),
            ([*rest, "--load", str(tmp_path / "alone.npz"), "--seed-by-key"], "a loaded model keeps")):
        status, _, err = run_cli(argv)
        assert status == 2 and message in err, (argv, err)


def test_without_ray_shards_is_a_usage_error(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    data = fleet_csv(tmp_path / "fleet.csv", 5)
    status, _, err = run_cli(["detect", data, "-t", "temp", "--key", "sensor", "--shards", "2"])
    assert status == 2 and 'pip install "streamrnn[ray]"' in err


def test_the_keyed_shards_and_the_command_line_import_no_ray():
    import subprocess
    import sys

    code = ("import sys, streamrnn.cli.sharded, streamrnn.cli.commands; "
            "from streamrnn.distributed import ShardedKeyedForecaster, ShardedKeyedDetector, KeyedShard; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
