"""Finding periods and the seasonal base forecast."""

import numpy as np

from streamrnn.seasonal import GAMMAS, SeasonalBase, calendar_period, detect_period, find_period


def test_detect_period_finds_a_seasonal_pattern_and_not_noise():
    rng = np.random.default_rng(0)
    pattern = rng.normal(size=7) * 2
    y = np.tile(pattern, 20) + 0.3 * rng.normal(size=140)
    assert detect_period(np.diff(y)) == 7
    assert detect_period(np.diff(np.cumsum(rng.normal(size=500)))) is None  # a random walk
    assert detect_period(np.ones(50)) is None  # no variance
    assert detect_period(np.diff(y)[:5]) is None  # too short


def test_short_range_persistence_is_not_a_period():
    rng = np.random.default_rng(1)
    d = np.zeros(600)
    for t in range(1, 600):
        d[t] = 0.9 * d[t - 1] + rng.normal()
    assert detect_period(d) is None


def test_find_period_sees_smooth_cycles_through_the_levels():
    rng = np.random.default_rng(2)
    y = 3 * np.sin(2 * np.pi * np.arange(600) / 24) + rng.normal(size=600)
    assert detect_period(np.diff(y)) is None  # the noise hides it in the changes
    assert find_period(np.diff(y)) == 24


def test_calendar_periods():
    assert calendar_period(3600) == 24
    assert calendar_period(86400) == 7
    assert calendar_period(92 * 86400) == 4
    assert calendar_period(7 * 86400) == 52
    assert calendar_period(45 * 86400) is None


def test_seasonal_base_learns_the_changes_of_a_pattern_and_declines_noise():
    pattern = np.array([1.0, -2.0, 0.5, 0.5])
    base = SeasonalBase(4)
    for t in range(40):
        base.update(t % 4, pattern[t % 4])
    assert base.best is not None
    np.testing.assert_allclose([base.forecast(p) for p in range(4)], pattern)
    noise = SeasonalBase(4)
    rng = np.random.default_rng(0)
    for t in range(400):
        noise.update(t % 4, rng.normal())
    assert noise.best is None and noise.forecast(1) == 0.0
    assert len(GAMMAS) == noise.errors.shape[0]
