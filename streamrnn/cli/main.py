"""The ``streamrnn`` command: argument parsing and dispatch."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TextIO

from .commands import CELLS, DEFAULT_THRESHOLD, MODEL_DEFAULTS, run_command
from .rows import CommandError

EPILOG = """examples:
  streamrnn forecast readings.csv --target value --time timestamp --horizon 12
  tail -f readings.csv | streamrnn detect - --target value --time timestamp
  streamrnn detect fleet.csv --target temp pressure --key sensor_id --save fleet.npz
  streamrnn demo --plot demo.png
"""


def _int_from(text: str, least: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be a {what} integer, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _int_from(text, 1, "positive")


def _seed(text: str) -> int:
    return _int_from(text, 0, "non-negative")


def _add_stream_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default="-", metavar="FILE",
                        help="CSV file with a header line; '-' (the default) reads standard input row by row")
    parser.add_argument("--target", "-t", nargs="+", required=True, metavar="COL",
                        help="numeric column(s) to model")
    parser.add_argument("--time", metavar="COL",
                        help="time column, copied to the output (forecast: ISO dates also become calendar "
                             "features)")
    parser.add_argument("--key", metavar="COL", help="series key column: one model per key")
    # the model's configuration: no defaults here (None), so that one given with --load can be refused
    parser.add_argument("--model", choices=CELLS, help=f"recurrent cell (default: {MODEL_DEFAULTS['model']})")
    parser.add_argument("--hidden-size", type=_positive_int, metavar="N",
                        help="hidden units per layer (default: 32 for forecast, 16 for detect)")
    parser.add_argument("--seed", type=_seed, help=f"random seed (default: {MODEL_DEFAULTS['seed']})")
    parser.add_argument("--load", metavar="PATH",
                        help="resume from a model saved with --save for the same --target and --key columns "
                             "(it keeps its --model, --hidden-size and --seed)")
    parser.add_argument("--save", metavar="PATH", help="save the model(s) at the end (streamrnn.save format)")
    parser.add_argument("--plot", metavar="PNG", help="plot the first target (of the first key) to this file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamrnn",
        description="Online recurrent networks on CSV streams: forecasts and anomaly flags, one output row per input row.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    forecast = commands.add_parser(
        "forecast", help="learn each row, then forecast the next values",
        description="For each row: learn the target value(s), then write the forecasts of the next "
                    "--horizon values as columns TARGET+1 .. TARGET+H.")
    _add_stream_options(forecast)
    forecast.add_argument("--horizon", "-H", type=_positive_int, default=1, help="steps ahead (default: 1)")
    forecast.add_argument("--interval", type=float, metavar="COVERAGE",
                          help="also write prediction intervals of this coverage in (0, 1), columns "
                               "TARGET+h_lo and TARGET+h_hi (e.g. 0.95)")
    forecast.add_argument("--direct", action="store_true",
                          help="one network output per step ahead instead of recursive forecasts")

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
                      help="where to write the plot (default: streamrnn-demo.png)")
    demo.add_argument("--no-plot", action="store_true", help="do not plot")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    commands.add_parser("info", help="versions, Numba threading layer, CUDA availability")
    return parser


def main(argv: list[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the
    exit status: 0 success, 1 bad data, 2 usage error."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return int(exit_.code or 0)
    try:
        if args.command == "demo":
            from .demo import demo

            return demo(args, stdout)
        if args.command == "info":
            from .info import info

            return info(stdout)
        return run_command(args, stdin, stdout, stderr)
    except CommandError as error:
        print(f"streamrnn {args.command}: error: {error}", file=stderr)
        return error.status
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, as a Unix filter does
        _silence(stdout)
        return 0
    except KeyboardInterrupt:
        return 130


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
