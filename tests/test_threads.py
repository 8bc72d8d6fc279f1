"""Banks and estimators used from two threads at once raise
``ConcurrentUseError`` (not thread-safe, and detected rather than corrupted);
used from several threads one after another, they work as from one."""

import copy
import pickle
import threading

import numpy as np
import pandas as pd
import pytest

from streamrnn import LSTMClassifier, LSTMRegressor, ModelBank, SharedWeightsBank, load, save
from streamrnn.anomaly import PredictiveDetector, ReconstructionDetector
from streamrnn.guard import ConcurrentUseError


class Stall:
    """A key or feature name whose hash, once armed, holds the thread that
    takes it until released: a call stays inside its model meanwhile."""

    def __init__(self):
        self.inside, self.release, self.armed = threading.Event(), threading.Event(), False

    def __hash__(self):
        if self.armed:
            self.armed = False
            self.inside.set()
            assert self.release.wait(60)
        return 7

    def __eq__(self, other):
        return self is other


def while_inside(stall: Stall, first, second):
    """Run ``first`` in a thread until it stalls inside its model, then
    ``second`` here; returns what ``second`` raised, and ``first``'s."""
    errors = []

    def run():
        try:
            first()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    stall.armed = True
    thread = threading.Thread(target=run)
    thread.start()
    assert stall.inside.wait(60)
    try:
        with pytest.raises(ConcurrentUseError, match="used from two threads at once") as raised:
            second()
    finally:
        stall.release.set()
        thread.join(60)
    assert not errors, errors
    return raised.value


ROW = np.ones((1, 1))


@pytest.mark.parametrize("cls", [ModelBank, SharedWeightsBank])
@pytest.mark.parametrize("second", ["learn_many", "predict_many", "forecast_many", "evict", "snapshot", "model"])
def test_a_bank_used_from_two_threads_at_once_raises(cls, second):
    bank, twin = cls(hidden_size=4, seed=0), cls(hidden_size=4, seed=0)
    for b in (bank, twin):
        b.learn_many(["a", "b"], np.ones((2, 1)), np.zeros((2, 1)))
    stall = Stall()
    calls = {
        "learn_many": lambda: bank.learn_many(["c"], ROW, ROW), "predict_many": lambda: bank.predict_many(["a"], ROW),
        "forecast_many": lambda: bank.forecast_many(["a"], 2, ROW), "evict": lambda: bank.evict(["a"]),
        "snapshot": bank.snapshot, "model": lambda: bank.model("a"),
    }
    error = while_inside(stall, lambda: bank.learn_many([stall], ROW, ROW), calls[second])
    assert f"{cls.__name__}.{second}" in str(error)
    # the refused call changed nothing; the first one completed: the bank is the twin after the same call
    twin.learn_many(["s"], ROW, ROW)
    assert len(bank) == len(twin) == 3 and "c" not in bank
    np.testing.assert_array_equal(bank.predict_many(["a", "b", stall], np.ones((3, 1))),
                                  twin.predict_many(["a", "b", "s"], np.ones((3, 1))))


def test_estimators_used_from_two_threads_at_once_raise():
    def stalled_row():
        stall = Stall()
        return stall, {stall: 1.0}  # (hashed here, unarmed: the dict is built before the call)

    regressor = LSTMRegressor(hidden_size=4, seed=0)
    stall, x = stalled_row()
    while_inside(stall, lambda: regressor.learn_one(x, 1.0), lambda: regressor.predict_one({"a": 1.0}))
    classifier = LSTMClassifier(hidden_size=4, seed=0)
    stall, x = stalled_row()
    while_inside(stall, lambda: classifier.learn_one(x, "yes"), lambda: classifier.predict_one({}))
    for detector in (PredictiveDetector(hidden_size=4, seed=0), ReconstructionDetector(hidden_size=4, seed=0)):
        stall, x = stalled_row()
        while_inside(stall, lambda: detector.learn_one(x), lambda: detector.score_one({"a": 1.0}))
    # each finished its call: the stalled feature was learned
    assert [len(m._features) for m in (regressor, classifier, detector)] == [1, 1, 1]


def test_use_from_threads_one_after_another_equals_one_thread():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 5, size=200).tolist()
    X, Y = rng.normal(size=(200, 1)), rng.normal(size=(200, 1))
    bank, alone = ModelBank(hidden_size=4, seed=0), ModelBank(hidden_size=4, seed=0)
    for start in range(0, 200, 20):
        thread = threading.Thread(target=bank.learn_many, args=(keys[start : start + 20], X[start : start + 20],
                                                                Y[start : start + 20]))
        thread.start()
        thread.join()
        alone.learn_many(keys[start : start + 20], X[start : start + 20], Y[start : start + 20])
    np.testing.assert_array_equal(bank.predict_many(list(range(5)), np.ones((5, 1))),
                                  alone.predict_many(list(range(5)), np.ones((5, 1))))


def test_the_guard_is_not_state(tmp_path):
    """A used bank or estimator pickles, copies and saves without its guard
    (made again on first use), exactly as without it."""
    bank, regressor = ModelBank(hidden_size=4, seed=0), LSTMRegressor(hidden_size=4, seed=0)
    bank.learn_many(["a"], ROW, ROW)
    regressor.learn_many(pd.DataFrame({"a": [1.0, 2.0]}), pd.Series([0.5, 1.5]))
    for model in (bank, regressor):
        assert "_busy" in model.__dict__ and "_busy" not in model.__getstate__()
        for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model), copy.copy(model)):
            assert "_busy" not in other.__dict__
        save(model, tmp_path / "used.npz")
        lock = model.__dict__.pop("_busy")
        save(model, tmp_path / "unguarded.npz")
        model.__dict__["_busy"] = lock
        assert (tmp_path / "used.npz").read_bytes() == (tmp_path / "unguarded.npz").read_bytes()
    for other in (pickle.loads(pickle.dumps(bank)), copy.copy(bank), load(tmp_path / "used.npz")):
        if isinstance(other, ModelBank):  # each copy with a guard of its own
            other.learn_many(["b"], ROW, ROW)
            assert other.__dict__["_busy"] is not bank.__dict__["_busy"]
    loaded = load(tmp_path / "used.npz")  # the regressor, saved last
    assert loaded.predict_one({"a": 1.0}) == regressor.predict_one({"a": 1.0})


def test_keyed_wrappers_and_the_global_forecaster_refuse_a_second_thread():
    """A second thread entering a keyed wrapper (or the global forecaster)
    while a first is inside it is refused at once."""
    import threading

    from streamrnn import GlobalForecaster, GRUForecaster
    from streamrnn.guard import ConcurrentUseError
    from streamrnn.keyed import KeyedForecaster

    for model in (KeyedForecaster(GRUForecaster(hidden_size=2), seed=0), GlobalForecaster(hidden_size=2, seed=0)):
        model.learn_one("a", 1.0)
        errors = []
        tokens = model.__dict__["_busy"]
        token = tokens.pop()  # this thread is "inside"
        try:
            def other():
                try:
                    model.learn_one("b", 2.0)
                except ConcurrentUseError as e:
                    errors.append(e)
            t = threading.Thread(target=other)
            t.start()
            t.join()
        finally:
            tokens.append(token)
        assert len(errors) == 1 and "two threads" in str(errors[0])
        model.learn_one("b", 2.0)  # one after another: fine
        assert "b" in model


def test_the_guard_lets_its_own_thread_re_enter_and_is_given_back_after_errors():
    """One guarded method may call another on the same thread; a second
    thread meanwhile is refused; after a call that raised, or was refused,
    the next call goes in (the token is back, no thread noted inside)."""
    import math

    from streamrnn.guard import TOKEN, Guarded, exclusive

    class Box(Guarded):
        def __init__(self):
            self.inside, self.release = threading.Event(), threading.Event()

        @exclusive
        def outer(self, wait=False):
            if wait:
                self.inside.set()
                assert self.release.wait(60)
            return self.inner()

        @exclusive
        def inner(self):
            return threading.get_ident()

    box = Box()
    assert box.outer() == threading.get_ident()
    thread = threading.Thread(target=box.outer, kwargs={"wait": True})
    thread.start()
    assert box.inside.wait(60)
    try:
        with pytest.raises(ConcurrentUseError, match="Box.inner was called while another thread"):
            box.inner()
    finally:
        box.release.set()
        thread.join(60)
    assert box.inner() == threading.get_ident()
    assert box.__dict__["_busy"] == [TOKEN] and box.__dict__.get("_busy_owner") is None

    model = LSTMRegressor(hidden_size=4, seed=0)
    for _ in range(3):
        model.learn_one({"a": 1.0}, 1.0)
        model.predict_one({"a": 1.0})
    for call in (lambda: model.learn_one({"a": math.inf}, 1.0), lambda: model.predict_one({"a": "x"}),
                 lambda: model.learn_one({"a": 1.0}, math.nan)):
        with pytest.raises(ValueError):
            call()
        assert model.__dict__["_busy"] == [TOKEN] and model.__dict__.get("_busy_owner") is None
    assert model.predict_one({"a": 1.0}) == model.predict_one({"a": 1.0})
