"""The ``forecast`` and ``detect`` commands: one model per target (and per
key), learning from every row and writing one output row per input row."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import zlib
from typing import TextIO

from .files import check_plot, check_writable, is_terminal, open_input
from .rows import CommandError, CSVInput, format_number
from .service import Checkpoints, SignalGuard, Stop
from .sharded import key_seeded
from .times import TimeParser, add_months, months_between

from .options import DEFAULT_THRESHOLD, MAX_HORIZON, MODEL_DEFAULTS, MODEL_OPTIONS

_UNSET = object()


def _model_params(args: argparse.Namespace) -> tuple[str, dict]:
    """The cell and the parameters of a new model: the options given, else their defaults."""
    given = {dest: getattr(args, dest) for dest in MODEL_OPTIONS if getattr(args, dest) is not None}
    options = {**MODEL_DEFAULTS, **given}
    return options.pop("model"), options


def _check_load_options(args: argparse.Namespace) -> None:
    """A usage error for options that configure a new model given with
    ``--load``: the loaded model keeps its own, they would be ignored."""
    given = [flag for dest, flag in MODEL_OPTIONS.items() if getattr(args, dest) is not None]
    if given:
        raise CommandError(
            f"{', '.join(given)} cannot be used with --load: the loaded model keeps the configuration "
            "it was saved with",
            status=2,
        )


def _build(cls: type, **params):
    """The estimator, or a usage error naming what its arguments got wrong."""
    try:
        return cls(**params)
    except ValueError as error:
        raise CommandError(str(error), status=2) from None
    except MemoryError:
        raise CommandError(f"not enough memory for a model of {params.get('hidden_size', 'this')} hidden units "
                           "(--hidden-size)", status=2) from None


def _targets(args: argparse.Namespace) -> list[str]:
    """The ``--target`` columns, each once, in order."""
    return list(dict.fromkeys(args.target))


def _load(args: argparse.Namespace, kind: type | tuple):
    """The model saved at ``--load`` and what the command saved beside it,
    after the usage checks: no option that configures a new model, and the
    ``--target`` and ``--key`` columns it was saved with."""
    from ..persistence import info, load

    _check_load_options(args)
    path = args.load
    try:
        model, metadata = load(path), info(path).get("metadata") or {}
    except FileNotFoundError:
        raise CommandError(f"--load: no such file: {path}") from None
    except IsADirectoryError:
        raise CommandError(f"--load: {path} is a folder, not a model file", status=2) from None
    except OSError as error:
        raise CommandError(f"--load: cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise CommandError(f"--load: {error}") from None
    if not isinstance(model, kind):
        raise CommandError(f"--load: {path} holds a {type(model).__name__}, not a model of this command")
    _check_saved_columns(metadata, args, path)
    return model, metadata


def _check_saved_columns(metadata: dict, args: argparse.Namespace, path: str) -> None:
    """A usage error when the model at ``path`` was saved for other target or
    key columns (it would go on with new, untrained series, silently).
    Files saved before the columns were recorded are taken as they are."""
    if "targets" not in metadata:
        return
    saved, given = metadata["targets"], _targets(args)
    if sorted(saved) != sorted(given) or metadata.get("key") != args.key:
        def columns(targets, key):
            return f"--target {' '.join(targets)}" + (f" --key {key}" if key else " and no --key")
        raise CommandError(f"--load: {path} was saved with {columns(saved, metadata.get('key'))}; "
                           f"this run has {columns(given, args.key)}", status=2)


def _check_outputs(args: argparse.Namespace) -> None:
    """``--save`` and ``--plot`` paths writable, matplotlib there for a plot
    and the options that go with others given with them, before any row is
    read (not after a long run)."""
    if args.save:
        check_writable("--save", args.save)
    if args.plot:
        check_plot(args.plot)
    for option, dest in (("--checkpoint-every", "checkpoint_every"), ("--checkpoint-seconds", "checkpoint_seconds")):
        if getattr(args, dest) is not None and not args.save:
            raise CommandError(f"{option} needs --save (the file the checkpoints are written to)", status=2)
    if args.max_idle is not None and not args.key:
        raise CommandError("--max-idle needs --key (it forgets the models of keys gone idle)", status=2)
    if getattr(args, "with_times", False) and not args.time:
        raise CommandError("--with-times needs --time (the column of dates the forecasts follow)", status=2)


def _save(model, path: str, metadata: dict) -> None:
    from ..persistence import save

    if hasattr(model, "to_keyed"):  # models over shards: saved as one keyed wrapper
        model = model.to_keyed()
    try:
        save(model, path, metadata=metadata)
    except OSError as error:
        raise CommandError(f"--save: cannot write {path}: {error.strerror or error}") from None


class _Progress:
    """A tqdm bar on stderr counting rows, or nothing."""

    def __init__(self, enabled: bool, stderr: TextIO):
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # optional: pip install streamrnn[progress]
                return
            self._bar = tqdm(unit=" rows", file=stderr, mininterval=0.5, leave=False)

    def update(self) -> None:
        if self._bar is not None:
            self._bar.update()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _Run:
    """What the two commands share: the input, the output, progress, the
    plot series, saving, checkpoints and stopping on a signal."""

    def __init__(self, args: argparse.Namespace, stream: TextIO, name: str, piped: bool,
                 stdout: TextIO, stderr: TextIO, guard: SignalGuard, dtype: str = "float64"):
        self.args = args
        self.targets = _targets(args)
        required = self.targets + [c for c in (args.time, args.key) if c]
        self.rows = CSVInput(stream, name, required, delimiter=args.delimiter)
        self.piped = piped
        self.stdout = stdout
        self.writer = csv.writer(stdout, lineterminator="\n", delimiter=args.delimiter)
        self.progress = _Progress(not piped and not args.no_progress, stderr)
        self.echo = [c for c in (args.time, args.key) if c] + (self.targets if args.with_target else [])
        self.guard = guard
        self.dtype = dtype
        self.model = None
        self.checkpoints = Checkpoints(self.save, args.checkpoint_every, args.checkpoint_seconds)
        self.times = TimeParser()
        self.dated = None  # whether the --time column holds dates (its first value's)
        self.per_key: list[dict] = []  # more of the run's state by key, pruned with --max-idle
        self.plot_key = _UNSET
        self.plotted: dict = {}
        self.last_time: dict = {}
        self.step: dict = {}
        self.months: dict = {}  # the steps of keys whose rows are whole calendar months apart

    def resume(self, metadata: dict) -> None:
        """The time of each key's last row and the spacing of its rows, as
        saved with the model, so forecasts made right after ``--load`` are
        dated as they would have been without the stop."""
        for key, (last, step) in metadata.get("times", {}).items():
            key = None if key == "" else key
            self.last_time[key] = dt.datetime.fromisoformat(last)
            if step is not None:
                self.step[key] = dt.timedelta(seconds=step)

    def _times(self) -> dict:
        return {
            "" if key is None else key: [when.isoformat(),
                                         None if key not in self.step else self.step[key].total_seconds()]
            for key, when in self.last_time.items()
        }

    def number(self, value: float) -> str:
        return format_number(value, self.dtype)

    def write(self, fields: list) -> None:
        self.writer.writerow(fields)
        if self.piped:
            self.stdout.flush()
        self.progress.update()

    def key_of(self, fields: list[str]):
        return self.rows.text(fields, self.args.key) if self.args.key else None

    def time_of(self, fields: list[str], key, row: int) -> dt.datetime | None:
        """The row's date-time (when ``--time`` holds dates) and remembers
        the spacing of the key's rows, to date the forecast steps. A column
        whose first value is a date must hold dates (or nothing)."""
        if not self.args.time:
            return None
        text = self.rows.text(fields, self.args.time)
        when = self.times.parse(text)
        if self.dated is None and text.strip():
            self.dated = when is not None
        if when is None:
            if text.strip() and (self.dated or getattr(self.args, "with_times", False)):
                what = "the column's first value is one" if self.dated else "--with-times dates the forecasts"
                raise CommandError(f"{self.rows.where(row)}: column {self.args.time!r} has {text.strip()!r}, "
                                   f"not a date ({what})")
            return None
        last = self.last_time.get(key)
        if last is not None:
            try:
                if when > last:
                    self.step[key] = when - last
                    self.months[key] = months_between(last, when)
            except TypeError:  # naive and aware times mixed
                pass
        self.last_time[key] = when
        return when

    def future_times(self, key, when: dt.datetime | None, horizon: int, row: int) -> list[dict] | None:
        step = self.step.get(key)
        if when is None or step is None:
            return None
        months = self.months.get(key)  # calendar months apart: the next months' same day
        try:
            if months is not None:
                return [{"time": add_months(when, k * months)} for k in range(1, horizon + 1)]
            return [{"time": when + k * step} for k in range(1, horizon + 1)]
        except OverflowError:
            raise CommandError(f"{self.rows.where(row)}: the {horizon} forecast dates after {when.isoformat()} "
                               f"(every {step}) run past the year 9999") from None

    def plots(self, key) -> bool:
        """Whether this row's series is the one plotted (the first key's)."""
        if not self.args.plot:
            return False
        if self.plot_key is _UNSET:
            self.plot_key = key
        return key == self.plot_key

    def plot_index(self, when: dt.datetime | None):
        """Where the plotted row stands: its date, else its number among the
        plotted key's rows (not the file's)."""
        return when if when is not None else len(self.plotted.get("index", ())) + 1

    def record(self, **values) -> None:
        for name, value in values.items():
            self.plotted.setdefault(name, []).append(value)

    def loop(self, model, handle) -> None:
        """``handle(row, fields, key, when)`` for every row; writes the echoed
        columns and what it returns. Saves the model at the checkpoints, at
        the end, and when the run is stopped (SIGTERM, SIGINT: once the
        current row is done) or its reader goes away (not after bad data)."""
        self.model = model
        try:
            for row, fields in self.rows:
                self.guard.begin()
                key = self.key_of(fields)
                values = handle(row, fields, key, self.time_of(fields, key, row))
                self.write([self.rows.text(fields, c) for c in self.echo] + values)
                if self.args.max_idle is not None and row % self.args.max_idle == 0:
                    self.prune()
                self.checkpoints.row_done()
                self.guard.end()
        except (Stop, KeyboardInterrupt, BrokenPipeError):
            self.guard.hold()
            self.finish()  # keep what was learned
            raise
        except BaseException:
            self.progress.close()
            raise
        self.guard.hold()
        self.finish()

    def prune(self) -> None:
        """Forget what the run keeps of the keys whose models ``--max-idle``
        evicted (their last times, spacings and running quantiles), so that
        its memory stays bounded too."""
        alive = {k[0] if isinstance(k, tuple) else k for k in self.model.keys}
        for kept in (self.last_time, self.step, self.months, *self.per_key):
            for key in [k for k in kept if k not in alive]:
                del kept[key]

    def save(self) -> None:
        if self.args.save:
            if self.args.max_idle is not None:
                self.prune()
            _save(self.model, self.args.save, {"command": self.args.command, "targets": self.targets,
                                               "key": self.args.key, "times": self._times()})

    def finish(self) -> None:
        self.progress.close()
        try:
            self.stdout.flush()
        finally:
            self.save()


def forecast(args: argparse.Namespace, stream: TextIO, name: str, piped: bool,
             stdout: TextIO, stderr: TextIO, guard: SignalGuard) -> int:
    """``streamrnn forecast``: for each row, learn each target's value, then
    forecast its next ``--horizon`` values."""
    from .. import forecasting
    from ..global_forecasting import GlobalForecaster
    from ..keyed import KeyedForecaster

    H = args.horizon
    if not 1 <= H <= MAX_HORIZON:
        raise CommandError(f"--horizon must be a positive integer up to {MAX_HORIZON}", status=2)
    coverage = getattr(args, "interval", None)
    if coverage is not None and not 0.0 < coverage < 1.0:
        raise CommandError("--interval must lie strictly between 0 and 1", status=2)
    metadata = {}
    _check_outputs(args)
    if args.load:
        if args.global_network:
            raise CommandError("--global configures a new model: a loaded model keeps its own", status=2)
        model, metadata = _load(args, (KeyedForecaster, GlobalForecaster))
        direct = model.template.horizon if isinstance(model, KeyedForecaster) else None
        if direct is not None and H > direct:
            raise CommandError(f"--horizon {H} is longer than the {direct} steps the loaded model forecasts "
                               "directly", status=2)
        if args.direct and direct is None:
            raise CommandError("--direct does not apply to a loaded model that forecasts recursively", status=2)
    else:
        cell, params = _model_params(args)
        seed = params.pop("seed")
        if args.global_network:
            if args.direct:
                raise CommandError("--direct does not apply to --global, which forecasts recursively", status=2)
            model = _build(GlobalForecaster, cell=cell, seed=seed, **params)
        else:
            cls = {"lstm": forecasting.LSTMForecaster, "gru": forecasting.GRUForecaster,
                   "rnn": forecasting.RNNForecaster}[cell]
            if args.direct:
                params["horizon"] = H
            model = KeyedForecaster(_build(cls, **params), seed=seed)
    if args.max_idle is not None:  # the wrapper counts learned values: a row has one per target
        model.max_idle = args.max_idle * len(_targets(args))
    model = key_seeded(model, args)
    dtype = model.dtype if isinstance(model, GlobalForecaster) else model.template.dtype
    run = _Run(args, stream, name, piped, stdout, stderr, guard, dtype)
    run.resume(metadata)
    columns = [f"{args.time}+{k}" for k in range(1, H + 1)] if args.with_times else []
    columns += [f"{t}+{k}" for t in run.targets for k in range(1, H + 1)]
    if coverage is not None:
        columns += [f"{t}+{k}_{side}" for t in run.targets for k in range(1, H + 1) for side in ("lo", "hi")]
    run.writer.writerow(run.echo + columns)

    def handle(row, fields, key, when):
        x = {"time": when} if when is not None else None
        xs = run.future_times(key, when, H, row)
        out, bounds = [], []
        for target in run.targets:
            y = run.rows.number(fields, target, row)
            series = target if key is None else (key, target)
            if y is not None:
                try:
                    model.learn_one(series, y, x)
                except ValueError as error:  # a value the forecaster cannot learn (beyond ±1e100)
                    raise CommandError(f"{run.rows.where(row)}: column {target!r}: {error}") from None
            known = series in model
            out.extend(model.forecast(series, H, xs) if known else [float("nan")] * H)
            if coverage is not None:
                lo, hi = model.forecast_interval(series, H, coverage, xs) if known else ([float("nan")] * H,) * 2
                bounds.extend(v for pair in zip(lo, hi) for v in pair)
        if run.plots(key):
            run.record(actual=run.rows.number(fields, run.targets[0], row), predicted=out[0],
                       index=run.plot_index(when))
            run.plotted["future"] = out[:H]
            if coverage is not None:
                run.plotted["band"] = (bounds[0 : 2 * H : 2], bounds[1 : 2 * H : 2])
        dates = [] if not args.with_times else [""] * H if xs is None else [x["time"].isoformat() for x in xs]
        return dates + [run.number(v) for v in out + bounds]

    run.loop(model, handle)
    if args.plot:
        _plot_forecast(run.plotted, run.targets[0], run.plot_key, H, args.plot)
    return 0


def _plot_forecast(plotted: dict, target: str, key, horizon: int, path: str) -> None:
    import numpy as np

    from .. import plot

    actual = np.array([np.nan if v is None else v for v in plotted["actual"]], dtype=float)
    # the forecast for row t was made at row t - 1
    predicted = np.concatenate([[np.nan], np.array(plotted["predicted"][:-1], dtype=float)])
    index = plotted["index"]
    future_index = None
    if all(isinstance(v, dt.datetime) for v in index[-2:]) and len(index) >= 2:
        step = index[-1] - index[-2]
        future_index = [index[-1] + k * step for k in range(1, horizon + 1)]
    title = f"{target}" + (f" ({key})" if key is not None else "") + f": forecasts, horizon {horizon}"
    lower, upper = plotted.get("band", (None, None))
    ax = plot.forecast(actual, predicted, index=index, future=plotted["future"],
                       future_index=future_index, future_lower=lower, future_upper=upper, title=title)
    _save_figure(ax, path)


def _save_figure(ax, path: str) -> None:
    from .. import plot

    try:
        plot.save(ax, path, bbox_inches="tight")
    except OSError as error:
        raise CommandError(f"--plot: cannot write {path}: {error}") from None


def detect(args: argparse.Namespace, stream: TextIO, name: str, piped: bool,
           stdout: TextIO, stderr: TextIO, guard: SignalGuard) -> int:
    """``streamrnn detect``: for each row, score the targets' values (one
    detector per key, every target a feature), flag the score, then learn."""
    from .. import anomaly
    from ..keyed import KeyedDetector

    if args.quantile is not None and not 0.0 < args.quantile < 1.0:
        raise CommandError("--quantile must lie strictly between 0 and 1", status=2)
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise CommandError("--threshold must lie between 0 and 1", status=2)
    _check_outputs(args)
    if args.load:
        model, _ = _load(args, KeyedDetector)
    else:
        cell, params = _model_params(args)
        seed = params.pop("seed")
        model = KeyedDetector(_build(anomaly.PredictiveDetector, cell=cell, **params), seed=seed)
    if args.max_idle is not None:
        model.max_idle = args.max_idle
    model = key_seeded(model, args)
    quantiles: dict = {}
    threshold = args.threshold if args.threshold is not None else DEFAULT_THRESHOLD
    run = _Run(args, stream, name, piped, stdout, stderr, guard, model.template.dtype)
    run.per_key.append(quantiles)
    run.writer.writerow(run.echo + ["score", "is_anomaly"])

    def handle(row, fields, key, when):
        x = {t: run.rows.number(fields, t, row) for t in run.targets}
        score = model.score_one(key, x)
        scored = score != anomaly.NOT_SCORED  # (warm-up, a missing value): score and flag left empty
        if not scored:
            flag = False
        elif args.quantile is not None:
            flag = _above_quantile(quantiles, key, score, args.quantile)
        else:
            flag = score >= threshold
        model.learn_one(key, x)
        if run.plots(key):
            run.record(score=score if scored else float("nan"), flag=flag, value=x[run.targets[0]],
                       index=run.plot_index(when))
        if not scored:
            return ["", ""]
        text = run.number(score)  # at the model's precision, unless that would cross the threshold
        if args.quantile is None and (float(text) >= threshold) != flag:
            text = format_number(score)
        return [text, int(flag)]

    run.loop(model, handle)
    if args.plot:
        import numpy as np

        from .. import plot

        p = run.plotted
        title = ", ".join(run.targets) + (f" ({run.plot_key})" if run.plot_key is not None else "")
        ax = plot.anomalies(
            np.array(p["score"]), threshold=None if args.quantile is not None else threshold,
            flags=np.array(p["flag"], dtype=bool),
            values=np.array([np.nan if v is None else v for v in p["value"]], dtype=float),
            index=p["index"], title=f"{title}: anomaly score",
        )
        _save_figure(ax, args.plot)
    return 0


def _above_quantile(quantiles: dict, key, score: float, q: float) -> bool:
    """Whether ``score`` exceeds the ``q`` quantile of the key's earlier
    scores (River's running quantile); then adds it to them."""
    quantile = quantiles.get(key)
    if quantile is None:
        from river import stats  # (imported where used: it loads SciPy)

        quantile = quantiles[key] = stats.Quantile(q)
    level = quantile.get()
    quantile.update(score)
    return level is not None and score > level


COMMANDS = {"forecast": forecast, "detect": detect}


def run_command(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    stream, name, piped = open_input(args.file, stdin, args.encoding)
    if piped and is_terminal(stdin):  # no FILE given: say what the run waits for
        print(f"streamrnn {args.command}: reading CSV rows from the terminal (a header line first; Ctrl-D "
              "ends); give a FILE to read one", file=stderr)
    try:
        with SignalGuard() as guard:
            return COMMANDS[args.command](args, stream, name, piped, stdout, stderr, guard)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:  # a damaged or truncated .gz file
        raise CommandError(f"{name}: cannot decompress: {error}") from None
    finally:
        if not piped:
            try:
                stream.close()
            except (OSError, ValueError):
                pass


