"""Running as a service: SIGTERM and SIGINT finish the current row, save
and exit with status 128 + the signal's number; checkpoints save the model
while the stream goes on."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stop(Exception):
    """The run was asked to stop by the signal ``signum``.

    Parameters
    ----------
    signum
        The signal's number; the exit status is ``128 + signum`` (143 for
        SIGTERM, 130 for SIGINT), as a shell reports a process it stopped.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.status = 128 + signum


class SignalGuard:
    """A context manager that turns SIGTERM and SIGINT into :class:`Stop`,
    raised at once while the run waits for input, or once the row it is
    working on is done (learned, written and checkpointed).

    Outside the main thread (where Python cannot set signal handlers) it
    does nothing; the handlers before it are restored on exit.
    """

    def __init__(self):
        self._busy = False
        self._pending: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self._busy:
            if self._pending is None:
                self._pending = signum
            return
        raise Stop(signum)

    def begin(self) -> None:
        """A row is being worked on: a signal waits for :meth:`end`."""
        self._busy = True

    def end(self) -> None:
        """The row is done: :class:`Stop` if a signal came meanwhile."""
        self._busy = False
        if self._pending is not None:
            raise Stop(self._pending)

    def hold(self) -> None:
        """Defer signals for good (while the run saves and ends)."""
        self._busy = True


class Checkpoints:
    """Calls ``save()`` every ``rows`` rows and/or every ``seconds`` seconds
    (checked after each row); neither given: never.

    Parameters
    ----------
    save
        What writes the checkpoint (atomically: a crash while writing keeps
        the previous one).
    rows
        Rows between checkpoints, or None.
    seconds
        Seconds between checkpoints, or None.
    clock
        The clock in seconds (``time.monotonic``).

    Examples
    --------
    >>> saved = []
    >>> points = Checkpoints(lambda: saved.append(len(saved)), rows=2)
    >>> for _ in range(5):
    ...     points.row_done()
    >>> saved
    [0, 1]
    """

    def __init__(self, save: Callable[[], None], rows: int | None = None, seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._save, self._rows, self._seconds, self._clock = save, rows, seconds, clock
        self._since = 0
        self._last = clock()

    def row_done(self) -> None:
        self._since += 1
        due = self._rows is not None and self._since >= self._rows
        due = due or (self._seconds is not None and self._clock() - self._last >= self._seconds)
        if due:
            self._save()
            self._since = 0
            self._last = self._clock()
