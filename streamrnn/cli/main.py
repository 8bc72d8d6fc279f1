"""The ``streamrnn`` command: argument parsing and dispatch."""

from __future__ import annotations

import argparse
import codecs
import contextlib
import math
import os
import sys
from typing import TextIO

from .. import __version__
from .options import CELLS, DEFAULT_THRESHOLD, MAX_HIDDEN_SIZE, MAX_HORIZON, MODEL_DEFAULTS
from .errors import CommandError
from .service import Stop

EPILOG = """examples:
  streamrnn forecast readings.csv --target value --time timestamp --horizon 12
  tail -f readings.csv | streamrnn detect - --target value --time timestamp
  streamrnn detect fleet.csv --target temp pressure --key sensor_id --save fleet.npz
  tail -f fleet.csv | streamrnn detect - -t temp --key sensor_id --max-idle 10000 \\
      --save fleet.npz --checkpoint-every 1000    # SIGTERM: saves, exits 143
  streamrnn demo --plot demo.png
"""


def _int_from(text: str, least: int, what: str, most: int | None = None) -> int:
    """An integer option's value: decimal digits, or a whole number in
    exponent notation (``1e3``), at least ``least`` (and at most ``most``)."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not number.is_integer():
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        value = int(number)
    if value < least:
        raise argparse.ArgumentTypeError(f"must be a {what} integer, got {value}")
    if most is not None and value > most:
        raise argparse.ArgumentTypeError(f"must be at most {most}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _int_from(text, 1, "positive")


def _hidden_size(text: str) -> int:
    return _int_from(text, 1, "positive", MAX_HIDDEN_SIZE)


def _horizon(text: str) -> int:
    return _int_from(text, 1, "positive", MAX_HORIZON)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _delimiter(text: str) -> str:
    text = {"tab": "\t", "\\t": "\t"}.get(text, text)
    if len(text) != 1 or text in "\"\r\n":
        raise argparse.ArgumentTypeError(f"must be one character (or 'tab'), got {text!r}")
    return text


def _encoding(text: str) -> str:
    try:
        return codecs.lookup(text).name
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding: {text!r}") from None


def _seed(text: str) -> int:
    return _int_from(text, 0, "non-negative")


def _add_stream_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default="-", metavar="FILE",
                        help="CSV file with a header line; '-' (the default) reads standard input row by row")
    parser.add_argument("--target", "-t", nargs="+", required=True, metavar="COL",
                        help="numeric column(s) to model (an existing file named last is taken as FILE: "
                             "--target value readings.csv)")
    parser.add_argument("--time", metavar="COL",
                        help="time column, copied to the output (forecast: ISO dates also become calendar "
                             "features)")
    parser.add_argument("--key", metavar="COL", help="series key column: one model per key")
    # the model's configuration: no defaults here (None), so that one given with --load can be refused
    parser.add_argument("--model", choices=CELLS, help=f"recurrent cell (default: {MODEL_DEFAULTS['model']})")
    parser.add_argument("--hidden-size", type=_hidden_size, metavar="N",
                        help=f"hidden units per layer, at most {MAX_HIDDEN_SIZE} (default: 32 for forecast, "
                             "16 for detect)")
    parser.add_argument("--seed", type=_seed, help=f"random seed (default: {MODEL_DEFAULTS['seed']})")
    parser.add_argument("--load", metavar="PATH",
                        help="resume from a model saved with --save for the same --target and --key columns "
                             "(it keeps its --model, --hidden-size and --seed)")
    parser.add_argument("--save", metavar="PATH",
                        help="save the model(s) at the end, and on SIGTERM or SIGINT once the current row is "
                             "done (streamrnn.save format, written atomically)")
    parser.add_argument("--checkpoint-every", type=_positive_int, metavar="N",
                        help="also save every N rows (needs --save): a crash loses at most N rows of learning")
    parser.add_argument("--checkpoint-seconds", type=_positive_float, metavar="S",
                        help="also save when S seconds have passed since the last save (checked after each row)")
    parser.add_argument("--max-idle", type=_positive_int, metavar="N",
                        help="with --key: forget a key's model once N rows have passed without it (memory stays "
                             "bounded); it starts afresh if it comes back")
    parser.add_argument("--with-target", action="store_true",
                        help="copy the target value(s) to the output, after the --time and --key columns")
    parser.add_argument("--delimiter", "-d", type=_delimiter, default=",", metavar="CHAR",
                        help="field separator of the input and the output (default: ','; 'tab' for tabs)")
    parser.add_argument("--encoding", type=_encoding, default="utf-8",
                        help="text encoding of the input (default: utf-8); FILE.gz is read decompressed")
    parser.add_argument("--plot", metavar="PNG",
                        help="plot the first target (of the first key, over its own rows) to this file; its "
                             "extension picks the format (png, pdf, svg, ...)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--seed-by-key", action="store_true",
                        help="with --key: seed each key's model from --seed and the key, not from the order keys "
                             "arrive in (the results of a key do not depend on the others'; --shards implies it)")
    parser.add_argument("--shards", type=_positive_int, metavar="N",
                        help="with --key: spread the keys' models over N Ray actors (pip install "
                             "\"streamrnn[ray]\"); the same output as one process with --seed-by-key")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="with --shards: join the Ray cluster at ADDR (default: start a local one)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamrnn",
        description="Online recurrent networks on CSV streams: forecasts and anomaly flags, one output row per input row.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"streamrnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    forecast = commands.add_parser(
        "forecast", help="learn each row, then forecast the next values",
        description="For each row: learn the target value(s), then write the forecasts of the next "
                    "--horizon values as columns TARGET+1 .. TARGET+H.")
    _add_stream_options(forecast)
    forecast.add_argument("--horizon", "-H", type=_horizon, default=1,
                          help=f"steps ahead, at most {MAX_HORIZON} (default: 1)")
    forecast.add_argument("--with-times", action="store_true",
                          help="also write the date of each forecast step as columns TIME+1 .. TIME+H (needs a "
                               "--time column of dates)")
    forecast.add_argument("--interval", type=float, metavar="COVERAGE",
                          help="also write prediction intervals of this coverage in (0, 1), columns "
                               "TARGET+h_lo and TARGET+h_hi (e.g. 0.95)")
    forecast.add_argument("--direct", action="store_true",
                          help="one network output per step ahead instead of recursive forecasts")
    forecast.add_argument("--global", dest="global_network", action="store_true",
                          help="one network learning from every series (each key and target) at once, each "
                               "series keeping its own state, scale and seasonal base (GlobalForecaster)")

    detect = commands.add_parser(
        "detect", help="score each row for anomalies, then learn it",
        description="For each row: score the target value(s) (all targets of a key are one multivariate "
                    "series), flag the score, then learn the row. Writes columns score and is_anomaly.")
    _add_stream_options(detect)
    alarm = detect.add_mutually_exclusive_group()
    alarm.add_argument("--threshold", type=float,
                       help=f"flag scores at or above this level in [0, 1] (default: {DEFAULT_THRESHOLD})")
    alarm.add_argument("--quantile", type=float, metavar="Q",
                       help="flag scores above the running Q-quantile of the key's earlier scores (restarts after --load)")

    demo = commands.add_parser("demo", help="forecasting and anomaly detection on River's WaterFlow series")
    demo.add_argument("--plot", metavar="PNG", default="streamrnn-demo.png",
                      help="where to write the plot, checked before the run (default: streamrnn-demo.png)")
    demo.add_argument("--no-plot", action="store_true", help="do not plot")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    info_parser = commands.add_parser("info", help="versions, Numba threading layer, CUDA availability")
    info_parser.add_argument("--cuda", action="store_true",
                             help="ask numba-cuda for the GPU (imports Numba and starts the driver: seconds); "
                                  "without it, only whether numba-cuda and a driver are installed")
    commands.add_parser("warmup", help="compile the kernels into Numba's cache now (for container images: "
                                       "the first forecast or detect then starts at once)")
    return parser


def main(argv: list[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the
    exit status: 0 success, 1 bad data, 2 usage error, 128 + the signal's
    number when SIGTERM (143) or SIGINT (130) stopped the run."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = parser.parse_args(argv)
            _file_after_target(args, parser)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return int(exit_.code or 0)
    workers: list = []
    status = None
    try:
        if args.command == "info":
            from .info import info

            return info(stdout, probe_cuda=args.cuda)
        if args.command == "warmup":
            from .warmup import warmup

            return warmup(stdout)
        workers = _say_if_cold(stderr, args)
        if args.command == "demo":
            from .demo import demo

            status = demo(args, stdout)
            return status
        from .commands import run_command  # (the models: imported only to run one)

        try:
            status = run_command(args, stdin, stdout, stderr)
            return status
        finally:
            if getattr(args, "shards", None):
                from .sharded import close_all

                close_all()
    except CommandError as error:
        print(f"streamrnn {args.command}: error: {error}", file=stderr)
        return error.status
    except Stop as stop:  # SIGTERM or SIGINT: the model was saved, if asked
        return stop.status
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, as a Unix filter does
        _silence(stdout)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if workers:
            from .compile_ahead import end

            end(workers, wait=status == 0)  # (a command that ended early stops its worker)


def _say_if_cold(stderr: TextIO, args: argparse.Namespace) -> list:
    """One line on stderr before a command that is about to compile the
    kernels (a first run after installing): it would look hung otherwise.
    On a cold cache, the compile worker is started (see
    :mod:`~streamrnn.cli.compile_ahead`); the workers started."""
    from .warmup import cache_is_cold, cold_start_message

    if not cache_is_cold():
        return []
    workers = []
    if not (getattr(args, "global_network", False) or getattr(args, "shards", None)):
        from .compile_ahead import begin

        try:
            workers = begin(args.command)
        except ValueError as error:  # (a bad STREAMRNN_COMPILE_WORKERS)
            raise CommandError(str(error), status=2) from None
    print(cold_start_message(args.command, parallel=bool(workers)), file=stderr, flush=True)
    return workers


def _file_after_target(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``--target value readings.csv``: ``--target`` takes every name up to
    the next option, FILE too. When no FILE was given apart, a last target
    that names an existing file (or ``-``) is the input."""
    if getattr(args, "target", None) is None or args.file != "-" or len(args.target) < 2:
        return
    last = args.target[-1]
    if last == "-" or os.path.isfile(last):
        args.file = args.target.pop()
    elif last.endswith((".csv", ".gz", ".tsv", ".txt")):
        parser.error(f"no such file: {last} (given after --target)")


def _silence(stdout: TextIO) -> None:
    """Point the process's stdout at /dev/null, so that the interpreter's
    final flush does not fail again on the closed pipe."""
    try:
        fd = stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
