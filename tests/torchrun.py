"""Running ``dtviz`` under torchrun from a test: two CPU processes (gloo), one intra-op thread each, and, when a
rank dies, the lines of its output that say why (torchrun's own summary only says which signal)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAUSE = re.compile(r"error|terminate|abort|exception|timed out|traceback", re.IGNORECASE)


def run_dtviz(args: list[str], processes: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m",
           "dtviz", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def why_a_rank_failed(stderr: str) -> str:
    """The first lines of a failed run that name a cause (a rank's traceback or C++ abort), then the tail."""
    causes = [line for line in stderr.splitlines() if CAUSE.search(line)][:40]
    return "\n".join(causes) + "\n…\n" + stderr[-1500:]
