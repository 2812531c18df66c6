"""Peak memory of the round-2 and round-3 hostile files (issue 23), each through `dtviz stats` in a fresh process, against an
honest file of the same size class; writes docs/hostile-round2.json, which scripts/docs_numbers.py turns into the
table of docs/reliability.md.

    python bench/hostile_round2.py
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from tests.test_hostile_files import laughs, many_tensors, npz_bomb, one_sentence, peak_rss_mb, wide_csv  # noqa: E402
from tests.test_hostile_round3 import builtin_copy, sparse_npy  # noqa: E402

OUT = os.path.join(ROOT, "docs", "hostile-round2.json")


def main() -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        honest = os.path.join(tmp, "honest.npz")
        np.savez_compressed(honest, embeddings=np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32))
        base, _, _ = peak_rss_mb(["stats", honest, "--json"])
        labels = os.path.join(tmp, "labels.npz")
        np.savez_compressed(labels, embeddings=np.ones((4, 2), np.float32), labels=np.full(8_000_000, "ab", dtype="<U2"))
        big = builtin_copy(os.path.join(tmp, "big"), hidden_size=2048, depth=4)
        sample = ["--random", "1", "--steps", "1", "--out", os.path.join(tmp, "out")]
        zeros, long_labels = os.path.join(tmp, "zeros.npz"), os.path.join(tmp, "long-labels.npz")
        np.savez_compressed(zeros, embeddings=np.zeros((20_000, 1024), np.float32))
        np.savez_compressed(long_labels, embeddings=np.ones((200_000, 1), np.float32),
                            labels=np.full(200_000, "a" * 1000, dtype="<U1000"))
        cases = [  # (case, the file it is judged by, the command)
            ("bzip2 .npz member declaring 182 bytes, 2 GiB inflated", npz_bomb(os.path.join(tmp, "b.npz"), zipfile.ZIP_BZIP2)),
            ("LZMA .npz member, 2 GiB inflated", npz_bomb(os.path.join(tmp, "l.npz"), zipfile.ZIP_LZMA)),
            ("labels nesting one shared list 26 deep (.pt)", laughs(os.path.join(tmp, "laughs.pt"))),
            ("one CSV row of 8 M zeros (16 MB)", wide_csv(os.path.join(tmp, "wide.csv"), 16)),
            ("safetensors declaring 200 000 one-element tensors", many_tensors(os.path.join(tmp, "many.safetensors"))),
            ("round 3: a sparse .npy of 8 M rows × 1", sparse_npy(os.path.join(tmp, "rows.npy"), (8_000_000, 1))),
            ("round 3: .npz of 4 rows with 8 M two-character labels", labels),
            ("round 3: config.json saying hidden_size 2048, depth 4 beside the built-in weights (dtviz sample)",
             os.path.join(big, "config.json"), ["sample", big, *sample]),
            ("round 3b: a sparse .npy of 100 000 × 600 (240 MB declared, within the float budget)",
             sparse_npy(os.path.join(tmp, "holes.npy"), (100_000, 600))),
            ("round 3b: 80 MB of zeros deflated into an .npz", zeros),
            ("round 3b: 200 000 rows with labels of 1 000 characters, deflated (.npz)", long_labels),
        ]
        for name, path, *command in cases:
            peak, done, seconds = peak_rss_mb(command[0] if command else ["stats", path, "--json"])
            on_disk = min(os.path.getsize(path), os.stat(path).st_blocks * 512)  # a sparse file's holes cost nothing
            rows.append({"case": name, "file_bytes": on_disk, "peak_mb_over_honest": round(peak - base),
                         "seconds": round(seconds, 1), "message": one_sentence(done.stderr).removeprefix("dtviz: error: ")})
    with open(OUT, "w", encoding="utf-8") as fh:
        json.dump({"honest_peak_mb": round(base), "rows": rows}, fh, indent=1)
    return [(f"hostile: {r['case']} (peak MB over an honest file)", r["peak_mb_over_honest"], None, "MB") for r in rows]


if __name__ == "__main__":
    for row in main():
        print(row)
