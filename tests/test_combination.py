"""The forecasters' combination of candidates, their robust smoothing and
their prediction intervals."""

import pickle

import numpy as np
import pytest

from streamrnn import GRUForecaster, LSTMForecaster
from streamrnn.combination import MIN_COUNT, HorizonCombination
from streamrnn.persistence import load, save
from streamrnn.seasonal import detect_period
from streamrnn.smoothing import SeasonalSmoothing


def _seasonal(n, rng, noise=1.0, period=24):
    return 50.0 + 10.0 * np.sin(2 * np.pi * np.arange(n) / period) + noise * rng.normal(size=n)


def test_mixture_is_the_weighted_mean_of_the_weights_the_errors_give():
    rng = np.random.default_rng(1)
    comb = HorizonCombination(3, horizon=5)
    truth = rng.normal(size=400)
    for t in range(395):
        F = truth[t + 1 : t + 6] + rng.normal(size=(3, 5)) * [[1.0], [1.3], [5.0]]
        F[2, 3] = np.nan  # a candidate without a forecast at one horizon
        given, mixture, choice = comb.combine(F)
        comb.record(F, mixture)
        comb.observe(truth[t + 1])
    F = rng.normal(size=(3, 8))
    given, mixture, choice = comb.combine(F)
    w = comb.weights(8)
    assert w[2].max() == 0.0  # more than TRIM times the best error: no weight
    np.testing.assert_allclose(mixture, (w * F).sum(axis=0), rtol=1e-12)
    # the mixture is given where it erred less than the first candidate
    mse = comb.sq_errors / np.maximum(comb.counts, 1e-300)
    for h in range(8):
        j = min(h, 4)
        expected = mixture[h] if mse[3, j] < mse[0, j] else F[0, h]
        assert given[h] == expected and choice[h] == (mse[3, j] < mse[0, j])


def test_candidates_without_enough_scored_forecasts_take_no_weight():
    comb = HorizonCombination(2, horizon=2)
    F = np.array([[1.0, 2.0], [3.0, 4.0]])
    for t in range(int(MIN_COUNT) - 2):
        given, mixture, choice = comb.combine(F)
        # nothing scored: the mixture is the last candidate's forecast, and given
        assert given.tolist() == [3.0, 4.0] and mixture.tolist() == [3.0, 4.0] and choice.tolist() == [1, 1]
        comb.record(F, mixture)
        comb.observe(3.0)
    assert comb.weights(2) is None
    given, mixture, choice = comb.combine(np.array([[1.0, 2.0], [np.nan, 4.0]]))
    assert mixture.tolist() == given.tolist() == [1.0, 4.0]  # (the first's where the last has none)
    while comb.weights(2) is None:  # (counts are discounted: a few more than MIN_COUNT)
        comb.record(F, mixture)
        comb.observe(3.0)
    given, mixture, choice = comb.combine(F)  # scored now: candidate 1 alone erred less, at both horizons
    assert comb.weights(2) is not None and choice.tolist() == [1, 1]


def test_period_of_two_hourly_cycles_is_not_shifted_to_a_shorter_lag():
    rng = np.random.default_rng(0)
    y = _seasonal(49, rng, noise=0.5)
    assert detect_period(np.diff(y)) in (None, 24)
    day = np.sin(2 * np.pi * np.arange(24) / 24) + 0.3 * np.sin(4 * np.pi * np.arange(24) / 24)
    for cycles in (3, 4, 6):
        assert detect_period(np.diff(np.tile(day, cycles))) == 24


def test_smoothing_bounds_a_glitch_and_follows_a_level_shift():
    rng = np.random.default_rng(2)
    y = _seasonal(24 * 30, rng, noise=0.2)
    clean, glitched, shifted = SeasonalSmoothing(24), SeasonalSmoothing(24), SeasonalSmoothing(24)
    for t, v in enumerate(y):
        clean.update(v)
        glitched.update(1e12 if t == 400 else v)
        shifted.update(v + (100.0 if t >= 600 else 0.0))
    np.testing.assert_allclose(glitched.forecast(24), clean.forecast(24), atol=1.0)
    # each setting follows most of the shift within five periods (seasonal
    # indices that took part of it in are slower to give it back)
    gap = np.abs(shifted.forecast(24) - clean.forecast(24) - 100.0).max(axis=1)
    assert gap.max() < 10.0, gap


@pytest.mark.parametrize("combine", [True, False])
def test_forecaster_follows_a_level_shift_within_a_period(combine):
    rng = np.random.default_rng(7)
    y = _seasonal(24 * 30, rng, noise=0.2)
    y[600:] += 100.0
    model = LSTMForecaster(seed=0, seasonality=24, log_transform=False, combine=combine)
    for v in y[: 600 + 24]:
        model.learn_one(float(v))
    # a day on, back within the noise at every step of the next day: the
    # shift moved the level (and every candidate's), not the seasonal pattern
    error = np.abs(np.array(model.forecast(24)) - y[624:648]).max()
    assert error < 1.5, error


@pytest.mark.parametrize("cls", [LSTMForecaster, GRUForecaster])
def test_interval_coverage_on_a_stationary_series_at_every_horizon(cls):
    rng = np.random.default_rng(4)
    y = _seasonal(24 * 110, rng, noise=1.0)
    model = cls(seed=0, seasonality=24, log_transform=False)
    H, inside = 48, []
    for t, v in enumerate(y[:-H]):
        model.learn_one(float(v))
        if t >= 24 * 30:
            lo, hi = model.forecast_interval(H, coverage=0.95)
            future = y[t + 1 : t + 1 + H]
            inside.append((np.array(lo) <= future) & (future <= np.array(hi)))
    coverage = np.mean(inside, axis=0)
    assert coverage.min() >= 0.92 and coverage.max() <= 0.98, coverage


def test_interval_widens_where_the_noise_accumulates_and_is_pure():
    rng = np.random.default_rng(5)
    model = LSTMForecaster(seed=0, seasonality=None, log_transform=False)
    for v in np.cumsum(rng.normal(size=600)):
        model.learn_one(float(v))
    before = pickle.dumps(model)
    lo, hi = model.forecast_interval(20, coverage=0.9)
    assert pickle.dumps(model) == before
    width = np.array(hi) - np.array(lo)
    assert width[11] > 2.0 * width[0]  # a random walk: about sqrt(12) times
    assert np.all(np.diff(width[12:]) > 0)  # beyond the 12 tracked: grown as the square root
    f = model.forecast(20)
    assert all(a <= b <= c for a, b, c in zip(lo, f, hi))


def test_interval_survives_save_and_load_and_rejects_bad_coverage(tmp_path):
    rng = np.random.default_rng(6)
    model = GRUForecaster(seed=1)
    assert model.forecast_interval(2) == ([-np.inf] * 2, [np.inf] * 2)
    for v in 100 + _seasonal(300, rng):
        model.learn_one(float(v))
    save(model, tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    assert loaded.forecast_interval(30, coverage=0.8) == model.forecast_interval(30, coverage=0.8)
    for v in _seasonal(50, rng):
        model.learn_one(float(v))
        loaded.learn_one(float(v))
    assert loaded.forecast_interval(5) == model.forecast_interval(5)
    for bad in (0, 1, 1.5, -0.1, True, "0.9", float("nan")):
        with pytest.raises(ValueError, match="coverage"):
            model.forecast_interval(3, coverage=bad)


def test_combine_must_be_a_bool():
    for bad in (1, None, "yes"):
        with pytest.raises(ValueError, match="combine"):
            LSTMForecaster(combine=bad)


def test_forecasts_scale_with_the_series_from_1e_minus_50_to_1e50():
    rng = np.random.default_rng(1)
    y = 5 + np.sin(np.arange(400) * 2 * np.pi / 24) + 0.1 * rng.normal(size=400)
    forecasts = {}
    for scale in (1e-50, 1.0, 1e50):
        model = LSTMForecaster(seed=0)
        for v in y * scale:
            model.learn_one(float(v))
        assert model.period == 24 and model.log_scale
        forecasts[scale] = np.array(model.forecast(24)) / scale
    for scale in (1e-50, 1e50):
        np.testing.assert_allclose(forecasts[scale], forecasts[1.0], rtol=1e-3)


def test_intervals_scale_with_the_series_on_the_linear_scale_too():
    rng = np.random.default_rng(2)
    y = np.sin(np.arange(500) * 2 * np.pi / 24) + 0.3 * rng.normal(size=500)
    out = {}
    for scale in (1e-50, 1.0, 1e50):
        model = GRUForecaster(seed=0, log_transform=False)
        for v in y * scale:
            model.learn_one(float(v))
        lo, hi = model.forecast_interval(30, 0.9)
        out[scale] = (np.array(model.forecast(30)) / scale, np.array(lo) / scale, np.array(hi) / scale)
        assert np.all(out[scale][2] - out[scale][1] > 0)
    for scale in (1e-50, 1e50):
        for got, want in zip(out[scale], out[1.0]):
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def test_values_after_a_constant_start_are_learned_not_taken_for_glitches():
    rng = np.random.default_rng(3)
    demand = np.where(rng.random(300) < 0.25, 5.0, 0.0)
    demand[:30] = 0.0
    model = LSTMForecaster(seed=0)
    learned = []
    for v in demand:
        model.learn_one(float(v))
        learned.append(model._last)
    assert np.array_equal(learned, demand)  # every value learned as it was
    assert np.mean(model.forecast(24)) > 0.5


def test_tracked_horizons_are_capped():
    model = LSTMForecaster(seed=0, seasonality=400, hidden_size=4)
    for t in range(10):
        model.learn_one(float(t))
    assert model._combination.horizon == 48


def test_a_state_whose_network_is_narrower_than_its_feedback_is_refused():
    from streamrnn import OnlineRNN

    model = LSTMForecaster(seed=0, seasonality=4, hidden_size=4)
    for t in range(20):
        model.learn_one(float(t % 4))
    state = dict(model.__dict__, _net=OnlineRNN(input_size=1, hidden_size=4, seed=0))
    with pytest.raises(ValueError, match="at least 2 inputs"):
        LSTMForecaster.__new__(LSTMForecaster).__setstate__(state)
