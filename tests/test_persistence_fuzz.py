"""Fuzzing of :func:`streamrnn.persistence.load`: mutations of valid files
(every JSON value and its type, array shapes, dtypes and values, entry
sizes, bytes) drawn by hypothesis. Each outcome must be a
:class:`~streamrnn.persistence.FormatError`, or a model that predicts
finite values and keeps learning: never another exception, a crash, an
allocation beyond ``max_bytes`` or (under ``NUMBA_BOUNDSCHECK=1``, as CI
runs this file) an access outside the buffers.

Bounded: about a minute in all on the project's machine."""

from __future__ import annotations

import copy
import functools
import io
import json
import math
import os
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamrnn import (
    GlobalForecaster,
    GRUClassifier,
    LSTMForecaster,
    LSTMRegressor,
    ModelBank,
    OnlineRNN,
    SharedWeightsBank,
)
from streamrnn import persistence as P
from streamrnn.anomaly import PredictiveDetector, ReconstructionDetector
from streamrnn.keyed import KeyedDetector

CAP = 32 << 20  # max_bytes of the fuzzed loads
# examples per test (STREAMRNN_FUZZ_EXAMPLES for a longer campaign, with STREAMRNN_FUZZ_RANDOM=1 for new draws)
EXAMPLES = int(os.environ.get("STREAMRNN_FUZZ_EXAMPLES", "120"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("STREAMRNN_FUZZ_RANDOM"),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _xs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"a": float(rng.normal()), "b": float(rng.uniform()), **({"c": 1.0} if t % 3 else {})} for t in range(n)]


def _finite(v) -> bool:
    return bool(np.isfinite(np.asarray(v, dtype=float)).all())


# ------------------------------------------------------------------ targets


def _regressor():
    model = LSTMRegressor(hidden_size=3, k2=3, seed=0)
    for t, x in enumerate(_xs(12)):
        model.learn_one(x, float(t % 4))
    return model


def _probe_regressor(model):
    for x in _xs(3, seed=1):
        assert _finite(model.predict_one(x))
        model.learn_one(x, 1.0)
    assert _finite(model.predict_one(_xs(1)[0]))


def _classifier():
    model = GRUClassifier(hidden_size=3, k2=3, seed=0)
    for t, x in enumerate(_xs(12)):
        model.learn_one(x, ["x", "y", 3][t % 3])
    return model


def _probe_classifier(model):
    for x in _xs(3, seed=1):
        p = model.predict_proba_one(x)
        assert isinstance(p, dict) and _finite(list(p.values()) or [0.0])
        model.learn_one(x, "y")
    assert _finite(list(model.predict_proba_one(_xs(1)[0]).values()))


def _network():
    rnn = OnlineRNN(cell="gru", input_size=2, output_size=2, hidden_size=3, k1=2, k2=3, seed=0)
    rnn.learn_many(np.ones((7, 2)) * 0.5, np.ones((7, 2)))
    return rnn


def _probe_network(rnn):
    x = np.full(rnn.input_size, 0.5)
    assert _finite(rnn.predict(x))
    rnn.learn(x, np.zeros(rnn.output_size))
    assert _finite(rnn.predict(x))


def _bank():
    bank = ModelBank(cell="lstm", hidden_size=3, input_size=2, output_size=1, k2=3, seed=0, max_idle=5)
    for t in range(4):
        bank.learn_many(["a", 1, ("k", 2)], np.full((3, 2), t / 4), np.ones((3, 1)))
    return bank


def _probe_bank(bank):
    keys = ["a", 1, "new"]
    X = np.full((3, 2), 0.25)
    assert _finite(bank.predict_many(keys, X))
    bank.learn_many(keys, X, np.ones((3, 1)))
    assert _finite(bank.predict_many(keys, X))


def _detector():
    model = PredictiveDetector(hidden_size=3, k2=3, grace_period=2, seed=0)
    for x in _xs(10):
        model.learn_one(x)
    return model


def _probe_detector(model):
    for x in _xs(3, seed=1):
        assert _finite(model.score_one(x))
        model.learn_one(x)


def _forecaster():
    model = LSTMForecaster(hidden_size=3, k2=3, seasonality=4, seed=0)
    for t in range(30):
        model.learn_one(10.0 + t % 4 + 0.1 * t)
    return model


def _interval_ok(interval) -> bool:
    """Bounds with no NaN, lower <= upper: finite, or infinite where the
    model documents that it knows no error yet (an edited error count)."""
    lower, upper = (np.asarray(b, dtype=float) for b in interval)
    return not (np.isnan(lower).any() or np.isnan(upper).any()) and bool((lower <= upper).all())


def _probe_forecaster(model):
    assert _finite(model.forecast(3))
    model.learn_one(12.0)
    assert _finite(model.forecast(3))
    assert _interval_ok(model.forecast_interval(2, 0.9))


def _pipeline():
    from river import preprocessing

    model = preprocessing.StandardScaler() | LSTMRegressor(hidden_size=3, k2=3, seed=0)
    for t, x in enumerate(_xs(12)):
        model.learn_one(x, float(t % 4))
    return model


def _filtered_detector():
    from river import anomaly

    model = anomaly.QuantileFilter(PredictiveDetector(hidden_size=3, k2=3, grace_period=2, seed=0), q=0.9)
    for x in _xs(10):
        model.learn_one(x)
    return model


def _probe_filtered(model):
    for x in _xs(3, seed=1):
        score = model.score_one(x)
        assert _finite(score) and model.classify(score) in (True, False)
        model.learn_one(x)


def _shared_bank():
    bank = SharedWeightsBank(cell="gru", hidden_size=3, input_size=2, output_size=1, k2=3, seed=0, max_idle=5)
    for t in range(4):
        bank.learn_many(["a", 1, ("k", 2)], np.full((3, 2), t / 4), np.ones((3, 1)))
    return bank


def _keyed_detector():
    model = KeyedDetector(PredictiveDetector(hidden_size=3, k2=3, grace_period=2), seed=0, max_idle=20)
    for t, x in enumerate(_xs(12)):
        model.learn_one(("s", t % 2), x)
    return model


def _probe_keyed_detector(model):
    for t, x in enumerate(_xs(3, seed=1)):
        assert _finite(model.score_one(("s", t % 2), x))
        model.learn_one(("s", t % 2), x)


def _global_forecaster():
    model = GlobalForecaster(hidden_size=3, k2=3, seasonality=4, seed=0)
    for t in range(24):
        model.learn_one(t % 2, 10.0 + t % 4 + 0.1 * t)
    return model


def _probe_global_forecaster(model):
    for key in model.keys:
        assert _finite(model.forecast(key, 3))
        model.learn_one(key, 12.0)
        assert _finite(model.forecast(key, 3))
        assert _interval_ok(model.forecast_interval(key, 2, 0.9))


def _reconstruction_detector():
    model = ReconstructionDetector(hidden_size=3, k2=3, grace_period=2, seed=0)
    for x in _xs(10):
        model.learn_one(x)
    return model


def _threshold_filtered_detector():
    from river import anomaly

    model = anomaly.ThresholdFilter(PredictiveDetector(hidden_size=3, k2=3, grace_period=2, seed=0), threshold=0.5)
    for x in _xs(10):
        model.learn_one(x)
    return model


TARGETS = {
    "regressor": (_regressor, _probe_regressor),
    "classifier": (_classifier, _probe_classifier),
    "network": (_network, _probe_network),
    "bank": (_bank, _probe_bank),
    "detector": (_detector, _probe_detector),
    "forecaster": (_forecaster, _probe_forecaster),
    "pipeline": (_pipeline, _probe_regressor),
    "filtered_detector": (_filtered_detector, _probe_filtered),
    "shared_bank": (_shared_bank, _probe_bank),
    "keyed_detector": (_keyed_detector, _probe_keyed_detector),
    "global_forecaster": (_global_forecaster, _probe_global_forecaster),
    "reconstruction_detector": (_reconstruction_detector, _probe_detector),
    "threshold_filtered_detector": (_threshold_filtered_detector, _probe_filtered),
}


@functools.lru_cache(maxsize=None)
def base(target: str):
    """A valid file of the target, its metadata and arrays."""
    make, _ = TARGETS[target]
    data = io.BytesIO()
    P.save(make(), data)
    data = data.getvalue()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        meta = json.loads(zf.read("__meta__.json"))
        arrays = {n[:-4]: np.load(io.BytesIO(zf.read(n))) for n in zf.namelist() if n.endswith(".npy")}
    return data, meta, arrays


def pack(meta, arrays, compress=False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        zf.writestr("__meta__.json", json.dumps(meta))
        for name, a in arrays.items():
            f = io.BytesIO()
            np.save(f, a, allow_pickle=False)
            zf.writestr(f"{name}.npy", f.getvalue())
    return out.getvalue()


def outcome(target: str, data: bytes) -> str:
    """Load ``data``: a FormatError, or a model that predicts finite values
    and learns; the load allocates at most about ``CAP``."""
    _, probe = TARGETS[target]
    tracemalloc.start()
    try:
        model = P.load(io.BytesIO(data), max_bytes=CAP)
    except P.FormatError:
        return "refused"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 2 * CAP + (8 << 20), f"load allocated {peak} bytes"
    probe(model)
    return "loaded"


def test_the_valid_files_load():
    for target in TARGETS:
        assert outcome(target, base(target)[0]) == "loaded"


# ----------------------------------------------------------- JSON mutations


def slots(node, out=None):
    """Every (container, key) of the JSON tree: dict values and list items."""
    out = [] if out is None else out
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.append((node, k))
        slots(v, out)
    return out


SPECIAL_VALUES = [
    0, -1, 1, 2, -500, 2**31, 2**63, 10**30, 0.0, -0.0, 1.0, 0.5, 1e308, -1e-320, "", "lstm", "float64", "nan",
    True, False, None, [], {}, [1, 2], {"$float": "nan"}, {"$float": "inf"}, {"$float": "-inf"},
    {"$array": "a0"}, {"$array": "a1"}, {"$array": "a99"}, {"$ref": 0}, {"$ref": 1}, {"$ref": 10**9},
    {"$list": [], "$id": 10**6}, {"$dtype": "<f4"}, {"$dtype": "|O"}, {"$type": "builtins:int"},
    {"$type": "river.bandit.datasets.news:NewsArticles"},
    {"$obj": "river.bandit.datasets.news:NewsArticles", "$id": 0, "state": {"$dict": []}},
    {"$obj": "streamrnn.features:FeatureSpace", "$id": 10**6, "state": {"$dict": []}},
    {"$objarray": [2**40], "items": []}, {"$objarray": [3], "items": [1, 2, 3]}, {"$tuple": [1, 2]},
    {"$npscalar": "<f8", "hex": "000000000000f87f"}, {"$deque": [], "maxlen": -1, "$id": 0},
    {"$bytes": "zz"}, {"$complex": [1.0]}, {"$date": [2024, 13, 1]}, {"$zoneinfo": "../../etc/passwd"},
]

json_values = st.one_of(
    st.sampled_from(SPECIAL_VALUES),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.lists(st.integers(-3, 3), max_size=3),
)


def _retype(v):
    """The same value, another JSON type."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return float(v)
    if isinstance(v, float):
        return int(v) if math.isfinite(v) else str(v)
    if isinstance(v, str):
        return [v]
    if isinstance(v, list):
        return {str(i): x for i, x in enumerate(v)}
    if isinstance(v, dict):
        return list(v.values())
    return 0


@pytest.mark.parametrize("target", list(TARGETS))
@SETTINGS
@given(data=st.data())
def test_json_mutations(target, data):
    _, meta, arrays = base(target)
    meta = copy.deepcopy(meta)
    places = slots(meta)
    scalar_places = [p for p in places if not isinstance(p[0][p[1]], dict | list)]
    container, key = data.draw(st.sampled_from(scalar_places) if data.draw(st.booleans()) else st.sampled_from(places))
    action = data.draw(st.sampled_from(["replace", "replace", "retype", "delete"]))
    if action == "replace":
        container[key] = data.draw(json_values)
    elif action == "retype":
        container[key] = _retype(container[key])
    elif isinstance(container, dict):
        del container[key]
    else:
        container.pop(key)
    outcome(target, pack(meta, arrays))


# ---------------------------------------------------------- array mutations

VALUES = [np.nan, np.inf, -np.inf, -1, 0, 1, 0.5, -0.5, 3, 2**31 - 1, -(2**31), 2**62]
DTYPES = ["<f4", "<f8", "<i8", "<i4", "|u1", "|b1", "<f2", "<c16", "<U3", "<M8[s]", ">f8"]


@pytest.mark.parametrize("target", list(TARGETS))
@SETTINGS
@given(data=st.data())
def test_array_mutations(target, data):
    _, meta, arrays = base(target)
    arrays = dict(arrays)
    name = data.draw(st.sampled_from(sorted(arrays)))
    a = arrays[name].copy()
    op = data.draw(st.sampled_from(["value", "value", "value", "dtype", "truncate", "extend", "reshape", "drop"]))
    if op == "value" and a.size:
        i = data.draw(st.integers(0, a.size - 1))
        with np.errstate(all="ignore"):
            try:
                a.reshape(-1)[i] = data.draw(st.sampled_from(VALUES))
            except (OverflowError, ValueError):
                a.reshape(-1)[i] = -1
    elif op == "dtype":
        with np.errstate(all="ignore"):
            try:
                a = a.astype(data.draw(st.sampled_from(DTYPES)))
            except (ValueError, TypeError, OverflowError):
                a = a.astype("<f8")
    elif op == "truncate":
        a = a.reshape(-1)[: data.draw(st.integers(0, max(a.size - 1, 0)))]
    elif op == "extend":
        a = np.concatenate([a.reshape(-1), np.zeros(data.draw(st.integers(1, 40)), a.dtype)])
    elif op == "reshape":
        a = a[None] if data.draw(st.booleans()) else a.reshape(-1)
    else:
        del arrays[name]
        meta = dict(meta, arrays=[n for n in meta["arrays"] if n != name])
    if op != "drop":
        arrays[name] = a
    outcome(target, pack(meta, arrays))


# ------------------------------------------------------------ byte mutations


@pytest.mark.parametrize("target", ["regressor", "bank"])
@pytest.mark.parametrize("compress", [False, True])
@SETTINGS
@given(data=st.data())
def test_byte_corruption(target, compress, data):
    _, meta, arrays = base(target)
    raw = bytearray(pack(meta, arrays, compress))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "flip", "set", "truncate", "insert"]))
        if not raw:
            break
        i = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[i] ^= data.draw(st.integers(1, 255))
        elif op == "set":  # sizes and counts of the zip directories: large values
            raw[i : i + 4] = data.draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff\xff\x7f"]))
        elif op == "truncate":
            del raw[i:]
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        outcome(target, bytes(raw))
    except (AssertionError, P.FormatError):
        raise
