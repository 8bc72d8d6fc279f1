"""Plots of forecasts and anomaly scores, with matplotlib.

matplotlib is an optional dependency (``pip install streamrnn[plot]``); it is
imported when a function is called, not with this module. Each function draws
on the ``ax`` it is given (a new figure when None) and returns that Axes; the
caller shows the figure, or writes and closes it with :func:`save`, e.g.::

    from streamrnn import plot

    ax = plot.forecast(actual, predicted, index=dates, future=model.forecast(12))
    plot.save(ax, "forecast.png")

    ax = plot.anomalies(scores, threshold=0.1, values=values, index=dates, windows=windows)

The index (the x axis) may hold numbers, datetimes (``datetime``,
``numpy.datetime64``, pandas timestamps) or date strings, which are parsed with
pandas. Inputs are checked before matplotlib is imported:

>>> from streamrnn import plot
>>> plot.forecast([1.0, 2.0, 3.0], predicted=[1.0, 2.0])
Traceback (most recent call last):
    ...
ValueError: predicted has 2 values, actual has 3
>>> plot.anomalies([0.1, 0.9], flags=[False, True, False])
Traceback (most recent call last):
    ...
ValueError: flags has 3 values, scores has 2
"""

from __future__ import annotations

import warnings

import numpy as np

from .checks import is_finite_real

__all__ = ["anomalies", "forecast", "save"]

#: Colours (matplotlib's default cycle) of each kind of artist.
_COLORS = {
    "actual": "C0",
    "predicted": "C1",
    "future": "C2",
    "score": "C0",
    "threshold": "C3",
    "flagged": "C3",
    "window": "C2",
    "values": "0.45",
}


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "streamrnn.plot needs matplotlib; install it with: pip install streamrnn[plot]"
        ) from error
    return plt


def _axes(ax):
    """``ax``, or the Axes of a new figure."""
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(figsize=(10, 4), layout="constrained")
    return ax


# ---------------------------------------------------------------- validation


def _series(values, name: str, size: int | None = None, of: str | None = None) -> np.ndarray:
    """``values`` as a 1-D float array (None becomes NaN), non-empty, or of
    length ``size`` (that of the argument ``of``) if given."""
    if values is not None and not hasattr(values, "__len__"):
        values = list(values)
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must hold numbers: {error}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if size is None and array.size == 0:
        raise ValueError(f"{name} is empty")
    if size is not None and array.size != size:
        raise ValueError(f"{name} has {array.size} values, {of} has {size}")
    return array


def _band_edge(values, name: str, size: int) -> np.ndarray:
    """An interval's bound as :func:`_series` of ``future``'s length, with
    infinite bounds (not known yet) as NaN: gaps in the band."""
    array = _series(values, name, size, "future")
    return np.where(np.isinf(array), np.nan, array)  # (a new array: the caller's stays as it was)


def _flags(flags, size: int) -> np.ndarray:
    """``flags`` as a boolean array of length ``size``."""
    array = np.asarray(list(flags) if not hasattr(flags, "__len__") else flags)
    if array.ndim != 1:
        raise ValueError(f"flags must be one-dimensional, got shape {array.shape}")
    if array.size != size:
        raise ValueError(f"flags has {array.size} values, scores has {size}")
    if array.dtype != bool:
        if array.dtype.kind not in "biuf" or not np.isin(array, (0, 1)).all():
            raise ValueError("flags must hold booleans (or 0 and 1)")
        array = array.astype(bool)
    return array


def _is_numeric(index: np.ndarray) -> bool:
    return index.dtype.kind in "biuf"


def _parse_dates(values):
    """Date strings (one, or an array of them) as pandas timestamps."""
    import pandas as pd

    try:
        with warnings.catch_warnings():  # mixed formats fall back to dateutil: fine here
            warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
            return pd.to_datetime(values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot read these strings as dates: {error}") from None


def _index(index, size: int, name: str = "index", of: str = "actual") -> np.ndarray:
    """The x positions: ``0 .. size - 1`` when ``index`` is None; numbers,
    datetimes or parsed date strings otherwise."""
    if index is None:
        return np.arange(size)
    if not hasattr(index, "__len__"):
        index = list(index)
    if len(index) != size:
        raise ValueError(f"{name} has {len(index)} values, {of} has {size}")
    array = np.asarray(index)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.dtype.kind in "US" or (array.dtype == object and size and all(isinstance(v, str) for v in array)):
        array = np.asarray(_parse_dates(array.astype(str)))
    elif array.dtype.kind == "c" or array.dtype.kind == "b":
        raise ValueError(f"{name} must hold numbers or datetimes, got dtype {array.dtype}")
    elif array.dtype.kind == "u":  # differences of unsigned positions would wrap around
        array = array.astype(np.float64)
    return array


def _step(index: np.ndarray):
    """The spacing of the last two positions (1 for a single number)."""
    if len(index) >= 2:
        return index[-1] - index[-2]
    if _is_numeric(index):
        return 1
    return None


def _continue(index: np.ndarray, count: int) -> np.ndarray:
    """``count`` positions after the end of ``index``, at its last spacing."""
    step = _step(index)
    if step is None:
        raise ValueError("future_index is needed to place future after a single date")
    return np.array([index[-1] + step * (k + 1) for k in range(count)])


def _bound(value):
    """A window bound: date strings are parsed."""
    return _parse_dates(value) if isinstance(value, str) else value


def _windows(windows) -> list[tuple]:
    out = []
    for i, window in enumerate(windows):
        try:
            start, end = window
        except (TypeError, ValueError):
            raise ValueError(f"windows[{i}] must be a (start, end) pair, got {window!r}") from None
        start, end = _bound(start), _bound(end)
        try:
            reversed_ = bool(end < start)
        except TypeError:
            raise ValueError(f"windows[{i}]: cannot compare {start!r} and {end!r}") from None
        if reversed_:
            raise ValueError(f"windows[{i}] ends before it starts: {window!r}")
        out.append((start, end))
    return out


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) rows of each run of consecutive True values."""
    edges = np.diff(np.r_[0, flags.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def _edge(index: np.ndarray, row: int, side: int):
    """Half-way from ``index[row]`` to its neighbour on ``side`` (-1: left,
    1: right); at an end, half the spacing to the other neighbour."""
    here = index[row]
    neighbour = row + side
    if 0 <= neighbour < len(index):
        return here + (index[neighbour] - here) / 2
    neighbour = row - side
    if 0 <= neighbour < len(index):
        return here - (index[neighbour] - here) / 2
    return here + side * 0.5 if _is_numeric(index) else here


def _legend(ax, *others) -> None:
    handles, labels = ax.get_legend_handles_labels()
    for other in others:
        h, lab = other.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    if len(handles) > 1:
        ax.legend(handles, labels, loc="upper left", fontsize="small")


# ---------------------------------------------------------------- plots


def forecast(actual, predicted=None, *, index=None, future=None, future_index=None, future_lower=None,
             future_upper=None, ax=None, title=None):
    """Plot a series, the forecasts made along it, and a final multi-step forecast.

    Parameters
    ----------
    actual
        The series' values.
    predicted
        The forecasts of those values (one-step-ahead, or +h), aligned with
        ``actual``: ``predicted[i]`` is the forecast of ``actual[i]``. NaN
        (or None) marks a row without a forecast and is drawn as a gap.
    index
        The position of each value on the x axis: numbers, datetimes or
        date strings; ``0, 1, ...`` when None.
    future
        A forecast of the values after the end of ``actual`` (the horizon),
        drawn from the last actual value on.
    future_index
        Positions of ``future``; by default the index continues at the
        spacing of its last two positions.
    future_lower, future_upper
        Bounds of a prediction interval of ``future`` (both or neither, as
        long as ``future``), drawn as a shaded band: a forecaster's
        ``forecast_interval``. Infinite bounds are left out of the band.
    ax
        The matplotlib Axes to draw on; a new figure's when None.
    title
        The Axes' title.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, holding the lines ``actual``, ``predicted`` (if given) and
        ``forecast`` (if ``future`` is given), in that order.

    Raises
    ------
    ValueError
        When an argument does not hold numbers (or positions), or its length
        does not match the one it goes with.
    """
    y = _series(actual, "actual")
    n = y.size
    p = None if predicted is None else _series(predicted, "predicted", n, "actual")
    x = _index(index, n)
    f = fx = None
    if future is not None:
        f = _series(future, "future")
        fx = _continue(x, f.size) if future_index is None else _index(future_index, f.size, "future_index", "future")
    elif future_index is not None:
        raise ValueError("future_index is given without future")
    band = None
    if (future_lower is None) != (future_upper is None):
        raise ValueError("future_lower and future_upper go together")
    if future_lower is not None:
        if f is None:
            raise ValueError("future_lower and future_upper are given without future")
        with np.errstate(invalid="ignore"):
            band = (_band_edge(future_lower, "future_lower", f.size), _band_edge(future_upper, "future_upper", f.size))

    ax = _axes(ax)
    ax.plot(x, y, color=_COLORS["actual"], lw=1.2, label="actual")
    if p is not None:
        ax.plot(x, p, color=_COLORS["predicted"], lw=1.0, alpha=0.9, label="predicted")
    if f is not None:
        # from the last actual value, so the horizon continues the series
        ax.plot(np.r_[x[-1:], fx], np.r_[y[-1:], f], color=_COLORS["future"], lw=1.5, ls="--",
                marker="o", ms=3, label="forecast")
    if band is not None:
        ax.fill_between(fx, band[0], band[1], color=_COLORS["future"], alpha=0.2, lw=0, label="interval")
    if title is not None:
        ax.set_title(title)
    _legend(ax)
    return ax


def anomalies(scores, *, threshold=None, flags=None, values=None, index=None, windows=None, ax=None, title=None):
    """Plot anomaly scores, the alarms they raise and the labelled anomalies.

    Parameters
    ----------
    scores
        The anomaly score of each row (high = anomalous).
    threshold
        Drawn as a horizontal line; when ``flags`` is None, the rows whose
        score reaches it are the flagged rows.
    flags
        Booleans, one per row: the rows raising an alarm. Each run of
        consecutive flagged rows is shaded as one span (each row reaching
        half-way to its neighbours), and the flagged scores are marked.
    values
        The raw series, drawn on a twin y axis (on the right).
    index
        The position of each row on the x axis: numbers, datetimes or date
        strings; ``0, 1, ...`` when None.
    windows
        Labelled anomalies, ``(start, end)`` pairs in index units (date
        strings allowed), shaded in another colour.
    ax
        The matplotlib Axes to draw on; a new figure's when None.
    title
        The Axes' title.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``: the score line, then the threshold line in ``ax.lines``; the
        spans of the windows, then of the flagged runs, in ``ax.patches``;
        the flagged points in ``ax.collections``. With ``values``, the twin
        Axes (``ax.figure.axes``) holds the series' line.

    Raises
    ------
    ValueError
        When an argument does not hold what it should, or its length does
        not match that of ``scores``.
    """
    s = _series(scores, "scores")
    n = s.size
    if threshold is not None and not is_finite_real(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    if flags is not None:
        flagged = _flags(flags, n)
    elif threshold is not None:
        with np.errstate(invalid="ignore"):
            flagged = s >= threshold
    else:
        flagged = None
    v = None if values is None else _series(values, "values", n, "scores")
    x = _index(index, n, of="scores")
    spans = [] if windows is None else _windows(windows)

    ax = _axes(ax)
    twin = None
    if v is not None:
        twin = ax.twinx()
        twin.plot(x, v, color=_COLORS["values"], lw=0.8, label="value")
        twin.set_ylabel("value")
        ax.set_zorder(twin.get_zorder() + 1)  # scores above the series
        ax.patch.set_visible(False)
    ax.plot(x, s, color=_COLORS["score"], lw=1.0, label="anomaly score")
    if threshold is not None:
        ax.axhline(threshold, color=_COLORS["threshold"], lw=1.0, ls="--", label="threshold")
    for i, (start, end) in enumerate(spans):
        ax.axvspan(start, end, color=_COLORS["window"], alpha=0.2, lw=0,
                   label="labelled window" if i == 0 else "_nolegend_")
    if flagged is not None and flagged.any():
        for i, (first, last) in enumerate(_runs(flagged)):
            # edges drawn too, so a single flagged row stays visible on a long series
            ax.axvspan(_edge(x, first, -1), _edge(x, last, 1), color=_COLORS["flagged"], alpha=0.25, lw=0.6,
                       label="flagged" if i == 0 else "_nolegend_")
        ax.scatter(x[flagged], s[flagged], color=_COLORS["flagged"], s=10, zorder=3)
    ax.set_ylabel("anomaly score")
    if title is not None:
        ax.set_title(title)
    _legend(ax, *([twin] if twin is not None else []))
    return ax


def save(figure, path, *, dpi: int = 110, **options) -> None:
    """Write ``figure`` (a matplotlib Figure, or an Axes on one) to ``path``
    and close it, so that pyplot lets go of it; ``options`` go to
    ``Figure.savefig``. The figure is closed even when writing fails."""
    figure = figure if hasattr(figure, "savefig") else figure.figure
    try:
        figure.savefig(path, dpi=dpi, **options)
    finally:
        _pyplot().close(figure)
