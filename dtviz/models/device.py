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


def interactive_threads() -> int:
    """Intra-op threads for sampling in a long-running, shared process (the dashboard) on CPU: half the cores.

    torch defaults to one thread per core. On a 2-core machine its two OpenMP workers then contend with the
    web server, the browser or another session, and a busy worker stalls the other at every op: the live
    pruning grid (16 samples) measured ~10× slower than with one thread. Half the cores leaves room for the rest.
    """
    return max(1, (os.cpu_count() or 2) // 2)
