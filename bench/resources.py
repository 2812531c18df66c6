"""Resources (issue 6): peak memory, measured, never asserted.

    c + stats of an XL-shaped checkpoint with a ≥ 1 GB backbone      safetensors / torch .pt (mmap)
                                                                     vs torch.load without mmap
    switching between 10 models in one process                      through dtviz_app's cached loader

Each measurement runs in a fresh ``python`` subprocess so that its peak RSS (VmHWM; not ru_maxrss, which keeps
the parent's RSS at fork) belongs to it alone; the row is the peak RSS growth over the RSS after imports, in MB. The
checkpoint lives in a temp folder that is deleted afterwards. The safetensors backbone is a sparse hole
(no disk blocks, read as zeros); the .pt one is real zeros written by torch.save.
Rows are (name, ours, baseline, unit) — bench/run.py prints MB for them.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
D, K = 1152, 1000
BACKBONE_BYTES = 1200 * 2 ** 20  # ≥ 1 GB of "blocks"


def embedder_tensors() -> dict:
    g = torch.Generator().manual_seed(0)
    return {"y_embedder.embedding_table.weight": torch.randn(K + 1, D, generator=g) * 0.02,
            "t_embedder.mlp.0.weight": torch.randn(D, 256, generator=g) * 0.02, "t_embedder.mlp.0.bias": torch.zeros(D),
            "t_embedder.mlp.2.weight": torch.randn(D, D, generator=g) * 0.02, "t_embedder.mlp.2.bias": torch.zeros(D)}


def write_sparse_safetensors(path: str, tensors: dict, backbone_bytes: int) -> None:
    """A valid .safetensors whose last tensor (the backbone) is a hole in a sparse file."""
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        data = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["blocks.0.attn.qkv.weight"] = {"dtype": "F32", "shape": [backbone_bytes // 4], "data_offsets": [offset, offset + backbone_bytes]}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text)
        for data in blobs:
            fh.write(data)
        fh.truncate(8 + len(text) + offset + backbone_bytes)


_PROBE = r"""
import json, sys
sys.path.insert(0, {root!r})
import numpy as np, torch
import dtviz
from dtviz.analysis.stats import ConditionStats
import os
with open("/proc/self/statm") as fh:
    base = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024  # current RSS (KB) before the work
mode, path = {mode!r}, {path!r}
if mode == "dtviz":
    E = dtviz.load(path, device="cpu").embeddings()
else:  # what a notebook does: torch.load of the whole file, no mmap
    sd = torch.load(path, map_location="cpu", weights_only=True)
    src = dtviz.load(path, device="cpu")
    E = src.embeddings()
ConditionStats().fit(E)
with open("/proc/self/status") as fh:  # VmHWM: this process's peak RSS (ru_maxrss would include the parent's at fork)
    peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
print(json.dumps({{"growth_mb": (peak - base) / 1024, "peak_mb": peak / 1024, "base_mb": base / 1024}}))
"""

_SWITCH = r"""
import json, logging, os, sys, warnings
sys.path.insert(0, {root!r})
logging.disable(logging.WARNING)
warnings.filterwarnings("ignore")
import dtviz_app
from dtviz.analysis.stats import ConditionStats

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20

paths = {paths!r}
start = rss_mb()
after = []
for round_ in range(3):
    for p in paths:
        src = dtviz_app.load_source(p, "auto", "cpu", None)
        ConditionStats().fit(src.embeddings())
    after.append(rss_mb())
print(json.dumps({{"start": start, "rounds": after}}))
"""


def run_probe(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        emb = embedder_tensors()
        st_path = os.path.join(folder, "xl.safetensors")
        write_sparse_safetensors(st_path, emb, BACKBONE_BYTES)
        pt_path = os.path.join(folder, "xl.pt")
        torch.save({**emb, "blocks.0.attn.qkv.weight": torch.zeros(BACKBONE_BYTES // 4)}, pt_path)
        size = os.path.getsize(pt_path) / 2 ** 30
        st = run_probe(_PROBE.format(root=ROOT, mode="dtviz", path=st_path))
        pt = run_probe(_PROBE.format(root=ROOT, mode="dtviz", path=pt_path))
        nb = run_probe(_PROBE.format(root=ROOT, mode="notebook", path=pt_path))
        rows.append((f"peak RSS, c + stats, {size:.1f} GB XL ckpt: safetensors vs torch.load", st["growth_mb"], nb["growth_mb"], "MB"))
        rows.append((f"peak RSS, c + stats, {size:.1f} GB XL ckpt: .pt mmap vs torch.load", pt["growth_mb"], nb["growth_mb"], "MB"))
        # ten models, switched through three times via the dashboard's cached loader (max_entries=4)
        paths = []
        for i in range(10):
            p = os.path.join(folder, f"m{i}.safetensors")
            tensors = {k: v + i * 1e-3 for k, v in emb.items()}
            save_file({**tensors, "blocks.0.attn.qkv.weight": torch.zeros(8 * 2 ** 20)}, p)  # + 32 MB backbone
            paths.append(p)
        sw = run_probe(_SWITCH.format(root=ROOT, paths=paths))
        first, last = sw["rounds"][0] - sw["start"], sw["rounds"][-1] - sw["start"]
        rows.append(("RSS growth, 10 models × 3 rounds (cached loader): round 3 vs round 1", last, first, "MB"))
    return rows


if __name__ == "__main__":
    for name, ours, base, unit in main():
        print(f"{name:80s} {ours:9.1f} {unit} {base:9.1f} {unit}")
