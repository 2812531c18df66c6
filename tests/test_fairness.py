"""One visitor cannot cost the others (issue 13): checkpoint loads under concurrency, cancelled and queued
sampling, and caches that one client cannot empty for everyone.

Everything runs on real objects: real training-wrapper files, the built-in-sized tiny DiT through
``dtviz.generate.Generator``, and Streamlit's own runtime classes for the back-message.
"""
from __future__ import annotations

import threading

import pytest
import torch

from factories import family_state, save_checkpoint


# ================================================================================ checkpoint loads

def test_forty_parallel_loads_of_a_training_wrapper_all_succeed(tmp_path):
    """torch's safe_globals context manager swaps one process-global list: a thread leaving it used to drop
    argparse.Namespace for the loads still running (9 of 40 refused). The allow-list is now registered once."""
    from dtviz.checkpoint import read_torch

    paths = [save_checkpoint(family_state("dit", seed=i % 4), str(tmp_path / f"ckpt{i}.pt"), wrapper="train")
             for i in range(4)]
    barrier = threading.Barrier(40)
    failures, done = [], []

    def load(i):
        try:
            barrier.wait(timeout=30)
            for _ in range(3):
                obj = read_torch(paths[i % 4])
                assert "args" in obj and "ema" in obj
            done.append(i)
        except BaseException as err:  # noqa: BLE001 — collected and asserted below
            failures.append(f"{type(err).__name__}: {err}")

    threads = [threading.Thread(target=load, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures[:3]
    assert len(done) == 40
