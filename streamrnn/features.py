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

from .keys import holds_nan
from .kernels.scaling import FLOAT_MAX, standardize_rows
from .smoothing import SHIFT_AFTER

#: Standardised values are clipped to this many standard deviations.
CLIP = 10.0
#: A guarded scaler's glitch bound, in standard deviations: beyond it a value
#: has a chance below 1 / GLITCH**2 = 1e-4 under any law of that variance
#: (Chebyshev), and is not learned unless it starts a level shift
#: (:data:`~streamrnn.smoothing.SHIFT_AFTER` such values in a row, on one side).
GLITCH = 100.0
#: Values counted before a guarded scaler's guard starts.
GUARD_WARMUP = 20


def _value(name, v) -> float:
    if type(v) is float:  # the common cases, without the ABC checks below
        if math.isinf(v):
            raise ValueError(f"feature {name!r} is infinite")
        return v
    if type(v) is int:
        try:
            return float(v)
        except OverflowError:  # an int beyond the floats
            raise ValueError(f"feature {name!r} is infinite") from None
    if v is None or v is pd.NA:
        return math.nan
    if isinstance(v, np.bool_):  # as a bool (an int) is
        return float(v)
    if isinstance(v, numbers.Real):
        try:
            v = float(v)
        except OverflowError:  # an int beyond the floats
            v = math.inf
        if math.isinf(v):
            raise ValueError(f"feature {name!r} is infinite")
        return v
    raise ValueError(f"feature {name!r} must be a real number, got {v!r}")


@functools.lru_cache(maxsize=256)
def _calendar_names(name) -> tuple:
    return tuple(f"{name}.{part}_{f}" for part in ("hour", "weekday", "month") for f in ("sin", "cos"))


def calendar_features(name, when: dt.date) -> dict:
    """Sine and cosine of the hour-of-day, day-of-week and month-of-year
    phases of ``when``, on its own clock (cached by the clock's reading, not
    by the instant: equal instants in two time zones have different hours;
    forecasts meet the same dates many times; callers must not modify the
    dict)."""
    if isinstance(when, dt.datetime):
        return _calendar(name, when.hour, when.minute, when.weekday(), when.month, when.day)
    return _calendar(name, 0, 0, when.weekday(), when.month, when.day)


@functools.lru_cache(maxsize=1024)
def _calendar(name, hour: int, minute: int, weekday: int, month: int, day: int) -> dict:
    tau = 2 * math.pi
    h, w, m = tau * ((hour + minute / 60) / 24), tau * (weekday / 7), tau * ((month - 1 + (day - 1) / 31) / 12)
    values = (math.sin(h), math.cos(h), math.sin(w), math.cos(w), math.sin(m), math.cos(m))
    return dict(zip(_calendar_names(name), values))


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
    """The order of feature names that first appear together: by type name,
    then by ``str`` (the order of every version so far), with the items of
    sets and frozensets sorted (their ``str`` follows their hashes, which
    change with ``PYTHONHASHSEED``: the model would differ from run to run)."""
    return (type(name).__name__, str(name) if type(name) in _PLAIN else _canonical(name, str))


_PLAIN = frozenset({str, int, float, bool})
_HASH_ORDERED = (set, frozenset)


def _canonical(name, text) -> str:
    """``text(name)`` (``str`` or ``repr``), but with the items of every set
    and frozenset in it (at any depth inside tuples) in sorted order, so the
    same whatever the hash seed. Names without such a container keep
    ``text(name)`` exactly."""
    if isinstance(name, _HASH_ORDERED):
        items = sorted(_canonical(item, repr) for item in name)
        return f"{type(name).__name__}({{{', '.join(items)}}})" if items else f"{type(name).__name__}()"
    if type(name) is tuple and any(isinstance(item, _HASH_ORDERED + (tuple,)) for item in name):
        items = [_canonical(item, repr) for item in name]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    return text(name)


def check_name(name) -> None:
    """Refuse a feature name that is NaN-like (unequal to itself: ``nan``,
    ``pd.NA``, ``NaT``, or a tuple or frozenset holding one), as keys are
    refused: such a name has no equality to go by, so each row would add an
    input of its own."""
    if holds_nan(name):
        raise ValueError(f"feature name {name!r} is or holds NaN: a missing name? (NaN never equals itself, "
                         "so each row would add a feature of its own)")


class FeatureSpace:
    """Columns of the features seen so far."""

    def __init__(self):
        self.names: list = []
        self.index: dict = {}
        self._rows: dict = {}  # rows of dicts met before (forecasts meet the same ones often)
        self._window: tuple | None = None  # the last rows(): copies of its dicts, its matrix, completeness
        self._calendar_columns: dict = {}  # date feature -> columns of its calendar features, once all have one
        self._buffer: np.ndarray | None = None  # rows of which the window's matrix is a slice (it slides on)

    def __getstate__(self) -> dict:
        return {"names": self.names, "index": self.index}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._rows = {}
        self._window = None
        self._calendar_columns = {}
        self._buffer = None

    def __len__(self) -> int:
        return len(self.names)

    def unseen(self, names) -> list:
        """The ``names`` without a column yet, once each, in the order they
        would get columns; a NaN-like name raises ``ValueError``."""
        index = self.index
        new = list(dict.fromkeys(n for n in names if n not in index))
        for name in new:
            check_name(name)
        return sorted(new, key=_sort_key)

    def register(self, names) -> int:
        """Give columns to the unseen ``names`` (sorted); returns how many.
        A NaN-like name raises ``ValueError`` (and none is registered)."""
        new = self.unseen(names)
        for name in new:
            self.index[name] = len(self.names)
            self.names.append(name)
        if new:
            self._rows.clear()
            self._window = None
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
                check_name(k)
                _value(k, v)
        if key is not None and not _has_aware_datetime(x):
            # (an aware datetime equals its instant in every zone, whose hours differ: not cached)
            if len(self._rows) >= 1024:
                self._rows.clear()
            self._rows[key] = row.copy()
        return row

    def rows(self, xs) -> np.ndarray:
        """The dicts ``xs`` (None for none) as float64 rows over the known
        columns, NaN where missing, like :meth:`row`. Rows of dicts equal to
        those of the previous call, or to them one step on (the features of
        a forecast's horizon, one step later), are reused."""
        return self._window_rows(xs).copy()

    def _window_rows(self, xs) -> np.ndarray:
        """:meth:`rows`, without the copy: the caller must not modify it, and
        it holds only until the next call."""
        if type(xs) is not list:
            xs = list(xs)
        n = len(xs)
        window = self._window
        if window is not None:
            old, M, old_complete, start = window
            for shift in (1, 0):
                k = min(n, len(old) - shift)
                try:
                    same = k > 0 and old[shift : shift + k] == xs[:k]
                except (TypeError, ValueError):  # values that do not compare
                    same = False
                if same:
                    if shift == 0 and k == n == len(old):  # the same rows again
                        return M
                    buffer = self._buffer
                    if shift == 1 and k == n - 1 and len(old) == n and start + n < len(buffer):
                        # one step on: slide the window down the buffer
                        out, start = buffer[start + 1 : start + 1 + n], start + 1
                    else:
                        out, start = self._fresh(n)
                        out[:k] = M[shift : shift + k]
                    return self._complete(xs, k, out, start, old[shift : shift + k], old_complete[shift : shift + k])
        out, start = self._fresh(n)
        return self._complete(xs, 0, out, start, [], [])

    def _fresh(self, n: int) -> tuple[np.ndarray, int]:
        """Room for a window of ``n`` rows at the start of the buffer (a new
        one, if it is too small), and its start."""
        buffer, width = self._buffer, len(self.names)
        if buffer is None or buffer.shape[1] != width or len(buffer) < 2 * n:
            buffer = self._buffer = np.empty((max(4 * n, 64), width))
        return buffer[:n], 0

    def _complete(self, xs: list, done: int, out: np.ndarray, start: int, copies: list, complete: list) -> np.ndarray:
        """Fill the rows of ``xs`` from ``done`` on into ``out``, and make it the window."""
        row_and_completeness = self._row_and_completeness
        self._aware = False
        try:
            for i in range(done, len(xs)):
                x = xs[i]
                out[i], known = row_and_completeness(x or {})
                copies.append(None if x is None else dict(x))
                complete.append(known)
        except BaseException:
            # a bad value part-way: rows before it may be written over the last
            # window's matrix (it slides on in the same buffer), which must not serve again
            self._window = None
            raise
        # rows are reused for equal dicts; an aware datetime equals its instant in every zone, whose hours differ
        self._window = None if self._aware else (copies, out, complete, start)
        return out

    def _row_and_completeness(self, x: dict) -> tuple[list, bool]:
        """:meth:`row` of ``x`` (as a list), and whether all its features with
        a value have columns."""
        row = [math.nan] * len(self.names)
        known = True
        index = self.index
        for k, v in x.items():
            if isinstance(v, dt.date):
                if isinstance(v, dt.datetime) and v.tzinfo is not None:
                    self._aware = True
                # a date's calendar features are finite floats
                columns = self._calendar_columns.get(k)
                if columns is None:
                    columns = tuple(index.get(name) for name in _calendar_names(k))
                    if None not in columns:  # columns are never taken back: cache it
                        self._calendar_columns[k] = columns
                # (the values are in the order of _calendar_names)
                for j, value in zip(columns, calendar_features(k, v).values()):
                    if j is not None:
                        row[j] = value
                    else:
                        known = False
            else:
                value = _value(k, v)
                j = index.get(k)
                if j is not None:
                    row[j] = value
                else:
                    check_name(k)
                    if value == value:  # not NaN
                        known = False
        return row, known

    def known_row(self, x: dict | None) -> np.ndarray | None:
        """The row of ``x`` if it equals the first dict of the last
        :meth:`rows` and all its features with a value have columns; else None."""
        window = self._window
        if window is None or not window[0] or not window[2][0]:
            return None
        try:
            same = window[0][0] == x
        except (TypeError, ValueError):
            return None
        return window[1][0] if same else None

    def frame(self, X: pd.DataFrame) -> tuple[np.ndarray, list]:
        """``X`` as a float64 matrix (NaN where missing) and its column names."""
        if not isinstance(X, pd.DataFrame):
            raise ValueError(f"X must be a pandas DataFrame, got {type(X).__name__}")
        for name in X.columns:
            check_name(name)
        if X.columns.has_duplicates:
            raise ValueError(f"X has duplicate column names: {list(X.columns[X.columns.duplicated()].unique())}")
        dates = [c for c in X.columns if _holds_dates(X[c])]
        if dates:
            parts = [X.drop(columns=dates)]
            for c in dates:
                column = X[c].dt.to_pydatetime() if pd.api.types.is_datetime64_any_dtype(X[c]) else X[c]
                calendar = [calendar_features(c, t) if isinstance(t, dt.date) and not pd.isna(t) else {}
                            for t in column]
                parts.append(pd.DataFrame(calendar, index=X.index))
            X = pd.concat(parts, axis=1)
        M = np.empty(X.shape)
        bad = []
        for j, name in enumerate(X.columns):
            column = X.iloc[:, j]
            if column.dtype == object:  # each value as learn_one takes it (not '1' nor a timedelta)
                for i, v in enumerate(column):
                    try:
                        M[i, j] = _value(name, v)
                    except ValueError:
                        if isinstance(v, numbers.Real):  # an int beyond the floats
                            raise ValueError(f"feature {name!r} is infinite in row {i}") from None
                        bad.append(name)
                        break
            elif pd.api.types.is_numeric_dtype(column):  # bools and nullable dtypes included
                M[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
            else:  # strings, categories, timedeltas
                bad.append(name)
        if bad:
            raise ValueError(f"features must be real numbers; non-numeric columns: {bad}")
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


def _has_aware_datetime(x: dict) -> bool:
    return any(isinstance(v, dt.datetime) and v.tzinfo is not None for v in x.values())


def _holds_dates(column: pd.Series) -> bool:
    """Whether a column holds dates: a datetime64 dtype, or objects that are
    all dates or datetimes (missing values aside), as ``learn_one`` takes them."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return True
    if column.dtype != object:
        return False
    values = column.dropna()
    return len(values) > 0 and all(isinstance(v, dt.date) for v in values)


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
    """Per-column running standardisation (see :func:`standardize_rows`):
    ``stats`` holds each column's count, mean and root of the sum of squared
    deviations."""

    _rooted = False  # states saved before the root was kept hold the sum of squares itself

    def __init__(self, n: int = 0, guard: bool = False):
        self.stats = np.zeros((3, n))
        self._rooted = True
        # the glitch guard: values beyond GLITCH standard deviations (off: 0)
        self.glitch = GLITCH if guard else 0.0
        self.glitch_out = 0.0  # what a glitch standardises to (NaN: a target not learned)
        self.beyond = np.zeros(n)  # per column, signed count of the last values beyond them

    def __setstate__(self, state: dict) -> None:
        if not state.get("_rooted", False):  # an earlier state: its sum of squares as a root
            state = dict(state, stats=state["stats"].copy(), _rooted=True)
            state["stats"][2] = np.minimum(np.sqrt(state["stats"][2]), FLOAT_MAX)
        if "glitch" not in state:  # saved before the guard: unguarded, as it was
            state = dict(state, glitch=0.0, glitch_out=0.0, beyond=np.zeros(state["stats"].shape[1]))
        self.__dict__.update(state)

    def grow(self, n: int) -> None:
        if n > self.stats.shape[1]:
            self.stats = np.hstack([self.stats, np.zeros((3, n - self.stats.shape[1]))])
            self.beyond = np.concatenate([self.beyond, np.zeros(n - len(self.beyond))])

    def transform(self, M: np.ndarray, update: bool) -> np.ndarray:
        """Standardise the rows of ``M`` in order; with ``update`` each row then
        joins the statistics."""
        M = np.ascontiguousarray(M, dtype=np.float64)
        self._check_columns(M.shape[1])
        out = np.empty_like(M)
        standardize_rows(self.stats, M, out, update, CLIP, self.beyond, self.glitch, self.glitch_out, GUARD_WARMUP,
                         SHIFT_AFTER)
        return out

    def _check_columns(self, n: int) -> None:
        """The kernel indexes the statistics by column without bounds checks:
        statistics for fewer columns (an edited file) must not reach it."""
        if n > self.stats.shape[1] or n > len(self.beyond):
            raise ValueError(f"the scaler holds statistics for {self.stats.shape[1]} columns, got {n}")

    def transform_row(self, row: np.ndarray) -> np.ndarray:
        """``transform(row[None, :], update=True)[0]`` of a float64 row."""
        self._check_columns(len(row))
        out = np.empty((1, len(row)))
        standardize_rows(self.stats, row.reshape(1, -1), out, True, CLIP, self.beyond, self.glitch,
                         self.glitch_out, GUARD_WARMUP, SHIFT_AFTER)
        return out[0]

    def unscale(self, Z: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`transform` with the current statistics."""
        count, mean, root = self.stats
        std = np.where((count > 1) & (root > 0), root / np.sqrt(np.maximum(count, 1)), 0.0)
        return mean + Z * std
