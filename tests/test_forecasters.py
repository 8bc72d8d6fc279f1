"""The recurrent forecasters under River's Forecaster contract."""

import collections
import copy
import math
import pickle

import numpy as np
import pytest
from conftest import river_checks
from river import datasets, evaluate, metrics

import streamrnn
from streamrnn import GRUForecaster, LSTMForecaster, RNNForecaster

FORECASTERS = [RNNForecaster, GRUForecaster, LSTMForecaster]


@pytest.mark.parametrize("model,check", [p for cls in FORECASTERS for p in river_checks(cls)])
def test_river_checks(model, check):
    check(copy.deepcopy(model))


@pytest.mark.parametrize("cls", FORECASTERS)
def test_river_evaluate_on_airline_passengers(cls):
    metric = evaluate.evaluate(datasets.AirlinePassengers(), cls(seed=0), metrics.MAE(), horizon=12)
    values = [m.get() for m in metric.metrics]
    assert len(values) == 12 and all(math.isfinite(v) and v > 0 for v in values)
    assert getattr(streamrnn, cls.__name__) is cls


def test_forecast_is_pure_and_seeded():
    a, b = LSTMForecaster(seed=4), LSTMForecaster(seed=4)
    assert a.forecast(3) == [0.0, 0.0, 0.0]  # before any learning
    for x, y in datasets.AirlinePassengers():
        a.learn_one(y, x)
        b.learn_one(y, x)
    before = pickle.dumps(a)
    f = a.forecast(12)
    assert pickle.dumps(a) == before
    assert f == a.forecast(12) == b.forecast(12)
    assert pickle.loads(before).forecast(12) == f
    assert a.clone().forecast(2) == [0.0, 0.0]


def test_drift_is_built_in():
    """On a ramp the mean change carries the forecast along it."""
    model = GRUForecaster(seed=0)
    for t in range(300):
        model.learn_one(5.0 + 2.0 * t)
    forecast = np.array(model.forecast(6))
    expected = 5.0 + 2.0 * np.arange(300, 306)
    np.testing.assert_allclose(forecast, expected, atol=0.5)


def test_seasonality_input_learns_a_seasonal_pattern():
    rng = np.random.default_rng(0)
    pattern = rng.normal(size=8)
    y = np.tile(pattern, 400) + 0.05 * rng.normal(size=3200)
    errors = {}
    for m in (None, 8):
        model = LSTMForecaster(seasonality=m, seed=0)
        err = []
        for t in range(len(y) - 8):
            model.learn_one(float(y[t]))
            if t > len(y) - 400:
                err.append(np.abs(np.array(model.forecast(8)) - y[t + 1 : t + 9]).mean())
        errors[m] = np.mean(err)
    assert errors[8] < 0.25 * np.std(pattern)
    assert errors[8] < errors[None]


def test_exogenous_features_and_xs_as_a_deque():
    model = LSTMForecaster(seed=0)
    for t in range(200):
        model.learn_one(float(np.sin(t / 3)), {"phase": t % 7, "when": t / 200})
    xs = [{"phase": (200 + k) % 7, "when": (200 + k) / 200} for k in range(5)]
    f = model.forecast(5, xs=xs)
    assert f == model.forecast(5, xs=collections.deque(xs))
    assert f != model.forecast(5)  # the features matter
    assert model._net.input_size == 2 + 2  # previous and seasonal surprise, then the features
    with pytest.raises(ValueError, match="xs must hold the features of each of the 5 steps"):
        model.forecast(5, xs=xs[:3])


def test_log_transform_and_bad_input():
    model = LSTMForecaster(log_transform=True, seed=0)
    for y in [10.0, 12.0, 14.0, 13.0, 15.0, 18.0]:
        model.learn_one(y)
    assert all(v > 0 for v in model.forecast(4))
    with pytest.raises(ValueError, match="positive"):
        model.learn_one(-1.0)
    with pytest.raises(ValueError, match="finite real number"):
        model.learn_one(float("nan"))
    with pytest.raises(ValueError, match="finite real number"):
        model.learn_one("12")
    with pytest.raises(ValueError, match="horizon must be a positive integer"):
        model.forecast(0)
    with pytest.raises(ValueError, match="seasonality must be an integer >= 2"):
        LSTMForecaster(seasonality=1)
    for bad in ("sometimes", 1, 1.0, np.True_):  # 1 == True, but would have meant False
        with pytest.raises(ValueError, match="log_transform must be"):
            LSTMForecaster(log_transform=bad)
    with pytest.raises(ValueError, match="loss must be 'squared' or 'huber', got 'cross_entropy'"):
        LSTMForecaster(loss="cross_entropy")
    with pytest.raises(ValueError, match="x must be a dict"):
        model.learn_one(20.0, [1.0])
    assert model._net.n_steps == 5


def test_period_and_scale_found_on_bundled_series():
    airline = GRUForecaster(seed=0)
    for x, y in datasets.AirlinePassengers():
        airline.learn_one(y, x)
    assert (airline.period, airline._period_from, airline.log_scale) == (12, "calendar", True)
    no_dates = GRUForecaster(seed=0)  # the same series without its dates: the autocorrelation finds it
    for _, y in datasets.AirlinePassengers():
        no_dates.learn_one(y)
    assert (no_dates.period, no_dates._period_from) == (12, "autocorrelation")
    trump = GRUForecaster(seed=0)
    for x, y in datasets.TrumpApproval():
        trump.learn_one(y, x)
    assert trump.period is None and not trump.log_scale
    fixed = GRUForecaster(seasonality=None, seed=0)
    for x, y in datasets.AirlinePassengers():
        fixed.learn_one(y, x)
    assert fixed.period is None


def test_log_scale_is_left_when_a_value_is_not_positive():
    model = LSTMForecaster(seasonality=4, seed=0)
    pattern = [10.0, 20.0, 15.0, 30.0]
    for t in range(40):
        model.learn_one(pattern[t % 4] * 1.05 ** (t // 4))
    assert model.log_scale
    model.learn_one(-5.0)  # a glitch (far below what was expected): learned as the forecast
    model.learn_one(-5.0)
    assert model.log_scale
    with pytest.warns(RuntimeWarning, match="leaves the log scale"):
        model.learn_one(-5.0)  # the third in a row: a level shift, learned as it is
    assert not model.log_scale
    assert all(math.isfinite(v) for v in model.forecast(4))


def test_explicit_period_decides_the_scale_after_two_periods():
    model = LSTMForecaster(seasonality=4, seed=0)
    pattern = [10.0, 20.0, 15.0, 30.0]
    seen = []
    for t in range(12):
        model.learn_one(pattern[t % 4] * 1.1 ** (t // 4))
        seen.append(model.log_scale)
    assert seen[:8] == [False] * 8 and seen[-1] is True


def test_direct_forecasts_learn_each_step_once_its_horizon_is_known():
    rng = np.random.default_rng(0)
    pattern = rng.normal(size=6)
    y = np.tile(pattern, 500) + 0.05 * rng.normal(size=3000)
    model = GRUForecaster(horizon=6, seasonality=None, seed=0)
    errors, persistence = [], []
    for t in range(len(y) - 6):
        model.learn_one(float(y[t]))
        if t > len(y) - 300:
            errors.append(np.abs(np.array(model.forecast(6)) - y[t + 1 : t + 7]).mean())
            persistence.append(np.abs(y[t] - y[t + 1 : t + 7]).mean())
    # the first value gives no change; each step is learned 5 steps late
    assert model._net.n_steps == len(y) - 6 - 1 - 5
    assert np.mean(errors) < 0.5 * np.mean(persistence)
    assert len(model.forecast(3)) == 3
    before = pickle.dumps(model)
    model.forecast(6)
    assert pickle.dumps(model) == before
    with pytest.raises(ValueError, match="at most 6 with direct forecasts"):
        model.forecast(7)
    with pytest.raises(ValueError, match="horizon must be a positive integer or None"):
        GRUForecaster(horizon=0)


def test_direct_forecasts_take_features_that_appear_later():
    model = LSTMForecaster(horizon=3, seed=0)
    for t in range(30):
        model.learn_one(float(t % 5), {"a": float(t % 3)} if t > 10 else None)
    assert model._net.input_size == 2 + 1
    f = model.forecast(3, xs=[{"a": 1.0}, {"a": 2.0}, {"a": 0.0}])
    assert len(f) == 3 and all(math.isfinite(v) for v in f)


def test_mean_reversion_of_the_residuals_smooths_a_noisy_level():
    """White noise around a level: its changes are negatively correlated at
    lag one, and the forecaster takes back that part of the last change
    (simple exponential smoothing, in effect), beating persistence."""
    rng = np.random.default_rng(0)
    y = 10.0 + rng.normal(size=600)
    model = GRUForecaster(seasonality=None, seed=0)
    errors, persistence = [], []
    for t in range(len(y) - 3):
        model.learn_one(float(y[t]))
        if t > 300:
            errors.append(np.abs(np.array(model.forecast(3)) - y[t + 1 : t + 4]).mean())
            persistence.append(np.abs(y[t] - y[t + 1 : t + 4]).mean())
    d = np.diff(y[: len(y) - 3])  # the base is no change: the residuals are the changes
    rho = 2 * (d[1:] @ d[:-1]) / (d[:-1] @ d[:-1] + d[1:] @ d[1:])
    assert rho < -0.3
    np.testing.assert_allclose(model._reversion(), rho)
    assert np.mean(errors) < 0.85 * np.mean(persistence)


def test_no_reversion_where_changes_persist():
    t = np.arange(400)
    model = GRUForecaster(seasonality=None, seed=0)
    for v in np.sin(t / 10):  # smooth: changes correlate positively
        model.learn_one(float(v))
    assert model._reversion() == 0.0


def test_a_period_known_beforehand_is_trusted_before_its_errors_are_compared():
    given = LSTMForecaster(seasonality=4, seed=0)
    found = LSTMForecaster(seed=0)  # no dates: the period comes from the autocorrelation
    calendar = LSTMForecaster(seed=0)
    for (x, y), _ in zip(datasets.AirlinePassengers(), range(60)):
        given.learn_one(y)
        found.learn_one(y)
        calendar.learn_one(y, x)
    assert given._bases["lin"].prior and calendar._bases["lin"].prior
    assert found.period == 12 and not found._bases["lin"].prior
    model = LSTMForecaster(seasonality=4, seed=0)
    for y in [10.0, 20.0, 15.0, 30.0, 12.0]:  # four changes: one full period
        model.learn_one(y)
    assert model._bases["lin"].weights is not None


def _lockstep(model, fresh, xs, ys):
    """Forecasts of ``model`` and of ``fresh``, whose feature rows are
    recomputed from scratch at every call."""
    out_a, out_b = [], []
    for t in range(len(ys) - 12):
        model.learn_one(ys[t], xs[t])
        fresh._features._window = None
        fresh.learn_one(ys[t], xs[t])
        fresh._features._window = None
        out_a.append(model.forecast(12, xs[t + 1 : t + 13]))
        out_b.append(fresh.forecast(12, xs[t + 1 : t + 13]))
    return out_a, out_b


def test_feature_rows_reused_between_forecasts_change_nothing():
    data = list(datasets.WaterFlow())[:300]
    xs, ys = [x for x, _ in data], [y for _, y in data]
    a, b = _lockstep(LSTMForecaster(seed=1), LSTMForecaster(seed=1), xs, ys)
    assert a == b
    # dicts changed in place, features that appear in a forecast's steps first
    rng = np.random.default_rng(0)
    xs = [{"a": float(rng.normal())} for _ in range(80)]
    for t in range(20, 80):
        xs[t]["b"] = float(t % 3)
    a, b = _lockstep(GRUForecaster(seed=2), GRUForecaster(seed=2), xs, list(np.cumsum(rng.normal(size=80))))
    assert a == b
    model = GRUForecaster(seed=2, combine=False)  # (combined, the seasonal naive forecast takes all the weight)
    window = [{"a": 1.0}, {"a": 2.0}]
    for t in range(30):
        model.learn_one(float(t % 4), {"a": float(t % 4)})
    first = model.forecast(2, window)
    window[0]["a"] = 5.0  # the same dict, changed: its row is recomputed
    assert model.forecast(2, window) == model.forecast(2, [{"a": 5.0}, {"a": 2.0}]) != first


def test_feature_rows_match_row_by_row():
    from streamrnn.features import FeatureSpace

    space = FeatureSpace()
    space.register(["a", "b"])
    xs = [{"a": 1.0}, None, {"b": 2.0, "c": 3.0}, {"a": float("nan")}, {"a": 4.0, "b": 5.0}]
    reference = np.array([space.row(x or {}) for x in xs])
    for window in (xs[:3], xs[1:4], xs[1:4], xs[2:5], xs[:5]):
        np.testing.assert_array_equal(space.rows(window), reference[xs.index(window[0]) :][: len(window)])
    assert space.known_row({"a": 4.0, "b": 5.0}) is None  # not the first of the last window
    space.rows(xs[2:5])
    assert space.known_row(xs[2]) is None  # "c" has no column
    space.rows(xs[4:])
    np.testing.assert_array_equal(space.known_row({"a": 4.0, "b": 5.0}), [4.0, 5.0])


def test_feature_rows_slide_on_row_by_row():
    """Windows one step on reuse their rows (sliding down a buffer that wraps
    around); dates' calendar features land in their columns, with features
    that appear later."""
    import datetime as dt

    from streamrnn.features import FeatureSpace

    space = FeatureSpace()
    space.register(space.present({"when": dt.datetime(2020, 1, 1), "a": 1.0}))
    xs = [{"when": dt.datetime(2020, 1, 1) + dt.timedelta(hours=7 * t), "a": float(t)} for t in range(300)]
    for t in range(150, 300):
        xs[t]["b"] = float(t % 5)  # no column: the rows are incomplete
    reference = np.array([space.row(x) for x in xs])
    for t in range(len(xs) - 12):
        window = xs[t : t + 12] if t % 37 else xs[t : t + 11]  # now and then a window of another length
        np.testing.assert_array_equal(space.rows(window), reference[t : t + len(window)])
        assert (space.known_row(xs[t]) is not None) == (t < 150)
    space.register(["b"])  # a new column: rows are rebuilt
    np.testing.assert_array_equal(space.rows(xs[-12:])[:, -1], [t % 5 for t in range(288, 300)])


@pytest.mark.parametrize("first", ["utc", "paris"])
def test_calendar_features_read_each_datetime_on_its_own_clock(first):
    """10:00 UTC and 11:00 at UTC+1 are one instant (equal, same hash): each
    has its own hour of day, whichever was seen first (caches included)."""
    import datetime as dt

    from streamrnn.features import FeatureSpace, _calendar, calendar_features

    _calendar.cache_clear()
    utc = dt.datetime(2020, 1, 1, 10, tzinfo=dt.timezone.utc)
    paris = dt.datetime(2020, 1, 1, 11, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert utc == paris and hash(utc) == hash(paris)
    order = [utc, paris] if first == "utc" else [paris, utc]
    space = FeatureSpace()
    space.register(space.present({"t": utc}))
    rows = {}
    for when in order:
        assert calendar_features("t", when)["t.hour_sin"] == pytest.approx(np.sin(2 * np.pi * when.hour / 24))
        rows[when.hour] = space.row({"t": when})
    j = space.index["t.hour_sin"]
    assert rows[10][j] == pytest.approx(np.sin(2 * np.pi * 10 / 24))
    assert rows[11][j] == pytest.approx(np.sin(2 * np.pi * 11 / 24))
    np.testing.assert_array_equal(space.rows([{"t": utc}, {"t": paris}]), np.array([rows[10], rows[11]]))
    for when in order:  # windows of equal dicts are reused: not those of another zone
        np.testing.assert_array_equal(space.rows([{"t": when}] * 3), np.array([rows[when.hour]] * 3))
        assert space.known_row({"t": utc if when is paris else paris}) is None


def test_a_forecaster_saved_with_a_log_transform_now_refused_still_clones():
    """Earlier versions took log_transform=1 or np.True_ (each meant False); a
    state holding one loads as False, so cloning it (a new key of a
    KeyedForecaster) works and forecasts as before."""
    import pickle

    model = LSTMForecaster(hidden_size=4, seed=0)
    for y in (1.0, 2.0, 3.0, 2.5):
        model.learn_one(y)
    old = LSTMForecaster.__new__(LSTMForecaster)
    old.__setstate__(dict(model.__dict__, log_transform=np.True_))
    assert old.log_transform is False and old.clone().log_transform is False
    assert pickle.loads(pickle.dumps(old)).forecast(3) == model.forecast(3)


@pytest.mark.parametrize("cls", FORECASTERS)
@pytest.mark.parametrize("params", [{}, {"horizon": 3}, {"log_transform": True}])
def test_a_refused_learn_one_changes_nothing(cls, params):
    """A call refused for its x (or its y) leaves no trace: not the scale,
    not the features, not the network; later forecasts are bit for bit those
    of a twin that never got it."""
    data = list(datasets.AirlinePassengers())
    model, twin = cls(seed=0, **params), cls(seed=0, **params)
    for x, y in data[:30]:
        model.learn_one(y, x)
        twin.learn_one(y, x)
    assert model.log_scale and model._positive
    refused = [
        (-1.0, {"month": "bad"}),  # a value <= 0 would leave the log scale
        (-1.0, {"month": data[30][0]["month"], "new": float("inf")}),  # a new feature, infinite
        (-1.0, [1.0]),
        (500.0, {"new": "bad", "month": data[30][0]["month"]}),
        (float("nan"), {"new": 1.0}),
    ]
    if params.get("log_transform") is True:
        refused.append((-1.0, {"new": 1.0}))  # y refused, x valid: no feature "new"
    for y, x in refused:
        with pytest.raises(ValueError):
            model.learn_one(y, x)
    assert model.log_scale and model._positive
    assert model._features.names == twin._features.names
    for x, y in data[30:60]:
        model.learn_one(y, x)
        twin.learn_one(y, x)
    xs = [x for x, _ in data[60:63]]
    assert model.forecast(3, xs) == twin.forecast(3, xs)
    assert model.forecast(3) == twin.forecast(3)


def test_a_refused_forecast_leaves_later_forecasts_unchanged():
    """Features of a forecast's steps refused part-way (a bad value in the
    second step) leave the rows kept for the next forecast as they were."""
    import datetime as dt

    data = list(datasets.AirlinePassengers())
    model, twin = LSTMForecaster(seed=0), LSTMForecaster(seed=0)
    for x, y in data[:40]:
        model.learn_one(y, x)
        twin.learn_one(y, x)
    xs = [x for x, _ in data[40:43]]
    first = model.forecast(3, xs)
    bad = [{"month": xs[0]["month"] + dt.timedelta(days=100)}, {"month": "bad"}, dict(xs[2])]
    with pytest.raises(ValueError, match="'month' must be a real number"):
        model.forecast(3, bad)
    assert model.forecast(3, xs) == first == twin.forecast(3, xs)


def test_values_whose_squares_would_overflow_are_refused():
    """1e200 then -1e200 made every later forecast NaN (the sums of squared
    changes overflowed); such values are refused, and the model goes on."""
    model = LSTMForecaster(hidden_size=4, seed=0)
    for v in (1e200, -1e101, 10**101):
        with pytest.raises(ValueError, match="y must lie within ±1e\\+100"):
            model.learn_one(v)
    for v in (1e100, -1e100, 1.0, 2.0, 3.0) + tuple(float(i % 5) for i in range(30)):
        model.learn_one(v)
    assert np.isfinite(model.forecast(3)).all()


def test_a_runaway_network_is_gated(monkeypatch):
    """A network whose fed-back forecasts run away (its head's bias set far
    out) moves the recurrent path from the statistical one by at most
    NETWORK_GATE * scale * sqrt(k) over k steps; ungated it would not."""
    from streamrnn import forecasting

    rng = np.random.default_rng(0)
    model = LSTMForecaster(hidden_size=4, seed=0, combine=False, seasonality=None, log_transform=False)
    for v in 100 + rng.normal(size=300):
        model.learn_one(float(v))
    start = model._net.state_dict()
    start["head.bias"][:] = 50.0
    model._net.load_state_dict(start)
    path, statistical = model._recurrent_path(24, None, statistical=True)
    departure = np.abs(path - statistical)
    bound = forecasting.NETWORK_GATE * model._scale() * np.sqrt(np.arange(1, 25))
    assert (departure <= bound * (1 + 1e-9)).all() and departure[-1] > 0.9 * bound[-1]
    monkeypatch.setattr(forecasting, "NETWORK_GATE", 1e9)
    path, statistical = model._recurrent_path(24, None, statistical=True)
    assert np.abs(path - statistical)[-1] > 10 * bound[-1]


def _two_calls(forecaster):
    """A forecaster that observes each value and records its origin in two
    kernel calls (``observe_smoothed``, then ``record_origin``), as before
    the two took one."""
    def observe_record(y):
        forecaster._observe(y)
        forecaster._record()

    forecaster._observe_record = observe_record
    return forecaster


@pytest.mark.parametrize("kind", ["log", "linear", "glitches", "hourly"])
def test_a_value_observed_and_its_origin_recorded_in_one_call_give_the_bits_of_two(kind):
    """``observe_record`` (one kernel call) against the two kernels it joins,
    called in turn: every state, forecast and interval the same, bit for
    bit, on a positive seasonal series (the log scale), one crossing zero,
    one with glitches and a level shift, and an hourly one (the week's
    period too)."""
    rng = np.random.default_rng(7)
    n, m = (700, 24) if kind == "hourly" else (300, 12)
    t = np.arange(n)
    y = 50 + 10 * np.sin(2 * np.pi * t / m) + rng.normal(0, 1, n)
    if kind == "linear":
        y -= 50
    if kind == "glitches":
        y[[100, 160, 161]] += 80
        y[220:] += 40
    if kind == "hourly":
        y += 5 * np.sin(2 * np.pi * t / 168)
    one, two = LSTMForecaster(hidden_size=4, seed=0), _two_calls(LSTMForecaster(hidden_size=4, seed=0))
    for i, v in enumerate(y.tolist()):
        one.learn_one(v)
        two.learn_one(v)
        if i % 50 == 49:
            assert one.forecast(30) == two.forecast(30)
            assert one.forecast_interval(30) == two.forecast_interval(30)
    del two._observe_record
    assert one.period == m and one.log_scale is (kind in ("log", "glitches"))
    assert pickle.dumps(one) == pickle.dumps(two)
