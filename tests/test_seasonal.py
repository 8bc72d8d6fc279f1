"""Finding periods and the seasonal base forecast."""

import numpy as np
import pytest

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


def _reference_base(period, phases, changes):
    """Per-phase EWMAs and summed one-step errors, one constant at a time, in plain Python."""
    means = {g: {} for g in GAMMAS}
    errors = {g: 0.0 for g in GAMMAS}
    n = 0
    for p, d in zip(phases, changes):
        if p in means[GAMMAS[0]]:
            n += 1
            for g in GAMMAS:
                errors[g] += abs(means[g][p] - d)
                means[g][p] += g * (d - means[g][p])
        else:
            for g in GAMMAS:
                means[g][p] = d
    return means, errors, n


def test_seasonal_base_weighs_the_constants_by_their_laplace_likelihood():
    rng = np.random.default_rng(3)
    pattern = np.array([2.0, -1.0, 0.5, -1.5, 0.0])
    changes = np.tile(pattern, 8) + 0.3 * rng.normal(size=40)
    phases = np.arange(40) % 5
    base = SeasonalBase(5)
    for p, d in zip(phases, changes):
        base.update(int(p), float(d))
    means, errors, n = _reference_base(5, phases, changes)
    e = np.array([errors[g] for g in GAMMAS])
    w = np.exp(-(e - e.min()) * n / e.min())
    w /= w.sum()
    np.testing.assert_allclose(base.weights, w)
    for p in range(5):
        np.testing.assert_allclose(base.forecast(p), sum(wk * means[g][p] for wk, g in zip(w, GAMMAS)))
    np.testing.assert_allclose(base.forecast_phases(np.array([3, 4, 0])), [base.forecast(p) for p in (3, 4, 0)])
    assert base.best == int(np.argmax(w))


def test_tied_constants_are_averaged():
    base = SeasonalBase(2)
    for p, d in [(0, 1.0), (1, -1.0), (0, 3.0)]:  # one error each, all equal: a tie
        base.update(p, d)
    np.testing.assert_allclose(base.weights, np.full(len(GAMMAS), 1 / len(GAMMAS)))
    np.testing.assert_allclose(base.forecast(0), np.mean([1.0 + g * (3.0 - 1.0) for g in GAMMAS]))
    assert base.forecast(1) == pytest.approx(-1.0, rel=1e-15)


def test_a_period_known_beforehand_is_trusted_from_its_first_cycle():
    with_prior, without = SeasonalBase(3, prior=True), SeasonalBase(3)
    for t, d in enumerate([1.0, -2.0]):
        with_prior.update(t, d)
        without.update(t, d)
    assert with_prior.weights is None  # a phase not seen yet
    with_prior.update(2, 0.5)
    without.update(2, 0.5)
    assert [with_prior.forecast(p) for p in range(3)] == pytest.approx([1.0, -2.0, 0.5], rel=1e-15)
    assert without.weights is None and without.forecast(0) == 0.0
    for t in range(3, 60):  # evidence against the pattern: no change wins
        with_prior.update(t % 3, 0.0)
    assert with_prior.weights is None


def test_seasonal_base_pickles_without_its_cache():
    import pickle

    base = SeasonalBase(4)
    for t in range(12):
        base.update(t % 4, float(t % 4))
    before = pickle.dumps(base)
    base.forecast(1)  # computes and caches the weights
    assert pickle.dumps(base) == before
    assert pickle.loads(before).forecast(1) == base.forecast(1)


def _weights_in_python(errors, no_change_error, n_errors, margin):
    """The weights as computed in Python floats before the kernel."""
    import math

    listed = errors.tolist()
    total = sum(listed)
    if total != total:
        return None
    lowest = min(listed)
    if not lowest < margin * no_change_error:
        return None
    if lowest <= 0:
        w = [1.0 if v <= 0 else 0.0 for v in listed]
    else:
        scale = n_errors / lowest
        w = [math.exp((lowest - v) * scale) for v in listed]
    norm = sum(w)
    return np.array([v / norm for v in w])


def test_the_weights_kernel_gives_the_bits_of_the_python_it_replaced():
    from streamrnn.kernels.combination import seasonal_weights
    from streamrnn.seasonal import MARGIN

    rng = np.random.default_rng(7)
    given = 0
    for _ in range(3000):
        errors = rng.exponential(1.0, len(GAMMAS)) * rng.choice([1.0, 0.0, 1e-300, 1e6], len(GAMMAS), p=[0.7, 0.1, 0.1, 0.1])
        if rng.random() < 0.05:
            errors[rng.integers(len(GAMMAS))] = np.nan
        no_change = float(np.nanmin(errors) / MARGIN * rng.uniform(0.8, 1.5)) if rng.random() < 0.9 else 0.0
        n = int(rng.integers(1, 5000))
        expected = _weights_in_python(errors, no_change, n, MARGIN)
        out = np.full(len(GAMMAS), -1.0)
        if seasonal_weights(errors, no_change, n, MARGIN, out):
            assert expected is not None and out.tobytes() == expected.tobytes()
            given += 1
        else:
            assert expected is None and (out == -1.0).all()
    assert given > 800  # both branches met (982 of 3000 given)
