"""``streamrnn warmup``: compile the kernels the commands run into Numba's
cache ahead of their first use (a container image built with it starts its
first ``forecast`` or ``detect`` at once)."""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from typing import TextIO

from .errors import CommandError

#: What a command's first run takes on an idle 2-core machine, wall seconds,
#: compiling in its own process alone (measured) and with the compile worker
#: (:mod:`~streamrnn.cli.compile_ahead`; the alone figure scaled by the
#: larger of the two processes' CPU shares, measured by
#: ``benchmarks/bench_startup.py --serial-too --phases``).
FIRST_RUN_SECONDS = {
    "forecast": (25, 17),
    "detect": (27, 14),
    "demo": (35, 20),
    "warmup": (35, 20),
}


def cold_start_message(command: str, parallel: bool) -> str:
    """The line a command says on stderr when the cache is cold, naming
    the seconds its first run takes (``parallel``: with the compile
    worker)."""
    serial, with_worker = FIRST_RUN_SECONDS.get(command, FIRST_RUN_SECONDS["forecast"])
    seconds = with_worker if parallel else serial
    how = "2 processes" if parallel else "1 process"
    return (f"streamrnn: compiling the kernels for first use (about {seconds} s on 2 idle cores, {how}, once); "
            "later runs start at once. `streamrnn warmup` does it ahead, for example in a container image.")


def cache_location() -> str:
    """Where Numba caches the network's kernels (``NUMBA_CACHE_DIR`` when set,
    else beside the installed package, or a user-wide folder where that is
    not writable)."""
    from ..kernels import recurrent

    # (Numba's cache object is not public API: where it changes, say so plainly)
    return getattr(getattr(recurrent.learn_one, "_cache", None), "_cache_path", None) or "Numba's cache"


def cache_is_cold() -> bool:
    """Whether Numba's cache holds nothing yet of the kernel every command
    runs (learning one step): the command about to run then compiles for tens
    of seconds. False where caching is off, or where it cannot tell."""
    from .. import config
    from ..kernels import recurrent

    if not config.CACHE:
        return False
    # (Numba's cache objects are not public API: where they change, say nothing)
    index = getattr(getattr(getattr(recurrent.learn_one, "_cache", None), "_cache_file", None), "_index_path", None)
    return isinstance(index, str) and not os.path.exists(index)


def warmup(stdout: TextIO) -> int:
    """Run the defaults of ``forecast`` (with intervals) and ``detect`` on a
    short synthetic series: every kernel they use is compiled and cached."""
    from ..anomaly import PredictiveDetector
    from ..forecasting import LSTMForecaster
    from .compile_ahead import begin, end

    start = time.perf_counter()
    try:
        workers = begin("warmup") if cache_is_cold() else []
    except ValueError as error:  # (a bad STREAMRNN_COMPILE_WORKERS)
        raise CommandError(str(error), status=2) from None
    done = False
    try:
        # as the commands run them: the forecaster with the calendar features
        # of a time column, forecasting at each row; the detector with a
        # short grace period, so that it scores within the series as
        # ``detect`` does after its first hundred rows
        forecaster, detector = LSTMForecaster(seed=0), PredictiveDetector(seed=0, grace_period=10)
        t0, hour = dt.datetime(2024, 1, 1), dt.timedelta(hours=1)
        for t in range(80):
            y = 10.0 + math.sin(2 * math.pi * t / 24)
            forecaster.learn_one(y, {"time": t0 + t * hour})
            forecaster.forecast(3, [{"time": t0 + (t + k) * hour} for k in (1, 2, 3)])
            detector.score_one({"y": y})
            detector.learn_one({"y": y})
        forecaster.forecast_interval(3, 0.9, [{"time": t0 + (80 + k) * hour} for k in (1, 2, 3)])
        done = True
    finally:
        end(workers, wait=done)
    print(f"kernels compiled and cached in {cache_location()} ({time.perf_counter() - start:.1f} s)", file=stdout)
    return 0
