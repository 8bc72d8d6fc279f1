"""Detecting the use of one model from two threads at once.

The banks and estimators are not thread-safe: a call changes the model's
buffers, counters and key maps in several steps, and two threads in one
model at once corrupt it silently (two keys on one model, a window mixed
from two streams). Nor would a lock that makes the second thread wait help:
learning depends on the order of the samples, and two threads feeding one
model give an order that changes from run to run. So the public methods
that read or change a model's state are wrapped by :func:`exclusive`: a call
that finds another thread inside the same object raises
:class:`ConcurrentUseError` at once (a non-blocking lock acquire: nothing
waits, nothing is changed; the wrapper and lock cost 0.3-0.9 µs a call on
the project's 2-core machine, 3-7 % of an estimator's ``predict_one``). Use one model per thread, or a lock of
your own around the calls. Calls from several threads one after another are
fine: only overlap is refused.

The lock lives in the instance's ``__dict__`` under ``_busy``, made on first
use; :class:`Guarded` (the mixin of the classes so wrapped) and
:func:`without_guard` leave it out of a pickled state, and so out of copies
and of :func:`streamrnn.save`'s files.
"""

from __future__ import annotations

import functools
import threading

_ATTRIBUTE = "_busy"


class ConcurrentUseError(RuntimeError):
    """A model was called from a second thread while a first was inside it."""


def exclusive(method):
    """Wrap ``method`` to raise :class:`ConcurrentUseError` when another
    thread is inside a method of the same object so wrapped (the same
    thread may re-enter: one such method may call another)."""
    name = method.__name__

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        lock = self._busy  # (None, the class's, until the first call)
        if lock is None:  # (setdefault is atomic: two threads get the same lock)
            lock = self.__dict__.setdefault(_ATTRIBUTE, threading.RLock())
        if not lock.acquire(False):
            cls = type(self).__name__
            raise ConcurrentUseError(
                f"{cls}.{name} was called while another thread was inside this {cls}: it was used from two "
                f"threads at once, which would corrupt it silently ({cls} is not thread-safe). Use one model "
                "per thread, or hold a lock of your own around every call."
            )
        try:
            return method(self, *args, **kwargs)
        finally:
            lock.release()

    return guarded


def without_guard(state: dict) -> dict:
    """``state`` (an instance's ``__dict__`` or a copy of it) without the
    guard's lock: a copy when it holds one, else ``state`` itself."""
    if _ATTRIBUTE in state:
        state = dict(state)
        del state[_ATTRIBUTE]
    return state


class Guarded:
    """Mixin of the classes whose methods :func:`exclusive` wraps: pickles,
    copies and saves the ``__dict__`` without the guard's lock (made again
    on first use). A class that defines its own ``__getstate__`` must leave
    the lock out with :func:`without_guard`."""

    _busy = None  # the lock, once made: in the instance's __dict__

    def __getstate__(self) -> dict:
        return without_guard(dict(self.__dict__))
