"""One glitch in a stream must not ruin a forecaster; a level shift is still
followed."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import datasets

from streamrnn import GRUForecaster, LSTMForecaster
from streamrnn.forecasting import CLEAN_WARMUP

WATERFLOW = np.array([y for _, y in datasets.WaterFlow()])


def _one_step_mae(model, series, start, n=500):
    """Learn the series; the MAE of the one-step forecasts of the clean
    values from ``start`` on (the forecast made after learning t, of t + 1)."""
    errors = []
    for t, v in enumerate(series[: start + n]):
        model.learn_one(float(v))
        if t >= start:
            errors.append(abs(model.forecast(1)[0] - WATERFLOW[t + 1]))
    return float(np.mean(errors))


@pytest.mark.parametrize("cls, combine", [(LSTMForecaster, True), (GRUForecaster, True), (LSTMForecaster, False)])
@pytest.mark.parametrize("glitch", [1e6, 1e12, -9999.0])
def test_one_glitch_leaves_the_next_500_forecasts_within_10_percent(cls, combine, glitch):
    clean = _one_step_mae(cls(seed=0, combine=combine), WATERFLOW, 600)
    series = WATERFLOW.copy()
    series[600] = glitch * (WATERFLOW[600] if abs(glitch) > 1e3 else 1.0)
    glitched = _one_step_mae(cls(seed=0, combine=combine), series, 600)
    assert glitched <= 1.1 * clean, (glitched, clean)


def test_a_shift_beyond_the_glitch_bound_is_followed_from_its_third_value():
    series = np.concatenate([WATERFLOW[:400], WATERFLOW[400:500] + 1e4])
    model = LSTMForecaster(seed=0)
    for v in series[:402]:
        model.learn_one(float(v))
    assert model.forecast(1)[0] < 1e3  # two values far off: glitches
    model.learn_one(float(series[402]))
    assert model.forecast(1)[0] > 1e4 - 200  # the third: a level shift
    for v in series[403:]:
        model.learn_one(float(v))
    assert abs(model.forecast(1)[0] - series[-1]) < 5.0


@settings(max_examples=25, deadline=None)
@given(
    at=st.integers(CLEAN_WARMUP + 2, 230),
    value=st.floats(-1e100, 1e100, allow_nan=False) | st.sampled_from([1e100, -1e100, 0.0, -9999.0]),
    positive=st.booleans(),
)
def test_any_single_value_leaves_later_forecasts_finite_and_in_range(at, value, positive):
    rng = np.random.default_rng(at)
    y = 10.0 * np.sin(2 * np.pi * np.arange(240) / 24) + rng.normal(size=240) + (50.0 if positive else 0.0)
    span = y.max() - y.min()
    y[at] = value
    model = GRUForecaster(hidden_size=8, seed=0)
    for v in y:
        model.learn_one(float(v))
    forecasts = np.array(model.forecast(24))
    assert np.isfinite(forecasts).all()
    clean = np.delete(y, at)
    assert forecasts.min() >= clean.min() - 2 * span and forecasts.max() <= clean.max() + 2 * span, forecasts
    lo, hi = model.forecast_interval(24)
    assert all(math.isfinite(v) for v in lo + hi)


TRUMP = list(datasets.TrumpApproval())


def _regressor_mae(model, rows, start, n=500):
    errors = []
    for t, (x, y) in enumerate(rows[: start + n]):
        if t >= start:
            errors.append(abs(model.predict_one(x) - TRUMP[t][1]))
        model.learn_one(x, y)
    return float(np.mean(errors))


@pytest.mark.parametrize("glitch", [1e4, 1e300, -9999.0])
def test_one_glitch_target_leaves_the_next_500_predictions_of_a_regressor_within_10_percent(glitch):
    from streamrnn import LSTMRegressor

    clean = _regressor_mae(LSTMRegressor(seed=0), TRUMP, 200)
    rows = list(TRUMP)
    rows[200] = (rows[200][0], glitch)
    glitched = _regressor_mae(LSTMRegressor(seed=0), rows, 200)
    assert glitched <= 1.1 * clean, (glitched, clean)
    model = LSTMRegressor(seed=0)
    for x, y in rows[:201]:
        model.learn_one(x, y)
    assert model._net.n_skipped == 1  # the glitch's update, and no other


def test_one_glitch_feature_leaves_a_classifier_predicting_as_before():
    from streamrnn import GRUClassifier

    rows = [(x, y) for (x, y), _ in zip(datasets.Phishing(), range(600))]
    glitched = [(dict(x), y) for x, y in rows]
    glitched[300][0][next(iter(glitched[300][0]))] = 1e12
    a, b = GRUClassifier(seed=0), GRUClassifier(seed=0)
    agree = []
    for t, ((xa, ya), (xb, yb)) in enumerate(zip(rows, glitched)):
        if t > 300:
            agree.append(a.predict_one(xa) == b.predict_one(xb))
        a.learn_one(xa, ya)
        b.learn_one(xb, yb)
    assert np.mean(agree) >= 0.97


def test_a_regressor_follows_a_level_shift_of_its_target():
    from streamrnn import GRURegressor

    model = GRURegressor(seed=0)
    rng = np.random.default_rng(0)
    for t in range(300):
        model.learn_one({"a": float(rng.normal())}, float(rng.normal()) + (1e4 if t >= 200 else 0.0))
    assert abs(model.predict_one({"a": 0.0}) - 1e4) < 0.2 * 1e4
