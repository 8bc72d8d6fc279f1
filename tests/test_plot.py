"""streamrnn.plot, drawn with matplotlib's Agg backend (no display)."""

import datetime as dt
import sys

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib", reason="streamrnn.plot needs matplotlib (pip install streamrnn[plot])")
matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from streamrnn import plot  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def hourly(n, start="2024-03-01"):
    return pd.date_range(start, periods=n, freq="h")


# ------------------------------------------------------------------ forecast


def test_forecast_actual_only_makes_a_figure():
    ax = plot.forecast([1.0, 2.0, 4.0])
    assert isinstance(ax, Axes)
    assert len(ax.lines) == 1
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [0, 1, 2])
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [1.0, 2.0, 4.0])
    assert ax.get_legend() is None  # a single line needs none


def test_forecast_predictions_keep_nan_gaps():
    predicted = [None, 2.5, np.nan, 3.5]
    ax = plot.forecast([1.0, 2.0, 3.0, 4.0], predicted, title="demo")
    assert [line.get_label() for line in ax.lines] == ["actual", "predicted"]
    y = np.asarray(ax.lines[1].get_ydata(), dtype=float)
    assert np.isnan(y[[0, 2]]).all() and y[1] == 2.5 and y[3] == 3.5
    assert ax.get_title() == "demo"
    assert ax.get_legend() is not None


def test_forecast_future_continues_a_numeric_index_from_the_last_value():
    ax = plot.forecast([5.0, 6.0, 7.0], index=[10, 20, 30], future=[8.0, 9.0])
    line = ax.lines[-1]
    assert line.get_label() == "forecast"
    np.testing.assert_array_equal(line.get_xdata(), [30, 40, 50])
    np.testing.assert_array_equal(line.get_ydata(), [7.0, 8.0, 9.0])


def test_forecast_future_index_given():
    ax = plot.forecast([5.0, 6.0], future=[7.0, 8.0], future_index=[3, 7])
    np.testing.assert_array_equal(ax.lines[-1].get_xdata(), [1, 3, 7])


@pytest.mark.parametrize(
    "make_index",
    [
        lambda n: hourly(n),  # pandas DatetimeIndex
        lambda n: list(hourly(n).to_pydatetime()),  # datetime.datetime
        lambda n: hourly(n).to_numpy(),  # numpy datetime64
        lambda n: [str(t) for t in hourly(n)],  # date strings
    ],
    ids=["DatetimeIndex", "datetime", "datetime64", "strings"],
)
def test_forecast_datetime_index(make_index):
    ax = plot.forecast(np.arange(6.0), np.arange(6.0) + 0.5, index=make_index(6), future=[6.0, 7.0, 8.0])
    assert len(ax.lines) == 3
    assert isinstance(ax.xaxis.get_major_formatter(), (mdates.AutoDateFormatter, mdates.ConciseDateFormatter))
    future_x = pd.to_datetime(np.asarray(ax.lines[-1].get_xdata()))
    expected = pd.date_range("2024-03-01 05:00", periods=4, freq="h")
    assert list(future_x) == list(expected)
    ax.figure.canvas.draw()  # renders without error


def test_forecast_draws_on_the_given_axes():
    fig, axes = plt.subplots(1, 2)
    ax = plot.forecast([1.0, 2.0], ax=axes[1])
    assert ax is axes[1]
    assert len(axes[0].lines) == 0 and len(axes[1].lines) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"predicted": [1.0, 2.0]}, "predicted has 2 values, actual has 3"),
        ({"index": [1, 2]}, "index has 2 values, actual has 3"),
        ({"future": [1.0], "future_index": [4, 5]}, "future_index has 2 values, future has 1"),
        ({"future_index": [4, 5]}, "future_index is given without future"),
        ({"predicted": ["a", "b", "c"]}, "predicted must hold numbers"),
        ({"predicted": [[1.0], [2.0], [3.0]]}, "predicted must be one-dimensional"),
        ({"future": []}, "future is empty"),
        ({"index": ["not", "a", "date"]}, "cannot read these strings as dates"),
        ({"future": [1.0, 2.0], "future_lower": [0.0, 1.0]}, "future_lower and future_upper go together"),
        ({"future_lower": [0.0], "future_upper": [1.0]}, "given without future"),
        ({"future": [1.0, 2.0], "future_lower": [0.0], "future_upper": [2.0, 3.0]},
         "future_lower has 1 values, future has 2"),
    ],
)
def test_forecast_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot.forecast([1.0, 2.0, 3.0], **kwargs)
    assert plt.get_fignums() == []  # checked before any figure is made


def test_forecast_rejects_empty_actual_and_lone_date_without_future_index():
    with pytest.raises(ValueError, match="actual is empty"):
        plot.forecast([])
    with pytest.raises(ValueError, match="future_index is needed"):
        plot.forecast([1.0], index=[dt.datetime(2024, 1, 1)], future=[2.0])


# ----------------------------------------------------------------- anomalies


SCORES = np.array([0.0, 0.1, 0.5, 0.6, 0.1, 0.7, 0.0, 0.9])


def spans(ax):
    """(left, right) of each shaded span, in axis units."""
    return [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches]


def test_anomalies_scores_only():
    ax = plot.anomalies(SCORES)
    assert isinstance(ax, Axes)
    assert len(ax.lines) == 1 and not ax.patches and not ax.collections
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), SCORES)
    assert len(ax.figure.axes) == 1


def test_anomalies_threshold_line_and_flags_from_it():
    ax = plot.anomalies(SCORES, threshold=0.4)
    assert len(ax.lines) == 2
    threshold = ax.lines[1]
    assert threshold.get_label() == "threshold"
    np.testing.assert_array_equal(threshold.get_ydata(), [0.4, 0.4])
    # rows 2-3, 5 and 7 reach 0.4: three runs, each row reaching half-way to its neighbours
    assert spans(ax) == [(1.5, 3.5), (4.5, 5.5), (6.5, 7.5)]
    (points,) = ax.collections
    np.testing.assert_array_equal(points.get_offsets(), [[2, 0.5], [3, 0.6], [5, 0.7], [7, 0.9]])


def test_anomalies_given_flags_override_the_threshold():
    flags = [True, True, False, False, False, False, True, True]
    ax = plot.anomalies(SCORES, threshold=0.4, flags=flags)
    assert spans(ax) == [(-0.5, 1.5), (5.5, 7.5)]
    assert len(plot.anomalies(SCORES, flags=np.zeros(8, dtype=int)).patches) == 0


def test_anomalies_windows_and_values_on_a_twin_axis():
    values = np.arange(8.0) * 10
    ax = plot.anomalies(SCORES, flags=SCORES > 0.8, values=values, windows=[(1, 3), (5.5, 6)], title="t")
    assert spans(ax) == [(1, 3), (5.5, 6), (6.5, 7.5)]  # windows first, then the flagged run
    colors = {tuple(p.get_facecolor()[:3]) for p in ax.patches[:2]}
    assert len(colors) == 1 and colors != {tuple(ax.patches[2].get_facecolor()[:3])}
    twin = [other for other in ax.figure.axes if other is not ax]
    assert len(twin) == 1
    np.testing.assert_array_equal(twin[0].lines[0].get_ydata(), values)
    assert ax.get_zorder() > twin[0].get_zorder()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["anomaly score", "labelled window", "flagged", "value"]


def test_anomalies_with_dates_and_nab_style_windows(tmp_path):
    index = [str(t) for t in hourly(8)]
    windows = [("2024-03-01 01:00:00.000000", "2024-03-01 03:00:00.000000")]
    ax = plot.anomalies(SCORES, threshold=0.4, values=SCORES * 3, index=index, windows=windows)
    left, right = spans(ax)[0]
    assert mdates.num2date(left).replace(tzinfo=None) == dt.datetime(2024, 3, 1, 1)
    assert mdates.num2date(right).replace(tzinfo=None) == dt.datetime(2024, 3, 1, 3)
    # the first flagged run, rows 2-3, spans 01:30 to 03:30
    left, right = spans(ax)[1]
    assert mdates.num2date(left).replace(tzinfo=None) == dt.datetime(2024, 3, 1, 1, 30)
    assert mdates.num2date(right).replace(tzinfo=None) == dt.datetime(2024, 3, 1, 3, 30)
    path = tmp_path / "scores.png"
    ax.figure.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64, np.int16])
def test_anomalies_with_an_unsigned_index_place_the_spans(dtype):
    """Differences of unsigned positions wrapped around: a span at the end
    ran from 2.1e9 to -2.1e9."""
    ax = plot.anomalies([0.1, 0.2, 0.9], flags=[False, False, True], index=np.array([2, 4, 6], dtype=dtype))
    assert spans(ax) == [(5, 7)]


def test_anomalies_single_flagged_row():
    ax = plot.anomalies([0.3], flags=[True])
    assert spans(ax) == [(-0.5, 0.5)]


def test_anomalies_many_runs_are_merged():
    rng = np.random.default_rng(0)
    flags = rng.random(500) < 0.2
    ax = plot.anomalies(rng.random(500), flags=flags)
    edges = np.diff(np.r_[0, flags.astype(int), 0])
    assert len(ax.patches) == int((edges == 1).sum()) < int(flags.sum())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"flags": [True, False]}, "flags has 2 values, scores has 8"),
        ({"flags": [0, 1, 2, 0, 0, 0, 0, 0]}, "flags must hold booleans"),
        ({"values": np.arange(7.0)}, "values has 7 values, scores has 8"),
        ({"index": np.arange(9)}, "index has 9 values, scores has 8"),
        ({"threshold": "high"}, "threshold must be a finite number"),
        ({"threshold": float("nan")}, "threshold must be a finite number"),
        ({"windows": [(1, 2, 3)]}, r"windows\[0\] must be a \(start, end\) pair"),
        ({"windows": [(0, 1), (5, 2)]}, r"windows\[1\] ends before it starts"),
    ],
)
def test_anomalies_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot.anomalies(SCORES, **kwargs)
    assert plt.get_fignums() == []


def test_anomalies_rejects_non_numeric_scores():
    with pytest.raises(ValueError, match="scores must hold numbers"):
        plot.anomalies(["low", "high"])


def test_missing_matplotlib_says_how_to_install_it(monkeypatch):
    fig, ax = plt.subplots()
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install streamrnn\[plot\]"):
        plot.forecast([1.0, 2.0])
    with pytest.raises(ImportError, match=r"pip install streamrnn\[plot\]"):
        plot.anomalies([0.1, 0.2])
    # with an Axes given, pyplot is not needed
    assert plot.anomalies([0.1, 0.2], threshold=0.15, values=[1.0, 3.0], ax=ax) is ax
    assert plot.forecast([1.0, 2.0], future=[3.0], ax=ax) is ax


def test_save_writes_the_figure_of_an_axes_or_a_figure_and_closes_it(tmp_path):
    ax = plot.forecast([1.0, 2.0, 3.0])
    fig = plot.anomalies([0.1, 0.9], threshold=0.5).figure
    for what, path in ((ax, tmp_path / "a.png"), (fig, tmp_path / "b.png")):
        number = (what if hasattr(what, "number") else what.figure).number
        plot.save(what, path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert not plt.fignum_exists(number)
    ax = plot.forecast([1.0, 2.0])
    with pytest.raises(OSError):
        plot.save(ax, tmp_path / "missing" / "c.png")
    assert not plt.fignum_exists(ax.figure.number)  # closed even when writing failed


def test_forecast_interval_band_spans_the_bounds_with_gaps_for_infinite_ones():
    ax = plot.forecast([1.0, 2.0, 3.0], future=[3.0, 3.5, 4.0], future_lower=[2.0, -np.inf, 3.0],
                       future_upper=[4.0, np.inf, 5.0])
    (band,) = ax.collections
    vertices = np.concatenate([path.vertices for path in band.get_paths()])
    assert np.isfinite(vertices).all()
    assert vertices[:, 1].min() == 2.0 and vertices[:, 1].max() == 5.0
    assert len(ax.lines) == 2  # actual, forecast
    plt.close(ax.figure)


def test_forecast_interval_band_leaves_the_callers_arrays_as_they_were():
    lower, upper = np.array([2.0, -np.inf, 3.0]), np.array([4.0, np.inf, 5.0])
    ax = plot.forecast([1.0, 2.0, 3.0], future=[3.0, 3.5, 4.0], future_lower=lower, future_upper=upper)
    assert np.isinf(lower[1]) and np.isinf(upper[1])
    plt.close(ax.figure)
