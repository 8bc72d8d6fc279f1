"""Feature dicts and DataFrames to scaled vectors, for the River estimators.

Features get columns in order of first appearance (names that first appear
together are sorted, so key order never matters); a feature that is absent,
None or NaN is missing and reads as its running mean (0 once standardised).
A date or datetime becomes calendar features: the phase of its hour of the
day, day of the week and month of the year, each as a sine and a cosine
(named ``"<name>.hour_sin"`` and so on). Other non-numeric values and
infinities raise ``ValueError`` naming the feature.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import numbers

import numpy as np
import pandas as pd

from .kernels.scaling import standardize_rows

#: Standardised values are clipped to this many standard deviations.
CLIP = 10.0


def _value(name, v) -> float:
    if type(v) is float or type(v) is int:  # the common case, without the ABC checks below
        if math.isinf(v):
            raise ValueError(f"feature {name!r} is infinite")
        return float(v)
    if v is None:
        return math.nan
    if isinstance(v, numbers.Real):
        v = float(v)
        if math.isinf(v):
            raise ValueError(f"feature {name!r} is infinite")
        return v
    raise ValueError(f"feature {name!r} must be a real number, got {v!r}")


@functools.lru_cache(maxsize=256)
def calendar_features(name, when: dt.date) -> dict:
    """Sine and cosine of the hour-of-day, day-of-week and month-of-year
    phases of ``when`` (cached: forecasts meet the same dates many times;
    callers must not modify the dict)."""
    hour = when.hour + when.minute / 60 if isinstance(when, dt.datetime) else 0.0
    phases = {
        "hour": hour / 24,
        "weekday": when.weekday() / 7,
        "month": (when.month - 1 + (when.day - 1) / 31) / 12,
    }
    out = {}
    for part, phase in phases.items():
        out[f"{name}.{part}_sin"] = math.sin(2 * math.pi * phase)
        out[f"{name}.{part}_cos"] = math.cos(2 * math.pi * phase)
    return out


def expand(x: dict) -> dict:
    """``x`` with dates and datetimes replaced by their calendar features."""
    if not any(isinstance(v, dt.date) for v in x.values()):
        return x
    out = {}
    for k, v in x.items():
        if isinstance(v, dt.date):
            out.update(calendar_features(k, v))
        else:
            out[k] = v
    return out


def _sort_key(name):
    return (type(name).__name__, str(name))


class FeatureSpace:
    """Columns of the features seen so far."""

    def __init__(self):
        self.names: list = []
        self.index: dict = {}
        self._rows: dict = {}  # rows of dicts met before (forecasts meet the same ones often)

    def __getstate__(self) -> dict:
        return {"names": self.names, "index": self.index}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._rows = {}

    def __len__(self) -> int:
        return len(self.names)

    def register(self, names) -> int:
        """Give columns to the unseen ``names`` (sorted); returns how many."""
        new = sorted((n for n in names if n not in self.index), key=_sort_key)
        for name in new:
            self.index[name] = len(self.names)
            self.names.append(name)
        if new:
            self._rows.clear()
        return len(new)

    def present(self, x: dict) -> list:
        """The names of ``x`` with a value (not None or NaN); validates values."""
        return [k for k, v in expand(x).items() if not math.isnan(_value(k, v))]

    def row(self, x: dict) -> np.ndarray:
        """``x`` as a float64 row over the known columns, NaN where missing;
        unknown features are ignored."""
        try:
            key = tuple(x.items())
            cached = self._rows.get(key)
        except TypeError:  # an unhashable value: no caching
            key = cached = None
        if cached is not None:
            return cached.copy()
        row = np.full(len(self.names), np.nan)
        for k, v in expand(x).items():
            j = self.index.get(k)
            if j is not None:
                row[j] = _value(k, v)
            else:
                _value(k, v)
        if key is not None:
            if len(self._rows) >= 1024:
                self._rows.clear()
            self._rows[key] = row.copy()
        return row

    def frame(self, X: pd.DataFrame) -> tuple[np.ndarray, list]:
        """``X`` as a float64 matrix (NaN where missing) and its column names."""
        if not isinstance(X, pd.DataFrame):
            raise ValueError(f"X must be a pandas DataFrame, got {type(X).__name__}")
        dates = [c for c in X.columns if pd.api.types.is_datetime64_any_dtype(X[c])]
        if dates:
            parts = [X.drop(columns=dates)]
            for c in dates:
                calendar = [calendar_features(c, t) if not pd.isna(t) else {} for t in X[c].dt.to_pydatetime()]
                parts.append(pd.DataFrame(calendar, index=X.index))
            X = pd.concat(parts, axis=1)
        try:
            M = X.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
            raise ValueError(f"features must be real numbers; non-numeric columns: {bad}") from None
        if np.isinf(M).any():
            r, c = np.argwhere(np.isinf(M))[0]
            raise ValueError(f"feature {X.columns[c]!r} is infinite in row {r}")
        return M, list(X.columns)

    def arrange(self, M: np.ndarray, columns: list) -> np.ndarray:
        """Reorder the columns of ``M`` (named ``columns``) onto the known
        columns, NaN where a known feature is absent."""
        out = np.full((M.shape[0], len(self.names)), np.nan)
        for c, name in enumerate(columns):
            j = self.index.get(name)
            if j is not None:
                out[:, j] = M[:, c]
        return out


def first_appearances(M: np.ndarray, columns: list, known: dict) -> dict[int, list]:
    """Rows at which unseen columns first have a value: ``{row: [names]}``."""
    events: dict[int, list] = {}
    for c, name in enumerate(columns):
        if name in known:
            continue
        rows = np.flatnonzero(~np.isnan(M[:, c]))
        if rows.size:
            events.setdefault(int(rows[0]), []).append(name)
    return events


class RunningScaler:
    """Per-column running standardisation (see :func:`standardize_rows`)."""

    def __init__(self, n: int = 0):
        self.stats = np.zeros((3, n))

    def grow(self, n: int) -> None:
        if n > self.stats.shape[1]:
            self.stats = np.hstack([self.stats, np.zeros((3, n - self.stats.shape[1]))])

    def transform(self, M: np.ndarray, update: bool) -> np.ndarray:
        """Standardise the rows of ``M`` in order; with ``update`` each row then
        joins the statistics."""
        M = np.ascontiguousarray(M, dtype=np.float64)
        out = np.empty_like(M)
        standardize_rows(self.stats, M, out, update, CLIP)
        return out

    def unscale(self, Z: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`transform` with the current statistics."""
        count, mean, m2 = self.stats
        std = np.where((count > 1) & (m2 > 0), np.sqrt(m2 / np.maximum(count, 1)), 0.0)
        return mean + Z * std
