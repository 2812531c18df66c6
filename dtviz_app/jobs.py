"""Background jobs shared by every session: long measurements (the claims scorecard's sampling rows) run in a thread
of the server while visitors keep using the pages; a page polls the job's progress and shows its result once done.

A job is keyed by what it computes (model, settings), so a second visitor asking for the same thing joins the first
run instead of starting another; at most ``MAX_RUNNING`` run at once (a visitor cannot start more than that), and
finished results are kept for ``MAX_KEPT`` keys, least recently used first out. Sampling inside a job goes through the
model's shared Generator, whose first-come-first-served queue makes the live pages and the jobs take turns.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from dtviz.errors import DtvizInputError
from dtviz_app.constants import LOG

MAX_RUNNING = 2
MAX_KEPT = 16


@dataclass
class Job:
    key: tuple
    done: int = 0
    total: int = 1
    label: str = "waiting"
    result: object = None
    error: str | None = None
    finished: bool = False
    started: float = field(default_factory=time.time)

    def progress(self, done: int, total: int, label: str) -> None:
        self.done, self.total, self.label = int(done), max(int(total), 1), str(label)


_LOCK = threading.Lock()
_JOBS: "OrderedDict[tuple, Job]" = OrderedDict()


def get(key: tuple) -> Job | None:
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None:
            _JOBS.move_to_end(key)
        return job


def running() -> int:
    with _LOCK:
        return sum(not j.finished for j in _JOBS.values())


def start(key: tuple, work: Callable[[Callable[[int, int, str], None]], object]) -> Job:
    """The job of ``key``: the one already there (running or finished without error), else a new thread running
    ``work(progress)``. One DtvizInputError sentence when MAX_RUNNING jobs already run."""
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None and job.error is None:
            return job
        if sum(not j.finished for j in _JOBS.values()) >= MAX_RUNNING:
            raise DtvizInputError(f"{MAX_RUNNING} measurements are already running on this server; try again when one "
                                  "has finished (their progress shows on the pages that started them).")
        job = _JOBS[key] = Job(key)
        while len(_JOBS) > MAX_KEPT:
            oldest = next((k for k, j in _JOBS.items() if j.finished), None)
            if oldest is None:
                break
            del _JOBS[oldest]

    def run() -> None:
        try:
            job.result = work(job.progress)
        except DtvizInputError as err:
            job.error = str(err)
        except Exception as err:  # noqa: BLE001 — a bug: logged, one line for the page
            LOG.exception("background job %r failed", key[:1])
            job.error = f"the measurement failed ({type(err).__name__}); details are in the server log."
        finally:
            job.finished = True

    threading.Thread(target=run, name=f"dtviz-job-{len(_JOBS)}", daemon=True).start()
    return job


def clear() -> None:
    """Forget every finished job (tests)."""
    with _LOCK:
        for key in [k for k, j in _JOBS.items() if j.finished]:
            del _JOBS[key]
