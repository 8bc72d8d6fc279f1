"""``streamrnn.persistence``: round trips of every estimator that resume bit
for bit, damaged and hostile files, and the committed files of earlier
format versions."""

from __future__ import annotations

import collections
import datetime as dt
import importlib.util
import io
import json
import math
import os
import pathlib
import pickle
import sys
import zipfile
import zoneinfo

import numpy as np
import pandas as pd
import pytest

from streamrnn import (
    GRUClassifier,
    GRUForecaster,
    GRURegressor,
    LSTMClassifier,
    LSTMForecaster,
    LSTMRegressor,
    ModelBank,
    SharedWeightsBank,
    OnlineRNN,
    RNNClassifier,
    RNNForecaster,
    RNNRegressor,
)
from streamrnn import persistence as P
from streamrnn.anomaly import PredictiveDetector, ReconstructionDetector
from streamrnn.kernels import layout as L
from streamrnn.kernels import scoring as S
from streamrnn.keyed import KeyedDetector, KeyedForecaster

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def file_bytes(model, **kwargs) -> bytes:
    f = io.BytesIO()
    P.save(model, f, **kwargs)
    return f.getvalue()


def round_trip(model, tmp_path):
    """The model saved and loaded; checks that the file holds the state
    pickle sees, and that saving the copy gives the same bytes."""
    path = tmp_path / "model.npz"
    P.save(model, path)
    copy = P.load(path)
    assert type(copy) is type(model)
    data = path.read_bytes()
    assert file_bytes(copy) == data  # the copy's state is the original's
    assert file_bytes(pickle.loads(pickle.dumps(model))) == data  # and the state pickle keeps
    return copy


def same(a, b) -> bool:
    """Bit-identical floats, arrays and containers of them."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, pd.Series | pd.DataFrame):
        return a.equals(b)
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ----------------------------------------------------------------- streams


def regression_stream(n, seed=0):
    """Three features: ``c`` appears late, ``b`` is sometimes missing."""
    rng = np.random.default_rng(seed)
    for t in range(n):
        x = {"a": float(np.sin(t / 3)), "b": None if t % 7 == 3 else float(rng.normal())}
        if t >= n // 2:
            x["c"] = float(rng.uniform())
        yield x, float(2 * x["a"] + rng.normal(scale=0.1) + 10.0)


def monthly(n, start=0, tz=None):
    t0 = pd.Timestamp("2000-01-01", tz=tz)
    for t in range(start, start + n):
        when = (t0 + pd.DateOffset(months=t)).to_pydatetime()
        yield {"month": when, "promo": float(t % 5 == 0)}, float(100 + 10 * np.sin(2 * np.pi * t / 12) + t)


def resume_check(model, tmp_path, stream, learn, probe, at):
    """Learn ``stream[:at]``, save, then learn the rest on the original and
    the copy: every probe along the way is bit-identical."""
    stream = list(stream)
    for item in stream[:at]:
        learn(model, item)
    copy = round_trip(model, tmp_path)
    for item in stream[at:]:
        assert same(probe(copy, item), probe(model, item))
        learn(model, item)
        learn(copy, item)
    assert same(probe(copy, stream[-1]), probe(model, stream[-1]))
    assert file_bytes(copy) == file_bytes(model)
    return copy


# ------------------------------------------------------------- round trips


@pytest.mark.parametrize("cls", [RNNRegressor, GRURegressor, LSTMRegressor])
def test_regressor_resumes_bit_identically(cls, tmp_path):
    model = cls(hidden_size=5, k1=2, k2=3, seed=1)
    resume_check(
        model, tmp_path, regression_stream(40), at=15,  # saved before feature "c" appears
        learn=lambda m, xy: m.learn_one(*xy),
        probe=lambda m, xy: m.predict_one(xy[0]),
    )


def test_regressor_learn_many_after_loading(tmp_path):
    X = pd.DataFrame([x for x, _ in regression_stream(30)])
    y = pd.Series([y for _, y in regression_stream(30)])
    model = GRURegressor(hidden_size=4, seed=0, dtype="float64")
    model.learn_many(X[:10], y[:10])
    copy = round_trip(model, tmp_path)
    for m in (model, copy):
        m.learn_many(X[10:], y[10:])
    assert same(copy.predict_many(X), model.predict_many(X))


@pytest.mark.parametrize(
    "cls, labels",
    [
        (RNNClassifier, [0, 1, 2]),  # integer labels: dictionary keys that are not strings
        (GRUClassifier, [False, True]),
        (LSTMClassifier, ["cat", "dog", ("bird", 1)]),
    ],
)
def test_classifier_resumes_bit_identically(cls, labels, tmp_path):
    rng = np.random.default_rng(4)
    stream = []
    for t in range(36):
        label = labels[t % len(labels)] if t < 20 else labels[rng.integers(len(labels))]
        stream.append(({"u": float(rng.normal()), "v": float(t % 3)}, label))
    stream[25] = (stream[25][0], np.int64(9) if labels[0] == 0 else "new")  # a class that appears after saving
    model = cls(hidden_size=4, seed=2)
    copy = resume_check(
        model, tmp_path, stream, at=12,
        learn=lambda m, xy: m.learn_one(*xy),
        probe=lambda m, xy: m.predict_proba_one(xy[0]),
    )
    assert copy._classes == model._classes and len(model._classes) == len(labels) + 1
    assert [type(c) for c in copy._classes] == [type(c) for c in model._classes]


@pytest.mark.parametrize("cls", [RNNForecaster, GRUForecaster, LSTMForecaster])
def test_recursive_forecaster_resumes_bit_identically(cls, tmp_path):
    stream = list(monthly(50))
    future = [x for x, _ in monthly(12, start=50)]
    resume_check(
        cls(hidden_size=4, seed=3), tmp_path, stream, at=30,  # after the period was found
        learn=lambda m, xy: m.learn_one(xy[1], xy[0]),
        probe=lambda m, xy: m.forecast(12, future),
    )


@pytest.mark.parametrize("at", [1, 8, 40])
def test_direct_forecaster_with_exogenous_features_and_dates_resumes_bit_identically(at, tmp_path):
    stream = list(monthly(60, tz=zoneinfo.ZoneInfo("Europe/Paris")))
    future = [x for x, _ in monthly(12, start=60, tz=zoneinfo.ZoneInfo("Europe/Paris"))]
    copy = resume_check(
        LSTMForecaster(hidden_size=4, horizon=12, seed=5), tmp_path, stream, at=at,
        learn=lambda m, xy: m.learn_one(xy[1], xy[0]),
        probe=lambda m, xy: m.forecast(12, future),
    )
    assert copy.period == 12


def test_forecaster_on_log_scale_with_seasonality_given(tmp_path):
    resume_check(
        GRUForecaster(hidden_size=3, seasonality=4, log_transform=True, seed=2), tmp_path,
        [(None, 10.0 + t % 4 + 0.1 * t) for t in range(30)], at=13,
        learn=lambda m, xy: m.learn_one(xy[1]),
        probe=lambda m, xy: m.forecast(6),
    )


def test_online_rnn_resumes_bit_identically(tmp_path):
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
    rnn = OnlineRNN(cell="lstm", input_size=3, output_size=2, hidden_size=6, k1=3, k2=5, num_layers=2, seed=1)
    rnn.learn_many(X[:17], Y[:17])
    rnn.predict(X[0])  # writes the scratch end of the buffer, which is not saved
    copy = round_trip(rnn, tmp_path)
    assert copy._np_dtype is rnn._np_dtype  # the learner's fast path compares dtypes by identity
    assert same(copy.hidden_state, rnn.hidden_state) and copy.n_steps == rnn.n_steps == 17
    assert same(copy.learn_many(X[17:], Y[17:]), rnn.learn_many(X[17:], Y[17:]))
    assert same(copy.predict(X[0]), rnn.predict(X[0]))
    assert same(copy.state_dict(), rnn.state_dict())


def test_online_rnn_with_constructor_arguments_of_numpy_types(tmp_path):
    rnn = OnlineRNN(hidden_size=np.int64(3), dtype=np.float64, lr=np.float32(0.01), seed=0)
    rnn.learn([0.5], [1.0])
    copy = round_trip(rnn, tmp_path)
    assert copy.dtype is np.float64 and type(copy.hidden_size) is np.int64 and copy.lr == np.float32(0.01)
    assert same(copy.learn([0.1], [0.2]), rnn.learn([0.1], [0.2]))


@pytest.mark.parametrize("cls", [PredictiveDetector, ReconstructionDetector])
def test_detector_resumes_bit_identically(cls, tmp_path):
    rng = np.random.default_rng(1)
    stream = [{"a": float(np.sin(t / 3) + 0.1 * rng.normal()), "b": float(t % 4)} for t in range(60)]
    stream[40] = {"a": 5.0, "b": None}  # a missing value
    stream[45] = {"a": 9.0, "b": 1.0}  # a spike
    resume_check(
        cls(hidden_size=4, k2=4, grace_period=5, seed=0), tmp_path, stream, at=20,
        learn=lambda m, x: m.learn_one(x),
        probe=lambda m, x: m.score_one(x),
    )


def test_model_bank_resumes_bit_identically(tmp_path):
    rng = np.random.default_rng(2)
    bank = ModelBank(cell="gru", hidden_size=4, input_size=2, output_size=2, seed=0, max_idle=2)
    keys = ["a", 3, ("b", 1), np.int64(4), "a"]
    X, Y = rng.normal(size=(10, 5, 2)), rng.normal(size=(10, 5, 2))
    for t in range(4):
        n = 2 if t == 2 else 5
        bank.learn_many(keys[:n], X[t, :n], Y[t, :n])
    copy = round_trip(bank, tmp_path)
    assert copy.keys == bank.keys
    probe = ["a", 3, ("b", 1), "unseen"]
    for t in range(4, 10):
        assert same(copy.predict_many(probe, X[t, :4]), bank.predict_many(probe, X[t, :4]))
        assert same(copy.forecast_many(probe, 3, X[t, :4]), bank.forecast_many(probe, 3, X[t, :4]))
        assert same(copy.learn_many(keys[1:4], X[t, 1:4], Y[t, 1:4]), bank.learn_many(keys[1:4], X[t, 1:4], Y[t, 1:4]))
    assert copy.keys == bank.keys and "a" not in copy  # evicted alike


def test_shared_weights_bank_resumes_bit_identically(tmp_path):
    rng = np.random.default_rng(3)
    bank = SharedWeightsBank(cell="lstm", hidden_size=4, input_size=2, output_size=2, k1=2, k2=3, seed=0, capacity=1)
    keys = ["a", 3, ("b", 1), "a", 3]
    X, Y = rng.normal(size=(8, 5, 2)), rng.normal(size=(8, 5, 2))
    for t in range(3):
        bank.learn_many(keys, X[t], Y[t])
    copy = round_trip(bank, tmp_path)
    assert copy.keys == bank.keys and copy.n_updates == bank.n_updates
    for t in range(3, 8):
        probe = X[t, :1].repeat(6, 0)
        assert same(copy.predict_many(keys + ["unseen"], probe), bank.predict_many(keys + ["unseen"], probe))
        assert same(copy.learn_many(keys, X[t], Y[t]), bank.learn_many(keys, X[t], Y[t]))
    state = bank.__getstate__()
    state["_buf"] = state["_buf"][:-1]
    with pytest.raises(P._Invalid, match="buffer does not match"):
        P._check_state(SharedWeightsBank, state)


def test_keyed_forecaster_and_detector_resume_bit_identically(tmp_path):
    series = {"north": [10.0 + t + (t % 4) for t in range(30)], 7: [50.0 - t for t in range(30)]}
    resume_check(
        KeyedForecaster(GRUForecaster(hidden_size=3), seed=0), tmp_path,
        [(k, v[t]) for t in range(30) for k, v in series.items()], at=25,
        learn=lambda m, kv: m.learn_one(*kv),
        probe=lambda m, kv: [m.forecast("north", 4), m.forecast(7, 4), m.forecast("new", 2)],
    )
    resume_check(
        KeyedDetector(PredictiveDetector(hidden_size=3, grace_period=3), seed=1), tmp_path,
        [(k, {"v": v[t]}) for t in range(30) for k, v in series.items()], at=25,
        learn=lambda m, kx: m.learn_one(*kx),
        probe=lambda m, kx: [m.score_one("north", kx[1]), m.score_one(7, kx[1])],
    )


def test_river_pipeline_resumes_bit_identically(tmp_path):
    from river import preprocessing

    model = preprocessing.StandardScaler() | LSTMRegressor(hidden_size=4, seed=0)
    stream = [({k: v for k, v in x.items() if v is not None}, y) for x, y in regression_stream(30)]
    copy = resume_check(
        model, tmp_path, stream, at=12,
        learn=lambda m, xy: m.learn_one(*xy),
        probe=lambda m, xy: m.predict_one(xy[0]),
    )
    assert copy._last_step_cached is copy.steps["LSTMRegressor"]  # shared references stay shared


def test_detector_under_a_river_quantile_filter_resumes_bit_identically(tmp_path):
    from river import anomaly

    stream = [{"v": float(np.sin(t / 2) + (3.0 if t == 33 else 0.0))} for t in range(40)]
    resume_check(
        anomaly.QuantileFilter(PredictiveDetector(hidden_size=3, grace_period=3, seed=0), q=0.9), tmp_path,
        stream, at=15,
        learn=lambda m, x: m.learn_one(x),
        probe=lambda m, x: (m.score_one(x), m.classify(m.score_one(x))),
    )


def test_values_of_every_supported_kind_round_trip(tmp_path):
    from streamrnn.features import FeatureSpace

    shared = [1, 2]
    space = FeatureSpace()
    space.register([("tuple", 1), 2, "s", True])  # feature names of any hashable type
    cyclic = []
    cyclic.append(cyclic)
    value = {
        "floats": [0.0, -0.0, 1e-310, math.pi, math.inf, -math.inf],
        "ints": [0, -1, 2**80, True, False, None],
        "keys": {1: "int", 1.5: "float", (1, "a"): "tuple", False: "bool", None: "none", frozenset({3}): "fs"},
        "containers": (collections.deque([1, 2], maxlen=3), collections.OrderedDict(b=1, a=2),
                       collections.Counter("abca"), collections.defaultdict(list, {"k": [1]}), {3, 1, 2}),
        "numpy": [np.float32(1.1), np.int8(-3), np.bool_(True), np.str_("label"), np.datetime64("2024-01-02T03:04"),
                  np.complex64(1 + 2j), np.dtype("int16"), np.float16, np.array([[1, 2], [3, 4]], order="F"),
                  np.array(["a", "bc"]), np.array([1, "mixed", None], dtype=object), np.zeros((0, 3))],
        "time": [dt.date(2024, 2, 29),
                 dt.datetime(2024, 3, 31, 2, 30, fold=1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
                 dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-3), "BRT")), dt.time(23, 59, 1, 5),
                 dt.timedelta(days=-1, microseconds=3), pd.Timestamp("2024-01-01 12:00:00.000000001", tz="UTC"),
                 pd.Timestamp("2024-05-06", tz="America/New_York").as_unit("s"), pd.Timestamp("2024-05-06")],
        "other": [complex(1, -math.nan), b"\x00\xff", "ünïcode \ud800", space, shared, shared, cyclic],
    }
    path = tmp_path / "v.npz"
    P.save(value, path)
    copy = P.load(path)
    assert file_bytes(copy) == path.read_bytes()
    assert copy["floats"][:3] == [0.0, -0.0, 1e-310] and math.copysign(1, copy["floats"][1]) == -1
    assert copy["ints"] == value["ints"] and type(copy["ints"][3]) is bool and type(copy["ints"][5]) is type(None)
    assert copy["keys"] == value["keys"] and [type(k) for k in copy["keys"]] == [type(k) for k in value["keys"]]
    deque, odict, counter, ddict, aset = copy["containers"]
    assert deque.maxlen == 3 and list(deque) == [1, 2] and type(odict) is collections.OrderedDict
    assert list(odict) == ["b", "a"] and counter == collections.Counter("abca")
    assert ddict["new"] == [] and aset == {1, 2, 3}
    for a, b in zip(copy["numpy"], value["numpy"]):
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape and a.flags.f_contiguous == b.flags.f_contiguous
            assert a.tolist() == b.tolist()
        else:
            assert type(a) is type(b) and (a == b)
    assert copy["time"] == value["time"]
    zones = [[str(getattr(t, "tzinfo", None)) for t in v["time"]] for v in (copy, value)]
    assert zones[0] == zones[1]
    assert copy["time"][1].fold == 1 and copy["time"][6].unit == "s"
    other = copy["other"]
    assert other[1:3] == value["other"][1:3] and math.isnan(other[0].imag)
    assert other[3].names == space.names and other[3].index == space.index and other[3]._rows == {}
    assert other[4] is other[5] and other[6][0] is other[6]


def test_metadata_and_info(tmp_path):
    path = tmp_path / "m.npz"
    P.save(GRURegressor(hidden_size=2), str(path), metadata={"trained_on": "TrumpApproval", "rows": 3})
    header = P.info(path)
    assert header["format_version"] == P.FORMAT_VERSION == 3
    assert header["streamrnn_version"] == __import__("streamrnn").__version__
    assert header["class"] == "streamrnn.regression:GRURegressor"
    assert header["metadata"] == {"trained_on": "TrumpApproval", "rows": 3}
    with pytest.raises(TypeError, match="metadata"):
        P.save(GRURegressor(hidden_size=2), tmp_path / "x.npz", metadata={"bad": math.nan})
    assert not (tmp_path / "x.npz").exists()


def test_compressed_files_and_file_objects(tmp_path):
    model = LSTMRegressor(hidden_size=4, seed=0)
    model.learn_one({"a": 1.0}, 2.0)
    plain, packed = file_bytes(model), file_bytes(model, compress=True)
    assert plain[:4] == packed[:4] == b"PK\x03\x04" and plain != packed
    with np.load(io.BytesIO(packed), allow_pickle=False) as npz:  # an ordinary npz
        assert set(npz.files) >= {"__meta__.json", "a0"}
    copy = P.load(io.BytesIO(packed))
    assert copy.predict_one({"a": 0.5}) == model.predict_one({"a": 0.5})
    with open(tmp_path / "f.npz", "wb") as f:
        P.save(model, f)
    with open(tmp_path / "f.npz", "rb") as f:
        assert P.load(f).predict_one({"a": 0.5}) == model.predict_one({"a": 0.5})


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    P.save(GRURegressor(hidden_size=2, seed=0), path)
    before = path.read_bytes()
    calls = []

    def failing_write(f, a, **kwargs):
        calls.append(1)
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    with pytest.raises(KeyboardInterrupt):
        P.save(LSTMRegressor(hidden_size=3, seed=1), path)
    assert calls and path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind


def test_saving_what_the_format_cannot_hold_fails_before_writing(tmp_path):
    from river import compose

    class Custom(GRURegressor):
        pass

    cases = [
        (compose.FuncTransformer(lambda x: x) | LSTMRegressor(), "FuncTransformer is not a class the streamrnn format "
                                                                 "declares.*use pickle for files you trust"),
        (Custom(), "Custom is not a class the streamrnn format declares"),
        ({"rng": np.random.default_rng(0)}, "Generator is not a class the streamrnn format declares"),
        ({"generator": (i for i in range(3))}, "generator is not a class the streamrnn format declares"),
    ]
    for i, (value, message) in enumerate(cases):
        with pytest.raises(TypeError, match=message):
            P.save(value, tmp_path / f"{i}.npz")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ bad files


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    model = GRURegressor(hidden_size=3, k2=3, seed=0)
    for x, y in regression_stream(10):
        model.learn_one(x, y)
    path = tmp_path_factory.mktemp("small") / "small.npz"
    P.save(model, path)
    return path.read_bytes()


def test_empty_and_foreign_files_are_refused(tmp_path, small_file):
    cases = {
        b"": "empty",
        b"hello, world": "not a zip archive",
        pickle.dumps(GRURegressor()): "not a zip archive",
        b"\x93NUMPY\x01\x00": "not a zip archive",
    }
    for data, message in cases.items():
        (tmp_path / "f").write_bytes(data)
        with pytest.raises(P.FormatError, match=message) as info:
            P.load(tmp_path / "f")
        assert info.value.path == str(tmp_path / "f")
        assert str(info.value).startswith(str(tmp_path / "f"))
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(P.FormatError, match="no __meta__.json"):
        P.load(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError):
        P.load(tmp_path / "missing.npz")


def test_truncated_files_are_refused(tmp_path, small_file):
    path = tmp_path / "t.npz"
    for n in sorted({1, 3, 4, 30, 100, len(small_file) // 2, len(small_file) - 22, len(small_file) - 1}):
        path.write_bytes(small_file[:n])
        with pytest.raises(P.FormatError, match=str(path)):
            P.load(path)
        with pytest.raises(P.FormatError):
            P.info(path)


def test_flipped_bytes_are_detected_or_harmless(tmp_path, small_file):
    """A flipped byte anywhere either makes loading fail with FormatError or
    (in the zip's unchecked bookkeeping: times, attributes) changes nothing."""
    path = tmp_path / "c.npz"
    reference = P.load(io.BytesIO(small_file))
    refused = 0
    positions = range(0, len(small_file), 7)
    for i in positions:
        data = bytearray(small_file)
        data[i] ^= 0x5A
        path.write_bytes(bytes(data))
        try:
            copy = P.load(path)
        except P.FormatError as e:
            assert str(path) in str(e)
            refused += 1
        else:
            assert file_bytes(copy) == file_bytes(reference)
    assert refused > 0.9 * len(positions)


def rewrite(data: bytes, edit_meta=None, edit_arrays=None) -> bytes:
    """A file with its metadata or arrays edited (with valid CRCs)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        meta = json.loads(zf.read("__meta__.json"))
        arrays = {n[:-4]: np.load(io.BytesIO(zf.read(n))) for n in zf.namelist() if n.endswith(".npy")}
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("__meta__.json", json.dumps(meta))
        for name, a in arrays.items():
            f = io.BytesIO()
            np.save(f, a, allow_pickle=True)
            zf.writestr(f"{name}.npy", f.getvalue())
    return out.getvalue()


def find(node, pred):
    """The first JSON node under ``node`` satisfying ``pred``."""
    if isinstance(node, dict):
        if pred(node):
            return node
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            found = find(child, pred)
            if found is not None:
                return found
    return None


def set_attribute(meta, name, value):
    for pair in find(meta["root"], lambda n: "$obj" in n)["state"]["$dict"]:
        if pair[0] == name:
            pair[1] = value
            return
    raise KeyError(name)


@pytest.mark.parametrize(
    "path",
    [
        "os:system",
        "builtins:eval",
        "subprocess:Popen",
        "antigravity:Fly",  # importing it would open a web browser
        "river.datasets.base:RemoteDataset",
        "river.stream:iter_csv",
        "streamrnn.learner:np",  # not a class
        "streamrnn.forecasting:Forecaster",  # River's class, re-exported
        "streamrnn.learner:OnlineRNN.__init__.__globals__",
        "streamrnn.nowhere:Thing",
        "streamrnn..learner:OnlineRNN",
    ],
)
def test_classes_the_format_does_not_declare_are_refused(path, tmp_path, small_file):
    def as_object(meta):
        meta["root"]["$obj"] = path

    def as_type(meta):
        set_attribute(meta, "dtype", {"$type": path})

    def as_factory(meta):  # the factory is resolved before the dict's id is checked
        set_attribute(meta, "dtype", {"$defaultdict": [], "factory": {"$type": path}, "$id": 99})

    for edit in (as_object, as_type, as_factory):
        (tmp_path / "evil.npz").write_bytes(rewrite(small_file, edit))
        with pytest.raises(P.ForbiddenClassError, match="not one the streamrnn format declares.*use pickle"):
            P.load(tmp_path / "evil.npz")
    assert "antigravity" not in sys.modules  # refused before anything was imported


def test_newer_and_invalid_format_versions_are_refused(tmp_path, small_file):
    def version(v):
        def edit(meta):
            meta["format_version"] = v
            meta["streamrnn_version"] = "9.9"
        return edit

    (tmp_path / "new.npz").write_bytes(rewrite(small_file, version(4)))
    with pytest.raises(P.UnsupportedVersionError, match="format version 4 .*streamrnn 9.9.*upgrade streamrnn"):
        P.load(tmp_path / "new.npz")
    with pytest.raises(P.UnsupportedVersionError):
        P.info(tmp_path / "new.npz")
    for bad in (0, "1", None, 1.0):
        (tmp_path / "bad.npz").write_bytes(rewrite(small_file, version(bad)))
        with pytest.raises(P.FormatError, match="invalid format_version"):
            P.load(tmp_path / "bad.npz")


@pytest.mark.parametrize(
    "edit_meta, edit_arrays, message",
    [
        (lambda m: m.update(format="other"), None, "does not say format 'streamrnn'"),
        (lambda m: m["arrays"].append("a99"), None, "missing"),
        (lambda m: m["arrays"].pop(), None, "unexpected"),
        (lambda m: m.update(root={"$obj": "streamrnn.regression:GRURegressor", "$id": 3}), None, "ids out of sequence"),
        (lambda m: m.update(root={"$ref": 0}), None, "unknown object"),
        (lambda m: m.update(root=[1, 2]), None, "unexpected JSON value"),
        (lambda m: m.update(root={"$list": [], "$id": 0, "$dict": []}), None, "one type tag"),
        (lambda m: m.update(root={"$npscalar": "|O", "hex": ""}), None, "not allowed"),
        (lambda m: m.update(root={"$tuple": [{"$array": "a0"}], "x": 1}), None, "unexpected keys"),
        (None, lambda a: a.update(a0=np.array([{"pickled": 1}], dtype=object)), "pickled|allow_pickle|dtype object"),
        (lambda m: m.update(root={"$obj": "streamrnn.features:FeatureSpace", "$id": 0,
                                  "state": {"$list": [1], "$id": 1}}), None, "must map attribute names"),
        (lambda m: m.update(root={"$obj": "streamrnn.learner:OnlineRNN", "$id": 0, "state": {"$dict": []}}), None,
         "OnlineRNN's shape is not a NetworkShape"),
    ],
)
def test_inconsistent_files_are_refused(edit_meta, edit_arrays, message, tmp_path, small_file):
    (tmp_path / "bad.npz").write_bytes(rewrite(small_file, edit_meta, edit_arrays))
    with pytest.raises(P.FormatError, match=message):
        P.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("model", [OnlineRNN(hidden_size=3, seed=0), ModelBank(hidden_size=3, seed=0)])
def test_kernel_buffers_that_do_not_match_their_layout_are_refused(model, tmp_path):
    if isinstance(model, ModelBank):
        model.learn_many(["a", "b"], np.zeros((2, 1)), np.ones((2, 1)))
    data = file_bytes(model)

    def arrays_named(attribute):
        def edit(arrays):
            meta = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("__meta__.json"))
            state = dict((k, v) for k, v in find(meta["root"], lambda n: "$obj" in n)["state"]["$dict"])
            name = state[attribute]["$array"]
            arrays[name] = attribute_edits[attribute](arrays[name])
        return edit

    attribute_edits = {
        "_buf": lambda a: a[..., :-5],  # a shorter buffer: kernels would read past its end
        "_lay": lambda a: a + 1,
        "_ctr": lambda a: a[..., :2],
    }
    for attribute in attribute_edits:
        (tmp_path / "bad.npz").write_bytes(rewrite(data, edit_arrays=arrays_named(attribute)))
        with pytest.raises(P.FormatError, match=f"{type(model).__name__}'s .*(does not|do not) match"):
            P.load(tmp_path / "bad.npz")


def test_scaler_statistics_a_kernel_would_index_by_are_checked(tmp_path):
    """The running scaler's kernel indexes its statistics by feature without
    bounds checks: an edited file with fewer rows is refused on load, one
    with fewer columns than features is refused before the kernel runs (it
    wrote past the array and corrupted the heap)."""
    from streamrnn import LSTMRegressor
    from streamrnn.features import RunningScaler

    model = LSTMRegressor(hidden_size=3, seed=0)
    for t in range(20):
        model.learn_one({"a": t, "b": t % 3, "c": -t}, float(t))
    data = file_bytes(model)
    name = next(n for n, a in np.load(io.BytesIO(data)).items()
                if isinstance(a, np.ndarray) and a.shape == (3, 3))  # the x scaler's stats

    def edited(change):
        def edit(arrays):
            arrays[name] = change(arrays[name])
        (tmp_path / "bad.npz").write_bytes(rewrite(data, edit_arrays=edit))
        return tmp_path / "bad.npz"

    with pytest.raises(P.FormatError, match="RunningScaler's statistics must be a float64 array of 3 rows"):
        P.load(edited(lambda a: a[:2]))
    # fewer columns than its glitch counts: refused on load
    with pytest.raises(P.FormatError, match="RunningScaler's glitch counts must be a float64 array of one value"):
        P.load(edited(lambda a: a[:, :1]))
    # a state saved before the glitch guard has none to compare with: fewer
    # columns than features is refused before the kernel runs
    scaler = model._x_scaler
    old = RunningScaler.__new__(RunningScaler)
    old.__setstate__({"stats": scaler.stats[:, :1].copy(), "_rooted": True})
    model._x_scaler = old
    with pytest.raises(ValueError, match="the scaler holds statistics for 1 columns, got 3"):
        model.learn_one({"a": 1, "b": 2, "c": 3}, 1.0)
    with pytest.raises(ValueError, match="the scaler holds statistics for 1 columns, got 3"):
        model.predict_one({"a": 1, "b": 2, "c": 3})


@pytest.mark.parametrize("make", [lambda: OnlineRNN(hidden_size=3, k1=2, k2=4, seed=0),
                                  lambda: ModelBank(hidden_size=3, k1=2, k2=4, seed=0),
                                  lambda: SharedWeightsBank(hidden_size=3, k1=2, k2=4, seed=0)])
def test_counters_a_kernel_would_index_by_are_checked(make, tmp_path):
    """The TBPTT window position, fill and schedule index the window without
    bounds checks (an edited position made a learner write past its buffer,
    or into another model's): an edited file is refused."""
    model = make()
    for t in range(3):
        if isinstance(model, OnlineRNN):
            model.learn(np.zeros(1), np.ones(1))
        else:
            model.learn_many(["a", "b"], np.zeros((2, 1)), np.ones((2, 1)))
    data = file_bytes(model)
    meta = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("__meta__.json"))
    state = dict((k, v) for k, v in find(meta["root"], lambda n: "$obj" in n)["state"]["$dict"])
    P.load(io.BytesIO(data))  # as written: fine
    for column, value, what in ((L.C_POS, 10**9, "window position"), (L.C_POS, 4, "window position"),
                                (L.C_FILL, 5, "window fill"), (L.C_SINCE, 2, "steps since"),
                                (L.C_STEPS, -1, "steps")):
        def edit(arrays, name=state["_ctr"]["$array"], column=column, value=value):
            ctr = arrays[name].copy()
            ctr[..., column] = value
            arrays[name] = ctr
        (tmp_path / "bad.npz").write_bytes(rewrite(data, edit_arrays=edit))
        with pytest.raises(P.FormatError, match=f"{type(model).__name__}'s counter '{what}"):
            P.load(tmp_path / "bad.npz")

@pytest.mark.parametrize("cls", [PredictiveDetector, ReconstructionDetector])
def test_detector_statistics_that_do_not_match_are_refused(cls, tmp_path):
    """The score statistics and the reconstruction window are indexed by
    kernels without bounds checks: an edited file must not reach them."""
    model = cls(hidden_size=3, grace_period=3, seed=0)
    for t in range(20):
        model.learn_one({"value": float(t % 5)})
    data = file_bytes(model)
    meta = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("__meta__.json"))
    state = dict((k, v) for k, v in find(meta["root"], lambda n: "$obj" in n)["state"]["$dict"])

    def position(st):
        st = st.copy()
        st[S.S_POS] = 5e8  # a ring position far outside the rings
        return st

    edits = {"_st": [lambda a: a[:-2], position]}  # (one number fewer: a state saved before the calm counts)
    if cls is ReconstructionDetector:
        edits["_recent_z"] = [lambda a: np.zeros((200_000, 1)), lambda a: a[:, :0]]
        edits["_scaler.stats"] = [lambda a: np.zeros((3, 2)), lambda a: a[:2]]
    def array_name(path):
        node = state
        for part in path.split("."):
            node = node[part]
            if "$obj" in node:  # an object: on to its attributes
                node = dict((k, v) for k, v in node["state"]["$dict"])
        return node["$array"]

    for attribute, changes in edits.items():
        for change in changes:
            def edit(arrays, name=array_name(attribute), change=change):
                arrays[name] = change(arrays[name])
            (tmp_path / "bad.npz").write_bytes(rewrite(data, edit_arrays=edit))
            with pytest.raises(P.FormatError, match=f"({cls.__name__}'s .*(do not match|does not match|inconsistent)"
                                                    "|RunningScaler's statistics must be|RunningScaler's glitch counts must be)"):
                P.load(tmp_path / "bad.npz")


def test_a_detector_saved_before_the_alarm_memory_loads_clones_and_keeps_learning():
    """A file written before ``alarm_memory`` existed (its statistics held a
    background where the memory is): it loads with the default memory, and
    clones (as KeyedDetector does for a new key), scores and learns."""
    model = P.load(FIXTURES / "predictive_detector_before_alarm_memory.npz")
    assert model.alarm_memory == 200 and model._st[S.S_DECAY] == 0.5 ** (1 / 200)
    assert model._st[S.S_MEMORY] == 0.0
    fresh = model.clone()
    assert fresh.alarm_memory == 200 and "alarm_memory=200" in repr(fresh)
    for t in range(30):
        x = {"temperature": 20.0 + (t % 7), "load": float(t % 3)}
        assert 0.0 <= model.score_one(x) <= 1.0
        model.learn_one(x)
    model.learn_one({"temperature": 21.0, "load": 1.0, "fan": 0.5})  # a new feature restarts the history
    assert model._st[S.S_DECAY] == 0.5 ** (1 / 200)


# --------------------------------------------------- files of earlier versions


def fixture_cases():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CASES


FIXTURE_FILES = sorted(FIXTURES.glob("*_v*.npz"))


def test_fixtures_cover_every_case_and_format_version():
    names = {p.name for p in FIXTURE_FILES}
    for case in fixture_cases():
        for version in range(1, P.FORMAT_VERSION + 1):
            assert f"{case}_v{version}.npz" in names


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_files_of_earlier_versions_load_predict_and_keep_learning(path):
    """Each fixture predicts what it predicted when it was written, and after
    learning more, what the model that wrote it predicted after learning the
    same. (Close, not bit-identical: the kernels' fast-math arithmetic may
    round differently on another CPU.)"""
    header = P.info(path)
    meta = header["metadata"]
    case = fixture_cases()[meta["case"]]
    try:
        model = P.load(path)
        assert header["class"] == f"{type(model).__module__}:{type(model).__qualname__}"
        np.testing.assert_allclose(case.probe(model), meta["probe"], rtol=1e-5, atol=1e-6)
        case.more(model)
        after = case.probe(model)
        np.testing.assert_allclose(after, meta["after"], rtol=1e-4, atol=1e-5)
    except Exception as e:
        raise AssertionError(
            f"{path.name}, written by streamrnn {header['streamrnn_version']}, no longer loads, predicts or learns "
            f"as it did ({type(e).__name__}: {e}). If the state of {header['class']} changed, make files of "
            "earlier versions keep working (a class-level default for a new attribute, or a __setstate__ that "
            "upgrades the old state); only if no release has written format version "
            f"{P.FORMAT_VERSION} yet, rewrite the fixtures: python tests/fixtures/make_fixtures.py --replace"
        ) from e
    assert not np.allclose(after, meta["probe"])  # it did learn


def test_models_saved_mid_window_in_format_2_continue_as_they_would_have(tmp_path):
    """Models, a bank and a shared-weights bank saved in format version 2 in
    the middle of their TBPTT windows (full window rows, two moment regions
    for every optimizer) load into today's layout (compact window, the
    window's start state, one moment region for SGD and RMSprop) and go on
    to predict, while learning, what the code that wrote them did; and what
    the same models built today do. (Close, not bit-identical: the file was
    written on another CPU; on the machine that wrote it, bit for bit.)"""
    spec = importlib.util.spec_from_file_location("make_format2_windows", FIXTURES / "make_format2_windows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = np.load(FIXTURES / "format2_windows.npz")
    for i, (kind, config, n) in enumerate(module.CASES):
        path = tmp_path / f"case{i}.npz"
        path.write_bytes(data[f"file{i}"].tobytes())
        assert P.info(path)["format_version"] == 2
        loaded, today = P.load(path), module.build(kind, config, n)
        if kind == "model":
            assert loaded._buf.shape == today._buf.shape and np.array_equal(loaded._lay, today._lay)
        ahead = module.more(kind, loaded)
        np.testing.assert_allclose(ahead, data[f"more{i}"], rtol=1e-5, atol=1e-6, err_msg=f"case {i}")
        np.testing.assert_allclose(ahead, module.more(kind, today), rtol=1e-5, atol=1e-6, err_msg=f"case {i}")


def test_a_format_2_file_whose_window_does_not_fit_its_layout_is_refused(tmp_path):
    """An edited format-2 file whose buffer is cut short is not upgraded but
    refused, the error saying that it does not fit the model's layout."""
    spec = importlib.util.spec_from_file_location("make_format2_windows", FIXTURES / "make_format2_windows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = np.load(FIXTURES / "format2_windows.npz")
    source = tmp_path / "case0.npz"
    source.write_bytes(data["file0"].tobytes())
    with zipfile.ZipFile(source) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    buffers = [name for name, raw in entries.items() if name.endswith(".npy")
               and np.load(io.BytesIO(raw)).dtype == np.float32 and np.load(io.BytesIO(raw)).size > 1000]
    assert len(buffers) == 1
    out = io.BytesIO()
    np.save(out, np.load(io.BytesIO(entries[buffers[0]]))[:-16])
    entries[buffers[0]] = out.getvalue()
    edited = tmp_path / "edited.npz"
    with zipfile.ZipFile(edited, "w") as zf:
        for name, raw in entries.items():
            zf.writestr(name, raw)
    with pytest.raises(P.FormatError, match="(layout|buffer) does not match its (shape|layout)"):
        P.load(edited)


def test_forecaster_feedback_pairs_a_kernel_would_follow_are_checked(tmp_path):
    """The forecaster hands its (column, lag) feedback pairs to the kernel
    unchecked: an edited file whose pairs point outside the inputs is
    refused on load."""
    from streamrnn import LSTMForecaster

    model = LSTMForecaster(hidden_size=3, seasonality=4, seed=0)
    for t in range(20):
        model.learn_one(float(t % 4))
    data = file_bytes(model)
    name = next(n for n, a in np.load(io.BytesIO(data)).items()
                if isinstance(a, np.ndarray) and a.dtype == np.int64 and a.shape == (2, 2))

    for bad in ([[0, 1], [40, 4]], [[0, 0], [1, 4]], [[-1, 1], [1, 4]]):
        def edit(arrays, bad=bad):
            arrays[name] = np.array(bad, dtype=np.int64)
        (tmp_path / "bad.npz").write_bytes(rewrite(data, edit_arrays=edit))
        with pytest.raises(P.FormatError, match="feedback pairs are malformed"):
            P.load(tmp_path / "bad.npz")


def test_forecaster_combination_and_smoothing_arrays_a_kernel_would_index_are_checked(tmp_path):
    """The combination's and the smoothing's arrays go to kernels without
    bounds checks: an edited file whose arrays do not match their sizes is
    refused on load."""
    from streamrnn import LSTMForecaster

    model = LSTMForecaster(hidden_size=3, seasonality=4, seed=0)
    for t in range(30):
        model.learn_one(float(t % 4) + 10.0)
    data = file_bytes(model)
    arrays = {n: a for n, a in np.load(io.BytesIO(data)).items() if isinstance(a, np.ndarray)}
    H, C = 8, 11  # two periods tracked; path, six smoothings, last value, two seasonal naive, path without network
    edits = {
        (H, C + 1, H): lambda a: a[:, :, :2],  # made
        (C + 1, H): lambda a: a[:3],  # sq_errors and counts
        (2, H, 100): lambda a: a[:, :2],  # abs_errors
        (6, 4): lambda a: a[:, :2],  # the smoothing's seasonal indices
        (3, 6): lambda a: a[:, :4],  # its constants and state
    }
    for shape, change in edits.items():
        names = [n for n, a in arrays.items() if a.shape == shape
                 and (shape != (6, 4) or np.array_equal(a, model._smoothing.season))]  # (not the change bases')
        assert names, shape
        for name in names:
            def edit(arrays, name=name, change=change):
                arrays[name] = np.ascontiguousarray(change(arrays[name]))
            (tmp_path / "bad.npz").write_bytes(rewrite(data, edit_arrays=edit))
            with pytest.raises(P.FormatError, match="combination|smoothing"):
                P.load(tmp_path / "bad.npz")
    assert P.load(io.BytesIO(data)).forecast(3) == model.forecast(3)


# ------------------------------------ issue 16: findings of the security review


def object_state(meta, cls_name):
    """The attribute pairs of the first object of class ``cls_name`` (its
    QualName) in a file's metadata."""
    node = find(meta["root"], lambda n: isinstance(n.get("$obj"), str) and n["$obj"].endswith(":" + cls_name))
    return {pair[0]: pair for pair in node["state"]["$dict"]}


@pytest.fixture(scope="module")
def trained_lstm():
    model = LSTMRegressor(hidden_size=4, seed=0)
    for x, y in regression_stream(12):
        model.learn_one(x, y)
    return model, file_bytes(model)


@pytest.mark.parametrize("path", [
    "river.bandit.datasets.news:NewsArticles",  # a RemoteDataset: it downloaded a URL on first use
    "river.datasets.base:RemoteDataset",
    "river.preprocessing.scale:Normalizer",  # plain River classes too: only declared ones
    "river.linear_model.lin_reg:LinearRegression",
    "river.stats.mean:Mean",
    "streamrnn.evaluate:Evaluation",
])
def test_finding_1_a_class_outside_the_declared_ones_is_refused_wherever_it_sits(path, tmp_path, trained_lstm):
    """The crafted file of finding 1 put a NewsArticles into the index of the
    regressor's FeatureSpace, an attribute the loader did not check."""
    model, data = trained_lstm

    def edit(meta):
        pair = object_state(meta, "FeatureSpace")["index"]
        pair[1] = {"$obj": path, "$id": 99, "state": {"$dict": []}}

    with pytest.raises(P.ForbiddenClassError, match="not one the streamrnn format declares.*use pickle"):
        P.load(io.BytesIO(rewrite(data, edit)))
    assert P.load(io.BytesIO(data)).predict_one({"a": 0.1}) == model.predict_one({"a": 0.1})


def test_finding_1_attributes_a_class_does_not_declare_are_refused(trained_lstm):
    model, data = trained_lstm

    def edit(meta):
        object_state(meta, "FeatureSpace")["index"][0] = "__class__"

    with pytest.raises(P.FormatError, match="no attribute '__class__' in the format's declaration"):
        P.load(io.BytesIO(rewrite(data, edit)))


def _edit_network(data, field, value):
    """The file with the OnlineRNN's shape field edited, its layout and buffer
    rebuilt to match (the consistent file of finding 2)."""
    from streamrnn.network import NetworkShape, build_layout

    def edit_meta(meta):
        shape = object_state(meta, "NetworkShape")
        shape[field][1] = value
        fields = {k: pair[1] for k, pair in shape.items()}
        try:
            lay = build_layout(NetworkShape(**fields))
        except Exception:
            return
        rnn = object_state(meta, "OnlineRNN")
        lay_name, buf_name = rnn["_lay"][1]["$array"], rnn["_buf"][1]["$array"]
        n = int(lay[L.L_PERSIST])
        edits.update({lay_name: lay, buf_name: np.zeros(n if 0 <= n < 1 << 24 else 0, np.float32)})

    edits = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        meta = json.loads(zf.read("__meta__.json"))
    edit_meta(meta)
    return rewrite(data, edit_meta, lambda arrays: arrays.update(edits))


@pytest.mark.parametrize("field, value", [
    ("hidden_size", -500), ("hidden_size", -4), ("hidden_size", -100), ("hidden_size", 0), ("num_layers", 0),
    ("output_size", 0), ("input_size", 0), ("k1", 0), ("k2", 0), ("k2", -3), ("hidden_size", 1 << 20),
    ("num_layers", 10**6), ("hidden_size", 4.0), ("hidden_size", True), ("cell", "gru"), ("optimizer", "sgd"),
])
def test_finding_2_shape_edits_with_a_consistent_layout_are_refused(field, value, trained_lstm):
    _, data = trained_lstm
    with pytest.raises(P.FormatError):
        P.load(io.BytesIO(_edit_network(data, field, value)))


@pytest.mark.parametrize("what", ["lr", "beta1", "beta2", "eps", "moment", "weight", "state", "lr_attribute",
                                  "beta_attribute"])
def test_finding_4_values_that_would_poison_the_weights_are_refused(what, trained_lstm):
    model, data = trained_lstm
    net = model._net
    lay = net._lay
    hp = int(lay[L.L_HP])
    index = {"lr": hp + L.HP_LR, "beta1": hp + L.HP_BETA1, "beta2": hp + L.HP_BETA2, "eps": hp + L.HP_EPS,
             "moment": int(lay[L.L_V]) + 3, "weight": 5, "state": int(lay[L.L_STATE])}
    value = {"lr": np.nan, "beta1": 1.0, "beta2": 1.0, "eps": 0.0, "moment": -1e-3, "weight": np.nan, "state": np.inf}

    def edit_meta(meta):
        rnn = object_state(meta, "OnlineRNN")
        if what == "lr_attribute":
            rnn["lr"][1] = {"$float": "nan"}
        elif what == "beta_attribute":
            rnn["betas"][1] = {"$tuple": [1.0, 0.999]}
        else:
            names.append(rnn["_buf"][1]["$array"])

    def edit_arrays(arrays):
        if names:
            arrays[names[0]] = arrays[names[0]].copy()
            arrays[names[0]][index[what]] = value[what]

    names = []
    with pytest.raises(P.FormatError, match="hyperparameters|finite|>= 0|arguments are invalid"):
        P.load(io.BytesIO(rewrite(data, edit_meta, edit_arrays)))


def test_finding_4_a_nan_weight_in_a_bank_row_is_refused():
    bank = ModelBank(hidden_size=3, input_size=2, output_size=1, seed=0)
    bank.learn_many(["a", "b"], np.ones((2, 2)), np.ones((2, 1)))
    data = file_bytes(bank)
    name = object_state(json.loads(zipfile.ZipFile(io.BytesIO(data)).read("__meta__.json")), "ModelBank")
    name = name["_buf"][1]["$array"]

    def edit(arrays):
        arrays[name] = arrays[name].copy()
        arrays[name][1, 2] = np.nan

    with pytest.raises(P.FormatError, match="weights are not all finite"):
        P.load(io.BytesIO(rewrite(data, edit_arrays=edit)))


def _zip(entries: dict, compress=zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compress) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def _peak(f) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        f()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_finding_3_a_deflate_bomb_is_refused_before_decompressing(small_file):
    """64 MiB of zeros deflate to 64 KiB: the sizes the archive declares are
    checked against max_bytes before anything is read."""
    meta = json.loads(zipfile.ZipFile(io.BytesIO(small_file)).read("__meta__.json"))
    meta["arrays"] = ["a0"]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (8 << 20,)})
    bomb = _zip({"__meta__.json": json.dumps(meta), "a0.npy": header.getvalue() + bytes(64 << 20)},
                zipfile.ZIP_DEFLATED)
    assert len(bomb) < 1 << 20

    def load():
        with pytest.raises(P.FormatError, match="declares .* bytes uncompressed, above the cap of 16777216"):
            P.load(io.BytesIO(bomb), max_bytes=16 << 20)

    assert _peak(load) < 4 << 20


def test_finding_3_array_headers_and_object_arrays_cannot_make_load_allocate(small_file):
    meta = json.loads(zipfile.ZipFile(io.BytesIO(small_file)).read("__meta__.json"))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (1 << 30,)})
    liar = dict(meta, arrays=["a0"], root={"$array": "a0"})
    objects = dict(meta, arrays=[], root={"$objarray": [1 << 27], "items": []})
    cases = {
        _zip({"__meta__.json": json.dumps(liar), "a0.npy": header.getvalue() + bytes(64)}):
            "do not match its declared size",
        _zip({"__meta__.json": json.dumps(objects)}): "items do not match its shape",
    }
    for data, message in cases.items():
        assert len(data) < 2048

        def load(data=data, message=message):
            with pytest.raises(P.FormatError, match=message):
                P.load(io.BytesIO(data))

        assert _peak(load) < 4 << 20


def test_finding_5_temporaries_of_interrupted_saves_are_cleaned(tmp_path):
    """A save killed with SIGKILL leaves its temporary file; the next save to
    the same path removes it (and those named by earlier versions, once
    older than a minute), never a live writer's."""
    import signal
    import subprocess
    import time

    path = tmp_path / "model.npz"
    script = f"""
import sys, time, numpy as np
from streamrnn import LSTMRegressor
from streamrnn import persistence as P
real = np.lib.format.write_array
def slow(f, a, **kw):
    real(f, a, **kw); f.flush(); print("writing", flush=True); time.sleep(60)
np.lib.format.write_array = slow
P.save(LSTMRegressor(hidden_size=3, seed=0), {str(path)!r})
"""
    left = []
    for _ in range(2):  # the second save removes the first one's temporary
        writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "writing"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        left.append(os.listdir(tmp_path))
    assert [len(names) for names in left] == [1, 1] and left[0] != left[1]
    assert left[1][0].startswith(".model.npz.") and left[1][0].endswith(".tmp")
    old = tmp_path / ".model.npz.0123456789ab.tmp"  # named by format 1's save, an hour ago
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 3600,) * 2)
    recent_old = tmp_path / ".model.npz.ba9876543210.tmp"  # perhaps still being written
    recent_old.write_bytes(b"x")
    live = tmp_path / f".model.npz.{os.getpid()}-aaaaaaaaaaaa.tmp"  # a writer that is alive
    live.write_bytes(b"x")
    other = tmp_path / ".other.npz.1-aaaaaaaaaaaa.tmp"  # another target's
    other.write_bytes(b"x")
    P.save(GRURegressor(hidden_size=2, seed=0), path)
    assert sorted(os.listdir(tmp_path)) == sorted(["model.npz", recent_old.name, live.name, other.name])
    assert P.load(path).hidden_size == 2


@pytest.mark.parametrize("kind", [ModelBank, SharedWeightsBank])
def test_finding_6_banks_save_and_pickle_only_the_slots_in_use(tmp_path, kind):
    def bank_of(n):
        bank = kind(hidden_size=8, input_size=2, output_size=1, seed=0)
        keys = list(range(n))
        bank.learn_many(keys, np.ones((n, 2)), np.ones((n, 1)))
        return bank

    sizes = {n: len(file_bytes(bank_of(n))) for n in (32, 33)}
    assert bank_of(33)._capacity == 64
    assert sizes[33] < sizes[32] * 1.1  # 33 models, not 64
    assert len(pickle.dumps(bank_of(33))) < len(pickle.dumps(bank_of(32))) * 1.1
    big = bank_of(33)
    big._grow(1 << 16)  # a large capacity, nearly all unused: not in the file nor the pickle
    assert len(file_bytes(big)) < sizes[33] * 1.1 and len(pickle.dumps(big)) < len(pickle.dumps(bank_of(33))) * 1.1
    bank = bank_of(33)
    rng = np.random.default_rng(0)
    copy = round_trip(bank, tmp_path)
    assert copy._capacity == bank._capacity == 64 and copy._buf.shape == bank._buf.shape
    for t in range(3):  # new keys fill the restored capacity, then grow it, as in the original
        keys = list(range(20 * t, 20 * t + 40))
        X, Y = rng.normal(size=(40, 2)), rng.normal(size=(40, 1))
        assert same(copy.learn_many(keys, X, Y), bank.learn_many(keys, X, Y))
        assert same(copy.predict_many(keys, X), bank.predict_many(keys, X))
    assert copy._capacity == bank._capacity and file_bytes(copy) == file_bytes(bank)


def test_finding_3_a_json_bomb_is_refused_before_parsing(small_file):
    """A deflated document of 30 MB of ``0,`` (60 KB in the file) would take
    over a gigabyte of Python objects once parsed: refused from its size."""
    text = b'{"format": "streamrnn", "format_version": 2, "arrays": [], "root": [' + b"0," * (15 << 20) + b"0]}"
    bomb = _zip({"__meta__.json": text}, zipfile.ZIP_DEFLATED)
    assert len(bomb) < 1 << 20

    def load():
        with pytest.raises(P.FormatError, match="metadata holds about .* values"):
            P.load(io.BytesIO(bomb), max_bytes=1 << 30)

    assert _peak(load) < 80 << 20  # the document's bytes, not its objects


def test_stored_entity_windows_a_kernel_would_index_by_are_checked(tmp_path):
    """A keyed regressor swaps each entity's window counters into its
    network: an edited stored position is refused like the network's own."""
    from streamrnn import LSTMRegressor

    model = LSTMRegressor(hidden_size=3, k1=2, k2=4, seed=0, key="who")
    for t in range(6):
        model.learn_one({"who": "ab"[t % 2], "v": float(t)}, float(t))
    data = file_bytes(model)
    P.load(io.BytesIO(data))  # as written: fine

    def edit(arrays):
        for name, a in arrays.items():
            if a.dtype == np.int64 and a.shape == (3,):  # a stored entity's window counters
                arrays[name] = np.array([10**9, 1, 0], dtype=np.int64)

    (tmp_path / "bad.npz").write_bytes(rewrite(data, edit_arrays=edit))
    with pytest.raises(P.FormatError, match="stored window counters"):
        P.load(tmp_path / "bad.npz")


def test_a_global_forecaster_whose_keys_disagree_is_refused(tmp_path):
    from streamrnn import GlobalForecaster

    model = GlobalForecaster(hidden_size=3, seed=0)
    for t in range(12):
        model.learn_one("a", float(t % 3))
        model.learn_one("b", float(t % 4))
    data = file_bytes(model)
    P.load(io.BytesIO(data))  # as written: fine
    views = []
    find(json.loads(zipfile.ZipFile(io.BytesIO(data)).read("__meta__.json"))["root"],
         lambda n: views.append(n) if n.get("$obj") == "streamrnn.shared_bank:SeriesView" else False)
    assert len(views) == 2

    def edit_meta(meta):
        view = find(meta["root"], lambda n: n.get("$obj") == "streamrnn.shared_bank:SeriesView")
        for pair in view["state"]["$dict"]:
            if pair[0] == "key":
                pair[1] = "b" if pair[1] == "a" else "a"

    (tmp_path / "bad.npz").write_bytes(rewrite(data, edit_meta=edit_meta))
    with pytest.raises(P.FormatError, match="do not run on its network"):
        P.load(tmp_path / "bad.npz")
