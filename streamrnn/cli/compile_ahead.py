"""Compiling a command's kernels in parallel on a cold cache.

A first run spends most of its time compiling the kernels it uses, one after
the other. With a cold cache, :func:`begin` starts a worker process that
compiles a disjoint part of the call trees the command will need (the
network's backward pass and optimizer, and for ``demo`` the anomaly
detector's kernels and the one-step prediction) while the command itself compiles the rest; both write
Numba's on-disk cache, and whichever process reaches a kernel second loads
it from there.

Numba's cache is not safe for processes that compile the same function at
once (the index of a function's cache file is read, extended and written
back without a lock: two processes compiling two signatures of one function
can point the index at the other's code). :func:`lock_kernel_caches` makes
each kernel's compilation hold an exclusive lock on a file beside its cache
index: a process that finds a kernel being compiled elsewhere waits for it
and then loads it from the cache, so that a function is compiled once and its
cache files are written by one process at a time. Lock order follows the
call graph (a kernel's lock is held while its callees are compiled, and the
call graph has no cycles), so processes cannot deadlock.

The worker never changes what is computed: the command runs the same
kernels, compiled from the same source with the same flags, whether it
compiled them itself or loaded them. Where a worker fails or is off, the
command compiles what it needs itself, as it always did.

``STREAMRNN_COMPILE_WORKERS``: ``0`` off, ``1`` on; unset, on when the
one-minute load average is below the number of CPUs less one (a busy machine
gains nothing from a second compiling process).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import pkgutil
import subprocess
import sys
import tempfile
import time

logger = logging.getLogger(__name__)

#: The environment variable that turns the worker on (1) or off (0).
WORKERS_ENV = "STREAMRNN_COMPILE_WORKERS"
#: The longest a process waits for another's compilation of one kernel
#: before it compiles the kernel itself (as Numba does without the lock).
LOCK_WAIT_S = 300.0
#: The longest a command waits at its end for its worker to finish.
WORKER_WAIT_S = 120.0
#: What the worker compiles, by command (see :data:`TASKS`).
COMMAND_TASKS = {
    "demo": ("learning", "detector", "predicting"),
    "forecast": ("learning",),
    "detect": ("forward", "learning", "predicting"),
    "warmup": ("learning", "detector", "predicting"),
}


def workers_wanted(environ: dict | None = None) -> bool:
    """Whether a cold start compiles in a worker process beside the command
    (``STREAMRNN_COMPILE_WORKERS``: 0 off, 1 on; unset: on while the load
    average is below the number of CPUs less one).

    Raises
    ------
    ValueError
        Where the variable holds anything else than 0 or 1.
    """
    environ = os.environ if environ is None else environ
    value = environ.get(WORKERS_ENV, "").strip()
    if value in ("0", "1"):
        return value == "1" and _can_lock()
    if value:
        raise ValueError(f"{WORKERS_ENV} must be 0 (compile in the command's process) or 1 "
                         f"(compile in a worker process too), got {value!r}")
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # (not on Linux)
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return False
    return cpus > 1 and load < cpus - 1 and _can_lock()


def _can_lock() -> bool:
    try:
        import fcntl  # noqa: F401
    except ImportError:  # (not POSIX: no parallel compile, Numba's own behaviour)
        return False
    return True


# ---------------------------------------------------------------------------
# the cross-process lock around each kernel's compilation

_held: dict[str, int] = {}  # lock path -> depth, in this process (under Numba's compiler lock)
#: Seconds this process has waited for other processes' compilations.
waited = [0.0]


@contextlib.contextmanager
def _file_lock(path: str, wait_s: float):
    """Hold an exclusive lock on ``path`` (created where missing); reentrant
    in one process. Gives up waiting after ``wait_s`` seconds (and runs the
    block unlocked, as Numba would)."""
    import fcntl

    if path in _held:
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    fd = None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:  # (an unwritable cache: Numba will not write there either)
        pass
    locked = False
    if fd is not None:
        start = time.monotonic()
        deadline, pause = start + wait_s, 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    logger.warning("gave up waiting for %s after %.0f s: compiling without it", path, wait_s)
                    break
                time.sleep(pause)
                pause = min(2 * pause, 0.1)
            except OSError:  # (a file system without locks)
                break
        waited[0] += time.monotonic() - start
    _held[path] = 1
    try:
        yield
    finally:
        del _held[path]
        if fd is not None:
            if locked:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _lock_path(dispatcher) -> str | None:
    """The lock file of a dispatcher's on-disk cache, or None where it has
    none (``cache=False``) or Numba's cache objects are not as expected."""
    # (Numba's cache objects are not public API: where they change, no lock and no worker)
    cache = getattr(dispatcher, "_cache", None)
    index = getattr(getattr(cache, "_cache_file", None), "_index_path", None)
    locator = getattr(getattr(cache, "_impl", None), "locator", None)
    if not isinstance(index, str) or locator is None:
        return None
    try:
        locator.ensure_cache_path()
    except OSError:
        return None
    return index + ".lock"


def _locked_compile(compile_, path: str):
    from numba.core.compiler_lock import global_compiler_lock

    @functools.wraps(compile_)
    def compile(sig):
        # Numba's own (reentrant, per-process) compiler lock first, as its
        # compile takes it: one thread at a time holds file locks, in the
        # order of the call graph
        with global_compiler_lock, _file_lock(path, LOCK_WAIT_S):
            return compile_(sig)

    compile.streamrnn_locked = True
    return compile


def kernel_modules() -> list:
    """Every CPU kernel module of the package, imported."""
    from .. import kernels

    names = sorted(m.name for m in pkgutil.iter_modules(kernels.__path__) if not m.ispkg)
    return [importlib.import_module(f"{kernels.__name__}.{name}") for name in names]


def lock_kernel_caches() -> int:
    """Make every cached CPU kernel hold its cache's file lock while it
    compiles or loads (see the module's notes); the number of kernels
    locked. Idempotent. 0 where locks are not available."""
    if not _can_lock():
        return 0
    from numba.core.registry import CPUDispatcher

    count = 0
    for module in kernel_modules():
        for value in vars(module).values():
            if not isinstance(value, CPUDispatcher) or value.py_func.__module__ != module.__name__:
                continue
            if getattr(value.compile, "streamrnn_locked", False):
                count += 1
                continue
            path = _lock_path(value)
            if path is not None:
                value.compile = _locked_compile(value.compile, path)
                count += 1
    return count


# ---------------------------------------------------------------------------
# what the worker compiles

def _network_types(dtype: str) -> tuple:
    """The Numba types of ``lay`` and ``ctr`` (int64) and of ``buf`` and the
    vectors (the model's dtype) as the kernels receive them."""
    import numba
    import numpy as np
    from numba import types

    index = types.Array(types.int64, 1, "C")
    return index, index, types.Array(numba.from_dtype(np.dtype(dtype)), 1, "C")


def _forward(dtype: str = "float32") -> None:
    """The network's forward step, with the argument types of its call
    sites in the learning and predicting kernels."""
    from numba import types

    from ..kernels import recurrent as K

    lay, _, buf = _network_types(dtype)
    K.network_forward.compile((lay, buf, buf, types.int64, types.int64, buf, types.int64))


def _learning(dtype: str = "float32") -> None:
    """The subtrees of the learning step that do not need the forward pass:
    backpropagation through the window, the optimizer step and the window's
    bookkeeping, with the argument types of their call sites in
    :func:`~streamrnn.kernels.recurrent.learn_one`."""
    from numba import types

    from ..kernels import recurrent as K

    lay, ctr, buf = _network_types(dtype)
    i, zero = types.int64, types.literal(0)
    for kernel, sig in (
        (K.window_backward, (lay, buf, i, zero, i, i)),
        (K.optimizer_step, (lay, ctr, buf, types.UniTuple(types.float64, 4))),
        (K.advance_window_state, (lay, buf, i)),
        (K.expand_window, (lay, buf, i, i)),
        (K.store_compact, (lay, buf, i, i)),
        (K.reset_window, (lay, ctr, buf)),
    ):
        kernel.compile(sig)


def _predicting(dtype: str = "float32") -> None:
    """The one-step prediction kernel, as the estimators call it."""
    from ..kernels import recurrent as K

    lay, _, buf = _network_types(dtype)
    K.predict_one.compile((lay, buf, buf, buf))


def _detector(dtype: str = "float32") -> None:
    """The anomaly detector's own kernels (restarting its history,
    recording a point, scoring one, taking the network's prediction), with
    the argument types of their calls in
    :class:`~streamrnn.anomaly.PredictiveDetector`: compiled by signature,
    not by running a detector, whose network's calls would wait for the
    command compiling the same kernels."""
    from numba import types

    from ..kernels import scoring as S

    _, _, net = _network_types(dtype)
    f64 = types.Array(types.float64, 1, "C")
    for kernel, sig in (
        (S.restart_history, (f64, f64)),
        (S.point_with, (f64, f64, f64, types.float64, f64, types.boolean)),
        (S.recent_log10, (f64, f64, f64)),
        (S.recent_record, (f64, f64, f64)),
        (S.set_prediction, (f64, net)),
    ):
        kernel.compile(sig)


#: The worker's tasks, by name.
TASKS = {"forward": _forward, "learning": _learning, "predicting": _predicting, "detector": _detector}


def run_tasks(names: list[str]) -> None:
    """Lock the kernels' caches, then run the tasks ``names`` in order."""
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ValueError(f"unknown compile tasks {unknown}; known: {sorted(TASKS)}")
    lock_kernel_caches()
    for name in names:
        TASKS[name]()


# ---------------------------------------------------------------------------
# the command's side

def begin(command: str, environ: dict | None = None) -> list[subprocess.Popen]:
    """On a cold cache: lock the kernels' caches in this process and start
    the worker for ``command`` (when :func:`workers_wanted`); the workers
    started (none where it is off, where the command has no tasks, or where
    the worker could not start)."""
    tasks = COMMAND_TASKS.get(command)
    if not tasks or not workers_wanted(environ) or not lock_kernel_caches():
        return []
    try:
        log = tempfile.TemporaryFile(mode="w+")
        code = f"import sys; from {__name__} import worker_main; sys.exit(worker_main(sys.argv[1:]))"
        worker = subprocess.Popen([sys.executable, "-c", code, *tasks], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=log)
        worker.log = log
    except OSError as error:
        logger.info("no compile worker (%s): compiling in this process", error)
        return []
    return [worker]


def end(workers: list[subprocess.Popen], wait: bool = True) -> list[int | None]:
    """Wait for ``workers`` to finish (up to :data:`WORKER_WAIT_S`), or stop
    them (``wait`` false: the command ended early), so that none outlives
    the command; their exit statuses (None: stopped)."""
    statuses = []
    for worker in workers:
        if wait:
            try:
                worker.wait(timeout=WORKER_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
        if worker.poll() is None:
            worker.terminate()  # (its cache files are written atomically, and its locks go with it)
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            statuses.append(None)
        else:
            statuses.append(worker.returncode)
        log = getattr(worker, "log", None)
        if log is not None:
            log.seek(0)
            if statuses[-1] not in (0, None):
                logger.info("compile worker exited with %s: %s", statuses[-1], log.read()[-2000:].strip())
            log.close()
    return statuses


class Stopped(Exception):
    """The worker was asked to stop (SIGTERM): raised in its frames, an
    ``Exception`` so that Numba's cache writer removes the file it was
    writing."""


def _stop(signum, frame):
    raise Stopped(signum)


def worker_main(argv: list[str]) -> int:
    """The worker process: run the tasks ``argv``; 0 when done, 143 when
    stopped."""
    import signal

    signal.signal(signal.SIGTERM, _stop)
    try:
        run_tasks(argv)
    except Stopped:
        return 143
    return 0
