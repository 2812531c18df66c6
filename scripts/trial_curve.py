#!/usr/bin/env python
"""A training run's curve for the model card's "Recipes tried" table, measured from its work folder.

    python scripts/trial_curve.py --work RUN_DIR                       # print the curve as JSON
    python scripts/trial_curve.py --work RUN_DIR --name "E: ..." --recipe "..." --trials assets/builtin/trials.json

Each embedder snapshot (RUN_DIR/snapshots/step_*.safetensors, written by scripts/train_builtin.py) gives cosine
and nPR(c̄) at t0 through the same library call as ``dtviz stats SNAPSHOT --family sit --json``, the count of
dims with |c̄_i| >= 1, and the statistics rows of the claims scorecard that issue 20's goals name (the label part's
cosine, the lowest cosine over t, the top-20 variance share, the class structure kept by the head and by the tail,
nPR of SiLU(c̄): dtviz.evaluation.claims.statistics_claims), how many of the top-8 |c̄_i| are negative
(dtviz.analysis.stats.head_through_silu); class accuracy is the EMA evaluation train.log recorded at that step
(none where it has none). ``last_state``: where adaLN reads the class (dtviz.analysis.blocks.class_read) in the
run's last kept state (RUN_DIR/state.pt, its EMA weights, or --state: an exported model folder), which the
embedder snapshots cannot say. With --trials
the recipe (by --name) is added to, or replaced in, that trials.json; a replaced recipe keeps the accuracies and the
last_state of its old entry where the run folder has none (a folder whose log or state is gone);
--last-state-only updates last_state alone.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import dtviz  # noqa: E402
from dtviz.cli.main import stats_summary  # noqa: E402
from dtviz.evaluation.claims import statistics_claims  # noqa: E402
from dtviz.analysis.dynamics import size_split  # noqa: E402
from dtviz.analysis.stats import head_through_silu, mean_vector  # noqa: E402
from dtviz.evaluation.claim_sampling import HEAD_K  # noqa: E402
from dtviz.builtin.train import T_GRID  # noqa: E402


def logged_accuracy(log_path: str) -> dict[int, float]:
    """step -> the last "step N: EMA class accuracy X" line of train.log for that step."""
    found = {}
    if os.path.isfile(log_path):
        with open(log_path, encoding="utf-8") as fh:
            for line in fh:
                m = re.search(r"step (\d+): EMA class accuracy ([\d.]+)", line)
                if m:
                    found[int(m.group(1))] = float(m.group(2))
    return found


def curve(work: str) -> list[dict]:
    folder = os.path.join(work, "snapshots")
    accuracy = logged_accuracy(os.path.join(work, "train.log"))
    rows = []
    for name in sorted(os.listdir(folder)):
        m = re.fullmatch(r"step_(\d+)\.safetensors", name)
        if not m:
            continue
        step = int(m.group(1))
        source = dtviz.load(os.path.join(folder, name), family="sit")
        s = stats_summary(source, source.t0)
        c_bar = mean_vector(source.embeddings(t=source.t0))
        claims = {c.id: c.evidence for c in statistics_claims(source)}
        rows.append({"step": step, "cosine": round(s["cosine"]["mean"], 4), "npr": round(s["npr"]["mean_vector"], 4),
                     "dims_at_least_1": int((np.abs(c_bar) >= 1).sum()), "class_accuracy": accuracy.get(step),
                     "cosine_y": _round(claims["alignment_y"].get("cosine_y")),
                     "cosine_min_t": _round(claims["alignment_over_t"].get("min")),
                     "top20_variance_share": _round(claims["variance_head"].get("top_share")),
                     "head_structure": _round(claims["head_is_class"].get("head")),
                     "tail_structure": _round(claims["head_is_class"].get("tail")),
                     "npr_silu": _round(claims["sparsity_npr"].get("npr_silu_mean_vector")),
                     "head_negative": head_through_silu(c_bar, HEAD_K)["negative"],
                     **label_split(source)})
    return rows


def last_state(path: str) -> dict | None:
    """{"step": s, **class_read} of a run's last kept state: RUN_DIR/state.pt's EMA weights, or an exported model
    folder (config.json + model.safetensors, its training's last step); None when there is neither."""
    import torch

    from dtviz.analysis.blocks import class_read

    if os.path.isfile(os.path.join(path, "config.json")):
        with open(os.path.join(path, "config.json"), encoding="utf-8") as fh:
            step = int(json.load(fh)["training"]["steps"])
        source = dtviz.load(path, device="cpu")
    elif os.path.isfile(os.path.join(path, "state.pt")):
        state = os.path.join(path, "state.pt")
        step = int(torch.load(state, map_location="cpu", weights_only=True)["step"])
        source = dtviz.load(state, family="sit", device="cpu")
    else:
        return None
    reading = class_read(source).to_json()
    reading.pop("head")
    return {"step": step, **{k: _round(v) if isinstance(v, float) else v for k, v in reading.items()}}


def label_split(source) -> dict:
    """dtviz.analysis.dynamics.size_split at t0 (the label rows' shared and own parts, t_emb's size), and the cosine
    of ȳ with t̄, t_emb averaged over training's t (T_GRID): does the label rows' shared part point where t_emb's
    t-independent part does?"""
    split = {k: _round(v) for k, v in size_split(source, source.t0).items()}
    y_bar = np.asarray(source.embeddings(t=source.t0, part="y"), dtype=np.float64).mean(0)
    t_bar = np.mean([np.asarray(source.embeddings(classes=[0], t=float(t), part="t"), dtype=np.float64)[0]
                     for t in T_GRID], axis=0)
    norms = np.linalg.norm(y_bar) * np.linalg.norm(t_bar)
    return {**split, "cos_y_t_mean": _round(y_bar @ t_bar / norms) if norms > 0 else None}


def _round(x, digits: int = 4):
    return None if x is None else round(float(x), digits)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="the run's --work folder (snapshots/, train.log)")
    p.add_argument("--name", default=None, help="the recipe's row name in trials.json")
    p.add_argument("--recipe", default=None, help="how it was run and what it showed (markdown)")
    p.add_argument("--trials", default=None, help="a trials.json to add the recipe to (replacing one of the same name)")
    p.add_argument("--from-step", type=int, default=0, help="only snapshots at or after this step (a run resumed from another)")
    p.add_argument("--last-state-only", action="store_true", help="update only the recipe's last_state (no curve)")
    p.add_argument("--state", default=None, help="the last kept state: a run folder with state.pt or an exported model "
                                                 "folder (default: --work)")
    args = p.parse_args(argv)
    state = last_state(args.state or args.work)
    rows = [] if args.last_state_only else [r for r in curve(args.work) if r["step"] >= args.from_step]
    if not args.trials:
        print(json.dumps({"curve": rows, "last_state": state}, indent=1))
        return 0
    if not args.name:
        p.error("--trials needs --name")
    with open(args.trials, encoding="utf-8") as fh:
        trials = json.load(fh)
    old = next((r for r in trials["recipes"] if r["name"] == args.name), None)
    if args.last_state_only:
        if old is None:
            p.error(f"--last-state-only: no recipe named {args.name!r} in {args.trials}")
        rows = old["curve"]
    elif old is not None:  # keep the accuracies measured when the run's log still existed
        kept = {r["step"]: r.get("class_accuracy") for r in old["curve"]}
        for r in rows:
            if r["class_accuracy"] is None:
                r["class_accuracy"] = kept.get(r["step"])
    entry = {"name": args.name, "recipe": args.recipe or (old or {}).get("recipe", ""), "curve": rows}
    if state or (old or {}).get("last_state"):
        entry["last_state"] = state or old["last_state"]
    recipes = [r for r in trials["recipes"] if r["name"] != args.name]
    at = next((i for i, r in enumerate(trials["recipes"]) if r["name"] == args.name), len(recipes))
    trials["recipes"] = sorted(recipes[:at] + [entry] + recipes[at:], key=lambda r: r["name"])  # A, B, C, …
    with open(args.trials, "w", encoding="utf-8") as fh:
        json.dump(trials, fh, indent=1, ensure_ascii=False)
    print(f"{args.trials}: {args.name}, {len(rows)} snapshots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
