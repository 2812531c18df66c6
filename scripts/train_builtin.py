#!/usr/bin/env python
"""Regenerate the built-in model in assets/builtin/ from scratch, on CPU, seeded and resumable.

    python scripts/train_builtin.py --work .cache/builtin-train --out assets/builtin
    python scripts/train_builtin.py --steps 20 --num-classes 16 ...   # a quick smoke run

Stop it at any time; running it again resumes from the last checkpoint in --work. The model card
(assets/builtin/README.md) is written by scripts/model_card.py from the exported files.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from dtviz.builtin.train import TrainConfig, Workdir, class_accuracy, export, get_classifier, prepare_data, train_diffusion  # noqa: E402


def logged_training_seconds(log_path: str) -> float:
    """Sum of the step times train.log recorded (every 50 steps), over every resumed run."""
    import re

    total = 0.0
    with open(log_path) as fh:
        for line in fh:
            m = re.search(r"step \d+ loss [\d.]+ \(([\d.]+)s/step\)", line)
            if m:
                total += 50 * float(m.group(1))
    return total


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, TrainConfig]:
    """The command line and the TrainConfig it asks for (every int / float field of TrainConfig is a flag)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=".cache/builtin-train", help="scratch folder: data cache, resumable state")
    parser.add_argument("--out", default="assets/builtin", help="where the shipped files go")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in this run")
    parser.add_argument("--ship-sampler", default=None, metavar="NAME:STEPS",
                        help="the default sampler written into the exported config.json (e.g. heun:6; default: the "
                             "training's evaluation sampler, euler with --sample-steps)")
    parser.add_argument("--snapshot-steps", default=None, metavar="S,S,…",
                        help="steps at which to save the embedder snapshots (default: 0, 250, 500, 1000, 2000, 3000, …)")
    for f in dataclasses.fields(TrainConfig):
        if f.type in ("int", "float"):
            parser.add_argument("--" + f.name.replace("_", "-"), type=int if f.type == "int" else float, default=None)
    args = parser.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    for name, value in overrides.items():  # rates, decays, ε, scales: a negative one is a typo, said before any work
        if value < 0:
            parser.error(f"--{name.replace('_', '-')} expects a number ≥ 0; got {value:g}.")
    cfg = TrainConfig(**overrides)
    if args.snapshot_steps:
        cfg.snapshot_steps = tuple(int(x) for x in args.snapshot_steps.split(",") if x.strip())
    cfg.snapshot_steps = tuple(s for s in cfg.snapshot_steps if s < cfg.steps) + (cfg.steps,)
    return args, cfg


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse(argv)
    torch.set_num_threads(args.threads)
    work = Workdir(args.work)
    work.log(f"config {json.dumps(dataclasses.asdict(cfg))}")
    t0 = time.time()
    data = prepare_data(cfg, work)
    clf, clf_acc = get_classifier(cfg, data, work)
    work.log(f"classifier held-out accuracy {clf_acc:.4f}")
    model, history = train_diffusion(cfg, data, clf, work, max_steps=args.max_steps)
    if not history or history[-1]["step"] < cfg.steps:
        work.log("stopped before the last step; run again to resume")
        return 0
    acc = class_accuracy(model, clf, cfg, per_class=4, seed=99)
    metrics = {"classifier_heldout_accuracy": clf_acc, "final_class_accuracy_4_per_class": acc,
               "history": history, "training_seconds": logged_training_seconds(work.file("train.log")),
               "wall_clock_this_run_s": time.time() - t0}
    export(cfg, model, clf, data, work, args.out, metrics)
    if args.ship_sampler:
        name, _, steps = args.ship_sampler.partition(":")
        config_path = os.path.join(args.out, "config.json")
        with open(config_path) as fh:
            config = json.load(fh)
        config["sampler"] = {"name": name, "steps": int(steps), "cfg_scale": cfg.cfg_scale}
        with open(config_path, "w") as fh:
            json.dump(config, fh, indent=1)
    work.log(f"exported to {args.out}: class accuracy {acc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
