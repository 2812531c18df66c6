"""Device choice: cuda → mps → cpu automatically, or exactly what the user asked for."""
from __future__ import annotations

import os

import torch

from dtviz.errors import DtvizInputError


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.insert(0, "cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.insert(0 if "cuda" not in devices else 1, "mps")
    return devices


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or "auto" picks the first of cuda, mps, cpu; an explicit device must be present."""
    if device is None or str(device) == "auto":
        return torch.device(available_devices()[0])
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DtvizInputError(f"device must be auto, cpu, cuda, cuda:N or mps; got {device!r}.") from err
    if dev.type not in available_devices():
        raise DtvizInputError(
            f"device {str(dev)!r} was requested but it is not available here; available: {', '.join(available_devices())}."
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DtvizInputError(f"device {str(dev)!r} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s).")
    return dev


def interactive_threads(passive: bool | None = None) -> int:
    """Intra-op threads for sampling in a long-running, shared process (the dashboard) on CPU: every core, with
    OpenMP's passive wait policy (``OMP_WAIT_POLICY=PASSIVE``, set by ``dtviz serve`` and app.py before torch loads).

    With OpenMP's default policy, workers spin while they wait; on a 2-core machine whose other core is busy (the web
    server, another session, another job) a spinning worker stalls the other at every op, and two threads ran the live
    pruning grid several times slower than one. Waiting passively, two threads are as fast as one on a loaded machine
    and faster on an idle one (`make bench`: bench/threads.py). Without the passive policy: half the cores.
    ``passive``: whether the policy was in force when torch loaded (default: the environment says so now).
    """
    cores = os.cpu_count() or 2
    if passive is None:
        passive = os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    return cores if passive else max(1, cores // 2)
