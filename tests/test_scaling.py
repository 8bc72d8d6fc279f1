"""Running standardisation of features (kernels/scaling.py) against NumPy."""

import numpy as np

from streamrnn.features import CLIP, RunningScaler


def reference(X):
    """Each value over the mean and population standard deviation of the
    column's earlier values (missing ones left out), clipped; 0 before two
    values, and after a constant history 0 for the same value, ±CLIP else."""
    out = np.zeros_like(X)
    for j in range(X.shape[1]):
        seen = []
        for t, x in enumerate(X[:, j]):
            if np.isnan(x):
                continue
            if len(seen) > 1:
                mean, sd = np.mean(seen), np.std(seen)
                if sd > 0:
                    out[t, j] = np.clip((x - mean) / sd, -CLIP, CLIP)
                elif x != mean:
                    out[t, j] = np.copysign(CLIP, x - mean)
            seen.append(x)
    return out


def test_standardisation_matches_numpy_row_by_row_and_in_batches():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(300, 3))
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values
    X[:40, 1] = 5.0  # a constant stretch, then a change
    X[40, 1] = 5.5
    X[150, 2] = 1e3  # far out: clipped
    expected = reference(X)
    assert expected[40, 1] == CLIP and expected[150, 2] == CLIP
    rows = RunningScaler(3)
    by_row = np.array([rows.transform_row(x) for x in X])
    batches = RunningScaler(3)
    in_batches = np.vstack([batches.transform(X[a : a + 37], update=True) for a in range(0, 300, 37)])
    np.testing.assert_allclose(by_row, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(in_batches, by_row)
    before = batches.stats.copy()
    batches.transform(X[:5], update=False)  # no update: the statistics stay
    np.testing.assert_array_equal(batches.stats, before)


def by_row(X):
    scaler = RunningScaler(X.shape[1])
    return np.array([scaler.transform_row(x) for x in X]), scaler


def test_values_near_the_ends_of_the_floats_are_scaled_as_their_rescaled_copies():
    """Standardisation is scale-free: values of 1e200 (whose squares
    overflow) or 1e-300 (whose squares underflow) scale as the same values
    near 1 do, and the statistics stay finite."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(200, 2))
    base[100, 0] = 40.0  # far out: clipped
    expected = reference(base)
    for c in (1e200, 1e-300, 1e300):
        out, scaler = by_row(base * c)
        np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-9, err_msg=f"scale {c}")
        assert np.isfinite(scaler.stats).all()
        np.testing.assert_allclose(scaler.unscale(np.ones((1, 2)))[0] / c,
                                   base.mean(0) + base.std(0), rtol=1e-9)


def test_values_whose_differences_overflow_keep_the_statistics_finite():
    """1e308 then -1e308: the difference overflows; the mean stays between
    them and the scale at the largest float, so later values stay
    standardised (a sum of squares went infinite, then NaN, for good)."""
    X = np.array([[1e308], [-1e308], [1.0], [2.0], [1.7e308], [-1.7e308], [3.0]])
    out, scaler = by_row(X)
    assert np.isfinite(out).all() and np.isfinite(scaler.stats).all()
    assert abs(scaler.stats[1, 0]) <= 1.7e308 and scaler.stats[2, 0] == np.finfo(np.float64).max
    assert out[4, 0] > 0 > out[5, 0]  # still on the right side of the mean


def test_states_saved_with_the_sum_of_squares_load_as_its_root():
    X = np.random.default_rng(2).normal(5.0, 3.0, size=(50, 2))
    _, scaler = by_row(X)
    old = {"stats": scaler.stats.copy()}  # an earlier state: count, mean, sum of squares, no marker
    old["stats"][2] = old["stats"][2] ** 2
    loaded = RunningScaler.__new__(RunningScaler)
    loaded.__setstate__(old)
    np.testing.assert_allclose(loaded.stats, scaler.stats, rtol=1e-12)
    row = np.array([4.0, 9.0])
    np.testing.assert_allclose(loaded.transform_row(row), scaler.transform_row(row.copy()), rtol=1e-9)
    again = RunningScaler.__new__(RunningScaler)  # a current state is taken as it is
    again.__setstate__(dict(loaded.__dict__))
    np.testing.assert_array_equal(again.stats, loaded.stats)


def test_a_regressor_keeps_finite_predictions_after_huge_targets():
    from streamrnn import LSTMRegressor

    model = LSTMRegressor(hidden_size=4, seed=0)
    for i, y in enumerate([1e200, -1e200, 1.0, 2.0, 3.0]):
        model.learn_one({"a": float(i)}, y)
    assert np.isfinite(model.predict_one({"a": 1.0}))
    assert np.isfinite(model._y_scaler.stats).all()
