"""ModelBank: equal to separate learners, thread-count independent, restorable."""

import pickle
import subprocess
import sys
import textwrap
import threading
import time

import numba
import numpy as np
import pandas as pd
import pytest

from streamrnn import ModelBank, OnlineRNN, SharedWeightsBank
from streamrnn.kernels import layout as L
from streamrnn.kernels.recurrent import claim_groups, groups_done
from streamrnn.keys import key_hash, key_seed
from streamrnn.workers import run_chunks

CONFIG = dict(cell="lstm", input_size=2, hidden_size=6, k1=2, k2=4, lr=0.01)


def batches(rng, keys=("a", "b", "c", 7, ("x", 1)), n_batches=6, rows=12):
    for _ in range(n_batches):
        ks = [keys[i] for i in rng.integers(0, len(keys), size=rows)]
        yield ks, rng.normal(size=(rows, 2)), rng.normal(size=(rows, 1))


def test_a_bank_equals_separate_learners_bit_for_bit(rng):
    bank = ModelBank(seed=10, **CONFIG)
    separate, order = {}, []
    for keys, X, Y in batches(rng):
        out = bank.learn_many(keys, X, Y)
        for i, k in enumerate(keys):
            if k not in separate:
                separate[k] = OnlineRNN(**CONFIG, seed=10 + len(order))
                order.append(k)
            np.testing.assert_array_equal(out[i], separate[k].learn(X[i], Y[i]))
    assert bank.keys == order
    for k, model in separate.items():
        persist = bank._lay[L.L_PERSIST]  # (the rest is scratch: not model state)
        np.testing.assert_array_equal(bank.model(k)._buf[:persist], model._buf[:persist])
    X = rng.normal(size=(4, 2))
    keys = ["a", "a", "c", "new"]
    fresh = OnlineRNN(**CONFIG, seed=10 + len(order))
    expected = np.vstack([separate["a"].predict_many(X[:2]), separate["c"].predict_many(X[2:3]),
                          fresh.predict_many(X[3:])])
    np.testing.assert_array_equal(bank.predict_many(keys, X), expected)
    assert "new" not in bank


def test_results_do_not_depend_on_the_thread_count(rng):
    data = list(batches(rng, keys=tuple(range(40)), rows=200))
    outs = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(threads)
        bank = ModelBank(seed=0, **CONFIG)
        outs.append([bank.learn_many(*b) for b in data] + [bank._buf.copy()])
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_snapshot_restore_and_continue_equals_an_uninterrupted_run(rng):
    data = list(batches(rng))
    whole = ModelBank(seed=1, **CONFIG)
    part = ModelBank(seed=1, **CONFIG)
    for b in data[:3]:
        whole.learn_many(*b)
        part.learn_many(*b)
    part.evict(["b"])
    whole.evict(["b"])
    restored = ModelBank.restore(part.snapshot())
    thawed = pickle.loads(pickle.dumps(part))
    for b in data[3:]:
        expected = whole.learn_many(*b)
        np.testing.assert_array_equal(restored.learn_many(*b), expected)
        np.testing.assert_array_equal(thawed.learn_many(*b), expected)
    assert restored.keys == whole.keys
    for k in whole.keys:
        np.testing.assert_array_equal(restored.model(k).state_dict()["head.weight"],
                                      whole.model(k).state_dict()["head.weight"])


def test_prediction_and_forecast_change_nothing_and_forecast_feeds_back(rng):
    bank = ModelBank(seed=2, cell="gru", hidden_size=5, k2=4)
    y = np.sin(np.arange(60) / 4)
    for t in range(59):
        bank.learn_many(["s", "t"], [[y[t]], [y[t] * 2]], [[y[t + 1]], [y[t + 1] * 2]])
    before = pickle.dumps(bank)
    f = bank.forecast_many(["s", "t"], 5, [[y[59]], [2 * y[59]]])
    bank.predict_many(["s"], [[0.3]])
    assert pickle.dumps(bank) == before
    single = bank.model("s")
    np.testing.assert_allclose(f[0, :, 0], single.forecast(np.r_[y[59], np.zeros(4)][:, None], [(0, 1)])[:, 0],
                               rtol=1e-6)
    assert f.shape == (2, 5, 1)


def test_key_seeded_models_do_not_depend_on_arrival_order_or_bank(rng):
    """With seed_by_key, each key's model is OnlineRNN(seed=key_seed(seed, key)),
    so two banks holding halves of the keys give one bank's results."""
    keys = ("a", "b", "c", 7, ("x", 1), np.int64(3))
    data = list(batches(rng, keys=keys, n_batches=5))
    one = ModelBank(seed=10, seed_by_key=True, **CONFIG)
    halves = {h: ModelBank(seed=10, seed_by_key=True, **CONFIG) for h in (0, 1)}
    separate = {}
    for ks, X, Y in data:
        out = one.learn_many(ks, X, Y)
        for i, k in enumerate(ks):
            model = separate.setdefault(k, OnlineRNN(**CONFIG, seed=key_seed(10, k)))
            np.testing.assert_array_equal(out[i], model.learn(X[i], Y[i]))
        half = np.array([key_hash(k) % 2 for k in ks])
        for h, bank in halves.items():
            rows = np.flatnonzero(half == h)
            np.testing.assert_array_equal(bank.learn_many([ks[i] for i in rows], X[rows], Y[rows]), out[rows])
    persist = one._lay[L.L_PERSIST]  # (the rest is scratch: not model state)
    for k, model in separate.items():
        np.testing.assert_array_equal(one.model(k)._buf[:persist], model._buf[:persist])
        np.testing.assert_array_equal(halves[key_hash(k) % 2].model(k)._buf[:persist], model._buf[:persist])
    # a reversed arrival order gives the same models
    backwards = ModelBank(seed=10, seed_by_key=True, **CONFIG)
    backwards.learn_many(list(reversed(separate)), np.zeros((len(separate), 2)), np.zeros((len(separate), 1)))
    forwards = ModelBank(seed=10, seed_by_key=True, **CONFIG)
    forwards.learn_many(list(separate), np.zeros((len(separate), 2)), np.zeros((len(separate), 1)))
    for k in separate:
        np.testing.assert_array_equal(backwards.model(k)._buf[:persist], forwards.model(k)._buf[:persist])
    # unseen keys are predicted and forecast by the models they would get
    X = rng.normal(size=(3, 2))
    fresh = {k: OnlineRNN(**CONFIG, seed=key_seed(10, k)) for k in ("new", "newer")}
    expected = np.vstack([fresh["newer"].predict_many(X[:1]), separate["a"].predict_many(X[1:2]),
                          fresh["new"].predict_many(X[2:])])
    np.testing.assert_array_equal(one.predict_many(["newer", "a", "new"], X), expected)
    cfg = dict(cell="gru", hidden_size=5, k2=4)
    gru = ModelBank(seed=4, seed_by_key=True, **cfg)
    f = gru.forecast_many(["p", "q"], 3, [[0.5], [0.1]])
    for i, k in enumerate(["p", "q"]):
        single = OnlineRNN(**cfg, seed=key_seed(4, k)).forecast(np.array([[[0.5], [0.1]][i][0], 0, 0])[:, None],
                                                                 [(0, 1)])
        np.testing.assert_allclose(f[i, :, 0], single[:, 0], rtol=1e-5, atol=1e-7)


def test_an_evicted_key_comes_back_with_its_key_seeded_model(rng):
    bank = ModelBank(seed=0, max_idle=1, seed_by_key=True, **CONFIG)
    x, y = rng.normal(size=(1, 2)), rng.normal(size=(1, 1))
    bank.learn_many(["a", "b"], np.r_[x, x], np.r_[y, y])
    bank.learn_many(["a"], x, y)
    assert "b" not in bank
    bank.learn_many(["b"], x, y)
    fresh = OnlineRNN(**CONFIG, seed=key_seed(0, "b"))
    fresh.learn(x[0], y[0])
    persist = bank._lay[L.L_PERSIST]
    np.testing.assert_array_equal(bank.model("b")._buf[:persist], fresh._buf[:persist])


def test_the_seeding_mode_is_kept_by_snapshots_pickles_and_files(rng, tmp_path):
    from streamrnn.persistence import load, save

    bank = ModelBank(seed=5, seed_by_key=True, **CONFIG)
    bank.learn_many(["a", "b"], rng.normal(size=(2, 2)), rng.normal(size=(2, 1)))
    save(bank, tmp_path / "bank.npz")
    copies = [ModelBank.restore(bank.snapshot()), pickle.loads(pickle.dumps(bank)), load(tmp_path / "bank.npz")]
    X, Y = rng.normal(size=(3, 2)), rng.normal(size=(3, 1))
    expected = bank.learn_many(["c", "a", "d"], X, Y)
    for copy in copies:
        assert copy.seed_by_key is True
        np.testing.assert_array_equal(copy.learn_many(["c", "a", "d"], X, Y), expected)
    # states saved before there was a choice seed by slot
    state = bank.__getstate__()
    del state["seed_by_key"]
    old = ModelBank.__new__(ModelBank)
    old.__setstate__(state)
    assert old.seed_by_key is False
    snapshot = bank.snapshot()
    del snapshot["meta"]["seed_by_key"]
    assert ModelBank.restore(snapshot).seed_by_key is False
    with pytest.raises(TypeError, match="seed_by_key must be True or False"):
        ModelBank(seed_by_key="yes", **CONFIG)
    with pytest.raises(TypeError, match="a key of type complex has no stable hash"):
        bank.learn_many(["e", 2j], X[:2], Y[:2])
    assert len(bank) == 4


def test_forecasts_of_rows_sharing_a_key_are_independent(rng):
    """Rows of one key (known or unseen) forecast from the same carried state,
    each from its own inputs: as many rows as threads can race on."""
    bank = ModelBank(seed=3, cell="gru", hidden_size=5, k2=4)
    bank.learn_many(["a", "b"], rng.normal(size=(2, 1)), rng.normal(size=(2, 1)))
    keys = [["a", "b", "new"][i] for i in rng.integers(0, 3, size=3000)]
    X0 = rng.normal(size=(3000, 1))
    f = bank.forecast_many(keys, 3, X0)
    expected = {k: bank.model(k) if k in bank else OnlineRNN(cell="gru", hidden_size=5, k2=4, seed=5)
                for k in ("a", "b", "new")}
    for i in range(0, 3000, 7):
        single = expected[keys[i]].forecast(np.r_[X0[i], np.zeros(2)][:, None], [(0, 1)])
        np.testing.assert_allclose(f[i, :, 0], single[:, 0], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(f, bank.forecast_many(keys, 3, X0))

def test_idle_keys_are_evicted_and_their_slots_reused(rng):
    bank = ModelBank(seed=0, max_idle=2, **CONFIG)
    bank.learn_many(["a", "b"], rng.normal(size=(2, 2)), rng.normal(size=(2, 1)))
    bank.learn_many(["a"], rng.normal(size=(1, 2)), rng.normal(size=(1, 1)))
    assert "b" in bank
    bank.learn_many(["a"], rng.normal(size=(1, 2)), rng.normal(size=(1, 1)))
    assert "b" not in bank and len(bank) == 1
    x, y = rng.normal(size=(1, 2)), rng.normal(size=(1, 1))
    bank.learn_many(["c"], x, y)
    assert bank._slot_of["c"] == 1  # b's slot
    # in it, a fresh model: the third one created
    fresh = OnlineRNN(**CONFIG, seed=2)
    fresh.learn(x[0], y[0])
    persist = bank._lay[L.L_PERSIST]
    np.testing.assert_array_equal(bank.model("c")._buf[:persist], fresh._buf[:persist])


def test_bad_input():
    bank = ModelBank(**CONFIG)
    with pytest.raises(ValueError, match=r"X must have shape \(2, 2\)"):
        bank.learn_many(["a", "b"], np.zeros((3, 2)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="forecast_many needs"):
        bank.forecast_many(["a"], 3, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="cell must be one of"):
        ModelBank(cell="tcn")
    with pytest.raises(ValueError, match="max_idle"):
        ModelBank(max_idle=0, **CONFIG)


def test_numpy_key_arrays_equal_lists_of_the_same_keys():
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 5, 40)
    X, Y = rng.normal(size=(40, 1)), rng.normal(size=(40, 1))
    for array in (ids, np.array([f"s{i}" for i in ids])):
        as_list, as_array = ModelBank(hidden_size=4, seed=0), ModelBank(hidden_size=4, seed=0)
        assert np.array_equal(as_list.learn_many(array.tolist(), X, Y), as_array.learn_many(array, X, Y))
        assert as_list.keys == as_array.keys and all(type(k) in (int, str) for k in as_array.keys)
        probe = np.concatenate([array[:6], array[:1]])
        assert np.array_equal(as_list.predict_many(probe.tolist(), X[:7]), as_array.predict_many(probe, X[:7]))


def test_integer_key_arrays_find_their_models_through_evictions_and_new_keys():
    # The look-up of integer arrays is cached between batches: each batch must
    # still reach the models a list of the same keys reaches, after keys come,
    # go and come back (slots reused), and for keys equal to a float key.
    rng = np.random.default_rng(5)
    as_list, as_array = ModelBank(hidden_size=4, seed=0), ModelBank(hidden_size=4, seed=0)
    for bank in (as_list, as_array):
        bank.learn_many([99.0], [[0.5]], [[0.1]])  # 99 in an array is this key
    for step in range(12):
        ids = np.arange(8 + step // 4)  # every key each batch: evicted ones come back at once
        if step % 4 == 3:
            ids = np.append(ids, 99)
        rng.shuffle(ids)
        X, Y = rng.normal(size=(len(ids), 1)), rng.normal(size=(len(ids), 1))
        assert np.array_equal(as_list.learn_many(ids.tolist(), X, Y), as_array.learn_many(ids, X, Y))
        assert np.array_equal(as_list.learn_many(ids.tolist(), X, Y), as_array.learn_many(ids, X, Y))
        assert np.array_equal(as_list.predict_many(ids.tolist(), X), as_array.predict_many(ids, X))
        if step % 3 == 2:
            gone = [k for k in as_list.keys if k != 99][:3]
            as_list.evict(gone)
            as_array.evict(gone)
        assert as_list.keys == as_array.keys
    assert as_list.snapshot()["buf"].tobytes() == as_array.snapshot()["buf"].tobytes()
    assert pickle.loads(pickle.dumps(as_array)).keys == as_array.keys


def test_model_buffers_start_on_64_byte_boundaries():
    import pickle

    from streamrnn import OnlineRNN, SharedWeightsBank

    for dtype in ("float32", "float64"):
        model = OnlineRNN(hidden_size=5, dtype=dtype, seed=0)
        bank = ModelBank(hidden_size=5, dtype=dtype, seed=0, capacity=1)
        shared = SharedWeightsBank(hidden_size=5, dtype=dtype, seed=0, capacity=1)
        for b in (bank, shared):
            b.learn_many(list(range(5)), np.zeros((5, 1)), np.zeros((5, 1)))  # grows
        for obj in (model, bank, shared, pickle.loads(pickle.dumps(model)), pickle.loads(pickle.dumps(bank))):
            assert obj._buf.ctypes.data % 64 == 0
        assert all(row.ctypes.data % 64 == 0 for row in bank._buf)  # every model


@pytest.mark.parametrize("cls", ["ModelBank", "SharedWeightsBank"])
def test_keys_map_to_models_as_dict_keys_whatever_the_batch_size(cls):
    """Long batches (factorized in C), short ones (a dict) and batches of
    known keys (dict look-ups) give each key, None included, its own model:
    one batch of 120 rows equals the same rows in batches of 8. A NaN key is
    refused, in long and short batches."""
    import streamrnn

    pool = ["a", None, 2.5, 3, ("x", 1), "b"]
    rng = np.random.default_rng(5)
    keys = [pool[i] for i in rng.integers(0, len(pool), 120)]
    keys[100] = "late"  # a new key among known ones
    X, Y = rng.normal(size=(120, 1)), rng.normal(size=(120, 1))
    make = getattr(streamrnn, cls)
    whole, pieces = make(hidden_size=3, seed=0), make(hidden_size=3, seed=0)
    out_whole = whole.learn_many(keys, X, Y)
    out_pieces = np.concatenate([pieces.learn_many(keys[i : i + 8], X[i : i + 8], Y[i : i + 8])
                                 for i in range(0, 120, 8)])
    np.testing.assert_array_equal(out_whole, out_pieces)
    assert len(whole.keys) == 7 and None in whole.keys and "late" in whole.keys
    assert whole.keys == pieces.keys  # in order of first appearance
    for bank in (whole, pieces):  # predictions through the known-key path and the general one
        known = bank.predict_many(keys, X)
        mixed = bank.predict_many(keys + ["unseen"], np.vstack([X, X[:1]]))
        np.testing.assert_array_equal(known, mixed[:120])
    np.testing.assert_array_equal(whole.predict_many(keys, X), pieces.predict_many(keys, X))
    for n in (3, 100):
        for nan_key in (np.float64("nan"), ("x", float("nan")), ("x", ("y", float("nan"))), complex("nan"),
                        np.datetime64("NaT"), frozenset([float("nan")]), pd.NA):
            bad = keys[:n - 1] + [nan_key]
            with pytest.raises(ValueError, match=f"key of row {n - 1} is or holds NaN"):
                whole.learn_many(bad, X[:n], Y[:n])
            with pytest.raises(ValueError, match="holds NaN"):
                whole.predict_many(bad, X[:n])


@pytest.mark.parametrize("cls", ["ModelBank", "SharedWeightsBank"])
def test_edited_snapshots_are_refused_with_what_is_wrong(cls, rng):
    """Counters index the TBPTT windows without bounds checks: an edited
    window position made learning one key rewrite another key's model."""
    from streamrnn import SharedWeightsBank
    from streamrnn.kernels import layout as L

    Bank = ModelBank if cls == "ModelBank" else SharedWeightsBank
    other = SharedWeightsBank if cls == "ModelBank" else ModelBank
    bank = Bank(seed=0, **CONFIG)  # k2 = 4, k1 = 2
    for keys, X, Y in batches(rng, keys=("a", "b"), n_batches=2, rows=4):
        bank.learn_many(keys, X, Y)
    Bank.restore(bank.snapshot())  # as taken: fine

    def edited(change):
        snapshot = bank.snapshot()
        change(snapshot)
        return snapshot

    def put(column, value):
        def change(s):
            s["ctr"][0, column] = value
        return change

    cases = [
        (put(L.C_POS, 5), "counter 'window position' of model 0 is 5, not in \\[0, 3\\]"),
        (put(L.C_FILL, -1), "counter 'window fill'"),
        (put(L.C_SINCE, 2), "counter 'steps since the last update'"),
        (put(L.C_RESETS, -3), "counter 'resets'"),
        (lambda s: s.update(ctr=s["ctr"].astype(np.float64)), "ctr int64"),
        (lambda s: s.update(buf=s["buf"].astype(np.float64)), "buf must be float32"),
        (lambda s: s.update(last_seen=s["last_seen"][:1]), "last_seen must be 2 integers"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            Bank.restore(edited(change))
    with pytest.raises(ValueError, match="not a"):
        other.restore(bank.snapshot())



def test_seeds_and_evictions_are_checked_before_anything_changes(rng):
    for seed in (-1, 1.5, "7", True):
        with pytest.raises(ValueError, match="seed must be a non-negative integer or None"):
            ModelBank(seed=seed, **CONFIG)
    bank = ModelBank(seed=0, **CONFIG)
    bank.learn_many(["a", "b"], rng.normal(size=(2, 2)), rng.normal(size=(2, 1)))
    with pytest.raises(KeyError, match="zz"):
        bank.evict(["a", "zz"])
    assert bank.keys == ["a", "b"]  # nothing evicted
    with pytest.raises(ValueError, match="keys must be a list of keys, got the str 'ab'"):
        bank.evict("ab")
    bank.evict(["a", "a"])
    assert bank.keys == ["b"]


@pytest.mark.parametrize("cls", ["ModelBank", "SharedWeightsBank"])
def test_key_containers_that_would_be_misread_are_refused(cls):
    """A string's characters, a set's (hash-seed dependent) order, a
    DataFrame's column names would be taken for the rows' keys."""
    from streamrnn import SharedWeightsBank

    bank = (ModelBank if cls == "ModelBank" else SharedWeightsBank)(seed=0, **{**CONFIG, "input_size": 1})
    one, two = np.ones((1, 1)), np.ones((2, 1))
    for keys, X in [("ab", two), (b"ab", two), ({"north", "south"}, two), ({"north": 1, "south": 2}, two),
                    (frozenset({"a"}), one), (pd.DataFrame({"sensor": ["s1"]}), one)]:
        with pytest.raises(TypeError, match="keys must hold one key per row"):
            bank.learn_many(keys, X, X)
        with pytest.raises(TypeError, match="keys must hold one key per row"):
            bank.predict_many(keys, X)
    with pytest.raises(ValueError, match="keys must be one key per row .1-D."):
        bank.learn_many(np.array([["a"], ["b"]]), two, two)
    assert bank.keys == []
    bank.learn_many(pd.Series(["s1", "s2"]), two, two)  # a Series, an Index: their values
    bank.learn_many(pd.Index(["s1", "s3"]), two, two)
    assert bank.keys == ["s1", "s2", "s3"]


@pytest.mark.parametrize("cls", ["ModelBank", "SharedWeightsBank"])
def test_snapshots_with_parts_of_the_wrong_kind_are_refused(cls, rng):
    from streamrnn import SharedWeightsBank

    Bank = ModelBank if cls == "ModelBank" else SharedWeightsBank
    bank = Bank(seed=0, **CONFIG)
    bank.learn_many(["a", "b", "a"], rng.normal(size=(3, 2)), rng.normal(size=(3, 1)))

    def meta(**changes):
        def change(s):
            s["meta"].update(changes)
        return change

    cases = [
        (lambda s: s.update(buf=s["buf"].tolist()), "snapshot buf must be a numpy array, got list"),
        (lambda s: s.update(ctr=None), "snapshot ctr must be a numpy array"),
        (meta(n_created="3"), "snapshot n_created must be an integer >= 2"),
        (meta(n_created=1), "snapshot n_created must be an integer >= 2"),
        (meta(batch=2.5), "snapshot batch must be a non-negative integer"),
        (meta(keys=("a", "b")), "snapshot meta keys must be a list"),
        (meta(keys=["a", float("nan")]), "snapshot key of slot 1 is or holds NaN"),
        (meta(keys=["a", "a"]), "snapshot keys of the slots in use must be distinct"),
    ]
    if cls == "SharedWeightsBank":
        cases += [(meta(updates="x"), "snapshot updates must be a non-negative integer"),
                  (meta(steps_gone=-3), "snapshot steps_gone must be a non-negative integer")]
    for change, message in cases:
        snapshot = bank.snapshot()
        change(snapshot)
        with pytest.raises(ValueError, match=message):
            Bank.restore(snapshot)


def test_restore_keeps_the_order_of_keys_and_of_free_slots(rng):
    """Keys come back in the order they had (the order eviction scans and
    ``keys`` lists), not in slot order, so restored banks place later keys
    where the original does."""
    bank = ModelBank(seed=0, max_idle=1, **CONFIG)
    for keys in (["a", "b"], ["b"], ["b", "c"], ["d", "b", "c"]):
        bank.learn_many(keys, rng.normal(size=(len(keys), 2)), rng.normal(size=(len(keys), 1)))
    copy = ModelBank.restore(bank.snapshot())
    assert copy.keys == bank.keys
    for keys in ([], ["e", "f"], ["f", "g"]):
        X, Y = rng.normal(size=(len(keys), 2)), rng.normal(size=(len(keys), 1))
        np.testing.assert_array_equal(copy.learn_many(keys, X, Y), bank.learn_many(keys, X, Y))
        assert copy.keys == bank.keys and copy._slot_of == bank._slot_of
    snapshot = bank.snapshot()
    snapshot["meta"]["free"] = snapshot["meta"]["free"] + [99]
    with pytest.raises(ValueError, match="free slots"):
        ModelBank.restore(snapshot)


@pytest.mark.parametrize("cls", [ModelBank, SharedWeightsBank])
def test_masked_entries_are_missing_values_as_in_online_rnn(cls):
    """np.asarray keeps the values under a mask: the banks learned them."""
    X = np.ma.masked_array([[0.5], [1e6], [0.2], [0.1]], mask=[[0], [1], [0], [0]])
    Y = np.ma.masked_array([[0.1], [0.2], [9e9], [0.3]], mask=[[0], [0], [1], [0]])
    keys = ["a"] * 4
    bank, reference = cls(hidden_size=3, seed=0), cls(hidden_size=3, seed=0)
    out = bank.learn_many(keys, X, Y)
    expected = reference.learn_many(keys, np.where(X.mask, np.nan, X.data), np.where(Y.mask, np.nan, Y.data))
    np.testing.assert_array_equal(out, expected)
    assert np.isnan(out[1]).all()
    np.testing.assert_array_equal(bank.predict_many(["a"], np.ma.masked_array([[0.3]], mask=[[1]])),
                                  np.full((1, 1), np.nan, dtype=np.float32))


def fleet_ticks(rng, n_ticks=24, pool=70, first=40):
    """Fleet ticks: each batch one row per key, the keys in random order; a
    random fifth of the live keys silent each tick (so some go idle), and
    keys of the pool never seen before joining mid-stream."""
    live = list(range(first))
    for t in range(n_ticks):
        if t % 4 == 3 and len(live) < pool:
            live += list(range(len(live), min(len(live) + 6, pool)))
        keys = [k for k in live if rng.random() > 0.2]
        keys = [f"sensor-{keys[i]}" for i in rng.permutation(len(keys))]
        yield keys, rng.normal(size=(len(keys), 2)), rng.normal(size=(len(keys), 1))


@pytest.mark.parametrize("threads", [1, 2])
def test_fleet_ticks_equal_separate_learners_bit_for_bit(threads):
    """One row per key per batch, keys in random order, new keys mid-stream,
    idle keys evicted and explicit evictions (their slots reused by fresh
    models), under 1 and 2 threads: every prediction, every model and the
    predictions of a probe batch (with an unseen key) equal those of separate
    learners seeded in order of creation."""
    config = dict(cell="lstm", input_size=2, hidden_size=5, k1=3, k2=3, lr=0.01)
    rng = np.random.default_rng(17)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        bank = ModelBank(seed=3, max_idle=3, capacity=8, **config)
        separate, last_seen, created = {}, {}, 0
        for t, (keys, X, Y) in enumerate(fleet_ticks(rng)):
            out = bank.learn_many(keys, X, Y)
            for i, k in enumerate(keys):
                if k not in separate:
                    separate[k] = OnlineRNN(**config, seed=3 + created)
                    created += 1
                np.testing.assert_array_equal(out[i], separate[k].learn(X[i], Y[i]))
                last_seen[k] = t
            for k in [k for k in separate if t - last_seen[k] >= 3]:  # the bank's idle rule
                del separate[k]
            if t == 10:
                gone = sorted(separate)[:3]
                bank.evict(gone)
                for k in gone:
                    del separate[k]
            assert sorted(bank.keys) == sorted(separate)
        assert created > len(separate) and bank._n_created == created  # slots were reused
        for k, model in separate.items():
            np.testing.assert_array_equal(bank.model(k)._buf[: bank._lay[L.L_PERSIST]],
                                          model._buf[: bank._lay[L.L_PERSIST]])
            np.testing.assert_array_equal(bank.model(k)._ctr, model._ctr)
        probe = [separate_key for separate_key in separate] + ["unseen"]
        probe = [probe[i] for i in rng.permutation(len(probe))]
        X = rng.normal(size=(len(probe), 2))
        fresh = OnlineRNN(**config, seed=3 + created)
        expected = np.vstack([(separate.get(k) or fresh).predict(X[i]) for i, k in enumerate(probe)])
        np.testing.assert_array_equal(bank.predict_many(probe, X), expected)
        if threads > 1 and numba.config.NUMBA_NUM_THREADS > 1:  # the batches were shared between threads
            assert any(t.name == "streamrnn-bank-worker" for t in threading.enumerate())
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_fleet_ticks_give_the_same_models_on_1_and_2_threads():
    """The same fleet ticks (also forecasts) on 1 and on 2 threads: bit for
    bit the same predictions, forecasts, buffers and counters."""
    config = dict(cell="gru", input_size=1, hidden_size=4, k1=2, k2=4)
    runs = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(threads)
        rng = np.random.default_rng(23)
        bank = ModelBank(seed=0, **config)
        outs = []
        for keys, X, Y in fleet_ticks(rng, n_ticks=20, pool=120, first=100):
            outs.append(bank.learn_many(keys, X[:, :1], Y))
            outs.append(bank.predict_many(keys, Y))
            outs.append(bank.forecast_many(keys, 3, Y))
        runs.append(outs + [bank._buf.copy(), bank._ctr.copy()])
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_chunks_of_a_batch_are_each_run_once(threads):
    """``run_chunks`` hands every group to exactly one thread, whatever the
    number of groups, and returns once all are done."""
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        for n in (0, 1, 2, 17, 1000):
            counts = np.zeros(n, dtype=np.int64)
            run_chunks(_count_groups, (counts,), n)
            assert counts.tolist() == [1] * n
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


@numba.njit(nogil=True)
def _count_groups(counts, chunk, claim):
    """A chunk-claiming kernel (as the bank's) that counts each group it runs."""
    n = counts.shape[0]
    finished = False
    first, last = claim_groups(claim, chunk, n)
    while first < n:
        for g in range(first, last):
            counts[g] += 1
            s = 0.0
            for k in range(2000):  # long enough for the threads to meet
                s += np.sqrt(k + g)
            if s < 0:  # never: keeps the loop
                counts[g] += 1
        finished = groups_done(claim, first, last, n)
        first, last = claim_groups(claim, chunk, n)
    return finished


def python_chunk_kernel(on_entry=None, on_chunk=None):
    """A chunk-claiming kernel in Python (as the bank's compiled ones), with
    hooks run on entry and after each chunk, and a record of its threads:
    ``inside`` (threads in it now), ``done`` (groups run)."""
    lock = threading.Lock()
    state = {"inside": 0, "done": 0, "caller": threading.get_ident()}

    def kernel(counts, chunk, claim):
        with lock:
            state["inside"] += 1
        try:
            if on_entry is not None:
                on_entry(threading.get_ident() == state["caller"])
            finished = False
            while True:
                with lock:
                    first = int(claim[0])
                    claim[0] += chunk
                if first >= counts.shape[0]:
                    return finished
                last = min(first + chunk, counts.shape[0])
                counts[first:last] += 1
                with lock:
                    claim[1] += last - first
                    state["done"] += last - first
                    finished = claim[1] == counts.shape[0]
                if on_chunk is not None:
                    on_chunk(threading.get_ident() == state["caller"])
        finally:
            with lock:
                state["inside"] -= 1

    return kernel, state


@pytest.fixture
def two_threads():
    """Two Numba threads for the test (the caller and one worker)."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two Numba threads (NUMBA_NUM_THREADS >= 2)")
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    yield
    numba.set_num_threads(before)


def test_no_worker_is_inside_the_kernel_once_run_chunks_returns(two_threads):
    """A worker that comes late (here: held at the kernel's entry while the
    caller runs every group) is waited for, or does not enter: when the
    call returns, no thread runs the kernel, and none enters it after."""
    late = []

    def on_entry(is_caller):
        late.append(returned)
        if not is_caller:
            time.sleep(0.05)  # the worker is late: the caller claims every group meanwhile

    kernel, state = python_chunk_kernel(on_entry)
    for _ in range(5):
        counts = np.zeros(4, dtype=np.int64)
        returned = False
        run_chunks(kernel, (counts,), 4)
        returned = True
        assert state["inside"] == 0
        assert counts.tolist() == [1] * 4
    time.sleep(0.2)
    assert not any(late)


def test_an_error_in_a_worker_reaches_the_caller_after_every_thread_left(two_threads):

    def on_entry(is_caller):
        if is_caller:
            time.sleep(0.1)  # the worker enters first
        else:
            raise ValueError("from a worker")

    kernel, state = python_chunk_kernel(on_entry)
    counts = np.zeros(40, dtype=np.int64)
    with pytest.raises(ValueError, match="from a worker"):
        run_chunks(kernel, (counts,), 40)
    assert state["inside"] == 0
    assert counts.tolist() == [1] * 40  # (the caller ran them all)


def test_after_an_error_in_the_caller_the_workers_claim_no_more_chunks(two_threads):
    """The caller's kernel fails after its first chunk: the worker finishes
    the chunk it holds and stops, and the error is raised once it has left."""

    def on_chunk(is_caller):
        if is_caller:
            raise KeyError("from the caller")
        time.sleep(0.002)

    def on_entry(is_caller):
        if is_caller:
            time.sleep(0.05)  # the worker is inside, claiming, when the caller fails

    kernel, state = python_chunk_kernel(on_entry, on_chunk)
    counts = np.zeros(2000, dtype=np.int64)
    with pytest.raises(KeyError, match="from the caller"):
        run_chunks(kernel, (counts,), 2000)
    assert state["inside"] == 0
    assert state["done"] < 1000
    assert counts.max() == 1


def test_bank_calls_survive_tracemalloc_switched_on_and_off_between_them(two_threads):
    """``tracemalloc.start()``/``stop()`` swap the allocator that Numba's
    runtime frees through; a bank worker still freeing without the GIL
    after a call returned crashed the process within seconds."""
    script = textwrap.dedent("""
        import time, tracemalloc
        import numpy as np
        from streamrnn import ModelBank
        bank = ModelBank(cell="lstm", hidden_size=3, input_size=2, output_size=1, k2=3, seed=0)
        keys, X, Y = [0, 1, 2], np.full((3, 2), 0.25), np.ones((3, 1))
        end = time.perf_counter() + 6
        while time.perf_counter() < end:
            bank.learn_many(keys, X, Y)
            tracemalloc.start(); junk = [np.zeros(10) for _ in range(5)]; tracemalloc.stop()
            bank.predict_many(keys, X)
            tracemalloc.start(); del junk; tracemalloc.stop()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_rows_are_grouped_by_slot_as_a_stable_sort_groups_them():
    """Dense slots (a counting sort), slots few and far apart and negative
    codes (numpy's sort): the distinct slots in order, each one's rows in
    arrival order."""
    rng = np.random.default_rng(8)
    cases = [rng.permutation(1000), rng.integers(0, 50, 3000), np.array([7]), np.array([99_999, 3, 99_999]),
             -rng.integers(1, 4, 9), np.array([2, 2, 0, 5, 0])]
    for slots in cases:
        groups, starts, order = ModelBank._groups(slots.astype(np.int64))
        stable = np.argsort(slots, kind="stable")
        assert order.tolist() == stable.tolist()
        assert groups.tolist() == sorted(set(slots.tolist()))
        assert np.diff(starts).tolist() == [int((slots == s).sum()) for s in groups]
        assert starts[0] == 0 and starts[-1] == len(slots)
        assert groups.dtype == starts.dtype == order.dtype == np.int64
        # decreasing: the same groups reversed, each one's rows still in arrival order
        down, down_starts, down_order = ModelBank._groups(slots.astype(np.int64), True)
        assert down.tolist() == groups.tolist()[::-1]
        assert np.diff(down_starts).tolist() == np.diff(starts).tolist()[::-1]
        assert down_starts[0] == 0 and down_starts[-1] == len(slots)
        for g, s in enumerate(down):
            assert down_order[down_starts[g]:down_starts[g + 1]].tolist() == np.flatnonzero(slots == s).tolist()
        assert down.dtype == down_starts.dtype == down_order.dtype == np.int64


def test_batches_walk_the_slots_in_turn_each_way():
    """Each CPU batch (learn, predict, forecast) walks the slots the other
    way round from the batch before; results are those of separate learners
    whichever way (the bank-equals-learners tests run both ways), and a
    pickle does not hold the direction."""
    bank = ModelBank(seed=0, cell="lstm", hidden_size=4)
    keys, X = np.arange(5), np.zeros((5, 1))
    seen = []
    original = ModelBank._groups

    def spy(slots, descending=False):
        seen.append(descending)
        return original(slots, descending)

    bank._groups = spy
    bank.learn_many(keys, X, X)
    bank.predict_many(keys, X)
    bank.forecast_many(keys, 2, X)
    bank.learn_many(keys, X, X)
    assert seen == [True, False, True, False]
    del bank._groups
    assert pickle.dumps(bank) == pickle.dumps(pickle.loads(pickle.dumps(bank)))
    assert "_descending" not in bank.__getstate__()


@pytest.mark.parametrize("optimizer, moments", [("adam", 2), ("adamw", 2), ("sgd", 1), ("rmsprop", 1)])
def test_bytes_per_model_follow_from_the_sizes(optimizer, moments):
    """A banked LSTM (input 1, hidden 32, output 1, k2 = 16, float32) takes,
    counted from its sizes (each region padded to 16 floats), the same in
    memory as saved: the parameters, the optimizer's moments (two for Adam,
    one for SGD and RMSprop), carried h and c, the state before the window's
    oldest step, a TBPTT window of k2 compact rows (input, target and
    prediction, the four gates) and the hyperparameters: with Adam 62.6 KB and 64 bytes of
    counters, within the 64 KB target. The scratch (gradient, the window
    expanded into full rows) is one region per thread, not per model."""
    H, G, I, k2, f = 32, 4, 1, 16, 4

    def pad(n):
        return -(-n // 16) * 16

    params = pad(I * G * H) + pad(H * G * H) + 2 * pad(G * H) + pad(H) + pad(1)
    compact = pad(I + 1 + 1) + pad(G * H)  # input, target, prediction; the gates
    saved = (1 + moments) * params + 2 * 2 * pad(H) + k2 * compact + pad(9)
    row = pad(max(I, H)) + 5 * pad(H) + 3 * pad(G * H) + 2 * pad(1)  # input, h, c, gates, tanh c, h', c', 2 gate grads
    scratch = params + k2 * row + row + 2 * pad(H) + 2 * pad(G * H) + pad(H) + pad(H) + 2 * pad(H)
    bank = ModelBank(seed=0, cell="lstm", hidden_size=H, k1=k2, k2=k2, optimizer=optimizer, capacity=4)
    bank.learn_many(["a", "b"], np.zeros((2, 1)), np.zeros((2, 1)))
    assert bank.snapshot()["buf"][0].nbytes == saved * f
    for b in (bank, pickle.loads(pickle.dumps(bank))):
        assert b._buf[0].nbytes + b._ctr[0].nbytes == saved * f + 64 <= 64 * 1024
        assert b._store.nbytes == (4 * saved + numba.config.NUMBA_NUM_THREADS * scratch) * f
    if optimizer == "adam":
        assert saved * f == 64_128


def test_a_saved_bank_takes_at_most_64_kb_per_lstm(tmp_path, rng):
    """A file of N banked LSTMs (hidden 32, Adam, k2 = 16, float32) holds
    N x 64 KB at most, plus a few KB for its keys and metadata."""
    from streamrnn.persistence import save

    n = 40
    bank = ModelBank(seed=0, cell="lstm", hidden_size=32, k1=16, k2=16, optimizer="adam", capacity=64)
    keys = [f"sensor-{k}" for k in range(n)] * 3
    bank.learn_many(keys, rng.normal(size=(len(keys), 1)), rng.normal(size=(len(keys), 1)))
    save(bank, tmp_path / "bank.npz")
    size = (tmp_path / "bank.npz").stat().st_size
    assert n * 62 * 1024 < size <= n * 64 * 1024 + 8 * 1024



def test_a_snapshot_without_copies_holds_the_same_state_as_views(rng):
    bank = ModelBank(**CONFIG, seed=0)
    bank.learn_many(["a", "b", "a"], rng.normal(size=(3, 2)), rng.normal(size=(3, 1)))
    copied, viewed = bank.snapshot(), bank.snapshot(copy=False)
    assert copied["buf"].tobytes() == viewed["buf"].tobytes() and np.array_equal(copied["ctr"], viewed["ctr"])
    assert copied["meta"] == viewed["meta"]
    bank.learn_many(["a"], rng.normal(size=(1, 2)), rng.normal(size=(1, 1)))
    assert copied["buf"].tobytes() != viewed["buf"].tobytes()  # the views follow the bank; the copy does not
    assert ModelBank.restore(copied).snapshot()["buf"].tobytes() == copied["buf"].tobytes()
