"""Threads that share a bank kernel's batch without a parallel region.

A Numba ``prange`` region splits a batch evenly between its threads up front
and returns when the last thread is done: a thread that starts late (asleep,
or its core taken by another process) holds up the whole call. A batch of
one row per model costs about a millisecond, while a sleeping thread can
take from a fraction of that to tens of milliseconds to be woken, so the
call costs several times its work, varying from process to process.

Here the calling thread and ``numba.get_num_threads() - 1`` worker threads
run the same chunk-claiming kernel (``streamrnn.kernels.recurrent.*_chunks``,
compiled ``nogil``), each claiming chunks of models from one atomic counter
until none is left. The caller never waits for a worker that has not
claimed a chunk: a late worker finds nothing left and goes back to sleep.
A model runs whole on one thread, so results do not depend on the threads.

When the call returns, no worker is left inside the kernel: a worker that
has entered it is waited for (it is running, so this is short), and one
that arrives later finds the batch closed and does not enter. Native code
running without the GIL after the call has returned would race with what
the caller does next; CPython's ``tracemalloc.start()`` and ``stop()``, for
one, swap the memory allocator that Numba's runtime frees through, and a
free racing with the swap crashes the process.
"""

from __future__ import annotations

import os
import queue
import threading
import time

import numba
import numpy as np

#: Groups (models) claimed at a time: small enough that the threads finish
#: together, large enough that claiming costs nothing next to the work.
MAX_CHUNK = 16
#: How long the caller polls for the chunks of other threads before it
#: sleeps until the last one is done (seconds).
SPIN_S = 2e-4


def chunk_size(n_groups: int, threads: int) -> int:
    """Groups per chunk: about eight chunks per thread, at most :data:`MAX_CHUNK`.

    >>> chunk_size(1000, 2), chunk_size(40, 2), chunk_size(3, 2)
    (16, 2, 1)
    """
    return max(1, min(MAX_CHUNK, n_groups // (8 * threads)))


class _Task:
    """One batch: the kernel, its arguments and the threads' shared counters."""

    __slots__ = ("kernel", "args", "chunk", "claim", "finished", "error", "lock", "active", "closed", "idle")

    def __init__(self, kernel, args, chunk: int):
        self.kernel, self.args, self.chunk = kernel, args, chunk
        self.claim = np.zeros(3, dtype=np.int64)  # groups claimed, groups done, scratch regions taken
        self.finished = threading.Event()
        self.error = None
        self.lock = threading.Lock()
        self.active = 0  # workers inside the kernel
        self.closed = False  # set by the caller: no worker enters any more
        self.idle = threading.Event()  # the last active worker left a closed task

    def run(self) -> None:
        try:
            if self.kernel(*self.args, self.chunk, self.claim):
                self.finished.set()
        except BaseException as error:  # handed to the caller, which would wait otherwise
            self.error = error
            self.finished.set()

    def join(self) -> None:
        """A worker's turn: run the kernel unless the caller has closed the task."""
        with self.lock:
            if self.closed:
                return
            self.active += 1
        try:
            self.run()
        finally:
            with self.lock:
                self.active -= 1
                if self.closed and not self.active:
                    self.idle.set()

    def close(self) -> None:
        """Let no worker enter any more; wait for those inside to leave."""
        with self.lock:
            self.closed = True
            busy = self.active > 0
        if busy:
            self.idle.wait()


def _serve(tasks: queue.SimpleQueue) -> None:
    while True:
        tasks.get().join()


class _Workers:
    """Daemon threads, each serving its own queue of tasks; started as needed
    (and again in a forked child, which has none)."""

    def __init__(self):
        self._pid = None
        self._queues: list = []
        self._lock = threading.Lock()

    def queues(self, n: int) -> list:
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self._queues = os.getpid(), []
            while len(self._queues) < n:
                tasks = queue.SimpleQueue()
                threading.Thread(target=_serve, args=(tasks,), daemon=True, name="streamrnn-bank-worker").start()
                self._queues.append(tasks)
            return self._queues[:n]


_WORKERS = _Workers()


def run_chunks(kernel, args: tuple, n_groups: int) -> None:
    """Run ``kernel(*args, chunk, claim)`` over ``n_groups`` groups on
    ``numba.get_num_threads()`` threads (this one among them); return when
    every group is done."""
    threads = numba.get_num_threads()
    if threads == 1 or n_groups < 2:
        kernel(*args, max(n_groups, 1), np.zeros(3, dtype=np.int64))
        return
    task = _Task(kernel, args, chunk_size(n_groups, threads))
    for tasks in _WORKERS.queues(threads - 1):
        tasks.put(task)
    try:
        task.run()
        if task.claim[1] < n_groups and task.error is None:
            deadline = time.perf_counter() + SPIN_S
            while task.claim[1] < n_groups and task.error is None and time.perf_counter() < deadline:
                pass
            while task.claim[1] < n_groups and task.error is None:
                task.finished.wait(0.01)
    except BaseException:  # (Ctrl-C while waiting): the workers claim no more chunks
        task.claim[0] = n_groups
        raise
    finally:
        if task.error is not None:
            task.claim[0] = n_groups
        task.close()
    if task.error is not None:
        raise task.error
