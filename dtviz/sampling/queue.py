"""Taking turns on one shared model: a first-come-first-served queue and cancellable runs.

A dashboard shares one ``Generator`` per model between all its visitors. A plain lock lets any waiter win and
one visitor with many tabs hold everyone up; here clients take turns in rotation, each can see its position
(``on_wait(ahead)``), and a run can be stopped between two network evaluations (``CancelToken.check`` in the
sampler's per-step callback) when its visitor left or asked for something newer.

    FairQueue().turn(cancel, on_wait, client)   wait for this caller's turn (clients in rotation, one waiting
                                        run per client, at most MAX_QUEUED waiting), then hold it
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


MAX_QUEUED = 8  # runs waiting for one model at once, all clients together; more are refused in one sentence


class FairQueue:
    """A lock whose waiters take turns fairly: clients in rotation (the client served longest ago goes first), each
    client's own runs in arrival order, and at most one waiting run per client. A client is whoever the caller says
    (a dashboard visitor's browser, a background job); callers without one are each their own client. Every waiter
    is told how many runs are ahead of it."""

    def __init__(self, max_queued: int = MAX_QUEUED):
        self._cond = threading.Condition()
        self._tickets = itertools.count()
        self._waiting: list[tuple[int, object, object]] = []  # (ticket, client, cancel token) in arrival order
        self._served: dict[object, int] = {}  # client -> the turn it last got (rotation)
        self._turns = itertools.count()
        self._held = False
        self.max_queued = max_queued

    def _order(self) -> list[int]:
        """Waiting tickets in the order they will be served: least recently served client first, FIFO within one."""
        first_of = {}
        for ticket, client, _ in self._waiting:
            first_of.setdefault(client, ticket)
        ranked = sorted(self._waiting, key=lambda w: (self._served.get(w[1], -1), first_of[w[1]], w[0]))
        return [w[0] for w in ranked]

    def ahead_of(self, ticket: int) -> int:
        """Runs before ``ticket``: the one running (if any) and the waiters served before it."""
        with self._cond:
            return self._position(ticket)

    def _position(self, ticket: int) -> int:
        return (1 if self._held else 0) + self._order().index(ticket)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    @contextmanager
    def turn(self, cancel: CancelToken | None = None, on_wait: Callable[[int], None] | None = None, client=None):
        """Wait for this caller's turn, then hold it for the ``with`` block. ``on_wait(ahead)`` is called whenever
        the number of runs ahead changes; a cancelled token leaves the queue with ``Cancelled``. A client with a run
        already waiting, or a full queue, gets one DtvizInputError sentence instead of a place."""
        with self._cond:
            ticket = next(self._tickets)
            client = ("anonymous", ticket) if client is None else client
            # a run its own client has just replaced (cancelled, leaving at its next poll) does not count
            if any(c == client and not (tok is not None and tok.cancelled) for _, c, tok in self._waiting):
                raise DtvizInputError("another of your sampling runs on this model is still waiting (one per visitor "
                                      "at a time, so that every visitor gets a turn); this one starts when you ask again.")
            if len(self._waiting) >= self.max_queued:
                raise DtvizInputError(f"{len(self._waiting)} sampling runs are already waiting for this model (this "
                                      "server's limit); ask again in a moment.")
            entry = (ticket, client, cancel)
            self._waiting.append(entry)
            last = None
            try:
                while self._held or self._order()[0] != ticket:
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
                self._waiting.remove(entry)
                self._cond.notify_all()
                raise
            self._waiting.remove(entry)
            self._served[client] = next(self._turns)
            if len(self._served) > 4 * self.max_queued + 64:  # forget clients long gone (rotation needs recent ones)
                for old in sorted(self._served, key=self._served.get)[: len(self._served) // 2]:
                    del self._served[old]
            self._held = True
        try:
            yield
        finally:
            with self._cond:
                self._held = False
                self._cond.notify_all()
