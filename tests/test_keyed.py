"""Per-key River estimators."""

import pickle

import numpy as np
import pytest

from streamrnn import LSTMForecaster
from streamrnn.anomaly import PredictiveDetector
from streamrnn.keyed import KeyedDetector, KeyedForecaster


def test_keyed_forecaster_equals_separate_forecasters():
    bank = KeyedForecaster(LSTMForecaster(hidden_size=6), seed=5)
    alone = {"a": LSTMForecaster(hidden_size=6, seed=5), "b": LSTMForecaster(hidden_size=6, seed=6)}
    for t in range(60):
        for key, y in (("a", float(t % 7)), ("b", float(t % 5) * 2)):
            bank.learn_one(key, y)
            alone[key].learn_one(y)
    for key in ("a", "b"):
        assert bank.forecast(key, 4) == alone[key].forecast(4)
    before = pickle.dumps(bank)
    assert bank.forecast("new", 3) == [0.0, 0.0, 0.0]  # an unseen key: the model it would get
    assert pickle.dumps(bank) == before and "new" not in bank
    bank.evict(["a"])
    assert bank.keys == ["b"] and len(bank) == 1


def test_keyed_detector_scores_each_series_on_its_own():
    bank = KeyedDetector(PredictiveDetector(hidden_size=4, grace_period=10), seed=0)
    for t in range(200):
        bank.learn_one("flat", {"v": 1.0 + 0.01 * (t % 3)})
        bank.learn_one("wavy", {"v": float(t % 10)})
    # 0 is the wave's next value (usual there), far out for the flat series
    assert bank.score_one("flat", {"v": 0.0}) > bank.score_one("wavy", {"v": 0.0})
    assert bank["flat"].seed == 0 and bank["wavy"].seed == 1
    with pytest.raises(KeyError):
        bank["none"]


def test_keys_that_are_or_hold_nan_are_refused():
    """Each NaN object would be a key of its own: a missing key."""
    bank = KeyedDetector(PredictiveDetector(hidden_size=3, grace_period=3), seed=0)
    bank.learn_one(None, {"v": 1.0})  # None is a key like any other
    for key in (float("nan"), np.float64("nan"), ("pump", float("nan")), np.datetime64("NaT")):
        with pytest.raises(ValueError, match="is or holds NaN"):
            bank.learn_one(key, {"v": 1.0})
        with pytest.raises(ValueError, match="is or holds NaN"):
            bank.score_one(key, {"v": 1.0})
    assert bank.keys == [None]


def test_a_refused_sample_registers_no_key():
    """The key's model would stay untrained and shift the seeds of every
    later key (runs would no longer repeat)."""
    bank = KeyedForecaster(LSTMForecaster(hidden_size=4), seed=0)
    bank.learn_one("a", 1.0)
    for bad in ("x", float("nan"), None):
        with pytest.raises(ValueError):
            bank.learn_one("c", bad)
    assert bank.keys == ["a"]
    bank.learn_one("b", 2.0)
    assert bank["b"].seed == 1
    detector = KeyedDetector(PredictiveDetector(hidden_size=3, grace_period=3), seed=0)
    with pytest.raises(ValueError):
        detector.learn_one("d", {"v": "high"})
    assert detector.keys == []


def test_a_key_made_after_an_eviction_gets_a_seed_of_its_own():
    """The n-th key created is seeded seed + n, evicted keys counted (as in
    ModelBank): two live keys never start from the same model."""
    bank = KeyedForecaster(LSTMForecaster(hidden_size=4), seed=0)
    bank.learn_one("a", 1.0)
    bank.learn_one("b", 2.0)
    bank.forecast("unseen", 2)  # peeks: creates nothing
    bank.evict(["a"])
    bank.learn_one("c", 3.0)
    assert {k: bank[k].seed for k in bank.keys} == {"b": 1, "c": 2}
    with pytest.raises(KeyError):
        bank.evict(["b", "gone"])
    assert bank.keys == ["b", "c"]
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        KeyedForecaster(LSTMForecaster(), seed=-2)


def test_max_idle_keeps_memory_bounded_with_many_keys():
    """Keys not learned from in the last max_idle samples are evicted: with
    a stream of ever new keys the wrapper holds at most max_idle models."""
    bank = KeyedDetector(PredictiveDetector(hidden_size=2, grace_period=2), seed=0, max_idle=20)
    for t in range(500):
        bank.learn_one(f"k{t}", {"v": float(t % 3)})
        bank.learn_one("busy", {"v": 1.0})  # seen at every other sample: never idle long
        assert len(bank) <= 21
    assert "busy" in bank and "k499" in bank and "k0" not in bank
    assert len(bank._last_seen) == len(bank)
    unbounded = KeyedDetector(PredictiveDetector(hidden_size=2, grace_period=2), seed=0)
    for t in range(50):
        unbounded.learn_one(f"k{t}", {"v": 1.0})
    assert len(unbounded) == 50


def test_an_evicted_key_starts_afresh():
    bank = KeyedForecaster(LSTMForecaster(hidden_size=4), seed=0, max_idle=3)
    for t in range(30):
        bank.learn_one("old", float(t % 4))
    trained = bank.forecast("old", 2)
    for t in range(3):
        bank.learn_one("other", 1.0)
    assert "old" in bank  # idle for exactly max_idle samples: kept
    bank.learn_one("other", 1.0)
    assert "old" not in bank and bank.keys == ["other"]
    assert bank.forecast("old", 2) == [0.0, 0.0] != trained  # the model a new key gets
    bank.learn_one("old", 5.0)
    fresh = LSTMForecaster(hidden_size=4, seed=2)  # the third key created
    fresh.learn_one(5.0)
    assert bank.forecast("old", 2) == fresh.forecast(2)
    with pytest.raises(ValueError, match="max_idle must be a positive integer"):
        KeyedDetector(PredictiveDetector(), max_idle=0)


def test_max_idle_survives_save_and_load(tmp_path):
    from streamrnn.persistence import load, save

    bank = KeyedDetector(PredictiveDetector(hidden_size=2, grace_period=2), seed=0, max_idle=2)
    for key in ("a", "b"):
        bank.learn_one(key, {"v": 1.0})
    save(bank, tmp_path / "bank.npz")
    again = load(tmp_path / "bank.npz")
    for copy in (bank, again):
        copy.learn_one("c", {"v": 1.0})
        assert copy.keys == ["a", "b", "c"]  # "a" idle for 2 samples: kept
        copy.learn_one("c", {"v": 1.0})
        assert copy.keys == ["b", "c"]  # idle for 3: evicted
        copy.learn_one("c", {"v": 1.0})
    assert bank.keys == again.keys == ["c"] and again.max_idle == 2
