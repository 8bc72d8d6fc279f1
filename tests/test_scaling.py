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
