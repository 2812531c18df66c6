"""Taking turns on one shared model: a first-come-first-served queue and cancellable runs.

A dashboard shares one ``Generator`` per model between all its visitors. A plain lock lets any waiter win and
a long run hold everyone up; here the waiters are served in arrival order and each can see its position
(``on_wait(ahead)``), and a run can be stopped between two network evaluations (``CancelToken.check`` in the
sampler's per-step callback) when its visitor left or asked for something newer.

    FairQueue().turn(cancel, on_wait)   context manager: wait for this caller's turn (FIFO), then hold it
    CancelToken(should_stop)            cancel() / check(): raise Cancelled once cancelled or should_stop()
    Cancelled                           what a stopped run raises (a DtvizInputError: one sentence)
"""
from __future__ import annotations

import itertools
import threading
from collections import deque
from contextlib import contextmanager
from typing import Callable

from dtviz.errors import DtvizInputError

WAIT_POLL_SECONDS = 0.2  # how often a waiting caller re-checks its cancel token and reports its position


class Cancelled(DtvizInputError):
    """A sampling run stopped before its end (its session ended, or a newer request of the session arrived)."""


class CancelToken:
    """Set once with ``cancel(reason)``; ``should_stop()`` (optional) is asked at every ``check`` too, e.g.
    "is this visitor's session still open". ``check`` fits the samplers' ``on_step(i, n)`` signature."""

    def __init__(self, should_stop: Callable[[], str | None] | None = None):
        self._event = threading.Event()
        self._reason = ""
        self._should_stop = should_stop
        self.checks = 0  # steps seen (how soon a cancel took effect)

    def cancel(self, reason: str = "a newer request replaced it") -> None:
        self._reason = self._reason or reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        if not self._event.is_set() and self._should_stop is not None:
            reason = self._should_stop()
            if reason:
                self.cancel(reason)
        return self._event.is_set()

    def check(self, step: int | None = None, num_steps: int | None = None) -> None:
        self.checks += 1
        if self.cancelled:
            where = "" if step is None else f" at step {step + 1}" + (f" of {num_steps}" if num_steps else "")
            raise Cancelled(f"sampling stopped{where}: {self._reason}.")


class FairQueue:
    """A lock whose waiters get their turn in arrival order (FIFO), each told how many are ahead of it."""

    def __init__(self):
        self._cond = threading.Condition()
        self._tickets = itertools.count()
        self._waiting: deque[int] = deque()  # tickets in arrival order; the first one holds the turn
        self._held = False

    def ahead_of(self, ticket: int) -> int:
        """Callers before ``ticket``: the one running (if any) and the waiters that came earlier."""
        with self._cond:
            return self._position(ticket)

    def _position(self, ticket: int) -> int:
        return (1 if self._held else 0) + list(self._waiting).index(ticket)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    @contextmanager
    def turn(self, cancel: CancelToken | None = None, on_wait: Callable[[int], None] | None = None):
        """Wait for this caller's turn, then hold it for the ``with`` block. ``on_wait(ahead)`` is called
        whenever the number of callers ahead changes; a cancelled token leaves the queue with ``Cancelled``."""
        with self._cond:
            ticket = next(self._tickets)
            self._waiting.append(ticket)
            last = None
            try:
                while self._held or self._waiting[0] != ticket:
                    ahead = self._position(ticket)
                    if on_wait is not None and ahead != last:
                        last = ahead
                        self._cond.release()  # report outside the lock (it may draw a progress bar)
                        try:
                            on_wait(ahead)
                        finally:
                            self._cond.acquire()
                    if cancel is not None:
                        cancel.check()
                    self._cond.wait(WAIT_POLL_SECONDS)
            except BaseException:
                self._waiting.remove(ticket)
                self._cond.notify_all()
                raise
            self._waiting.popleft()
            self._held = True
        try:
            yield
        finally:
            with self._cond:
                self._held = False
                self._cond.notify_all()

