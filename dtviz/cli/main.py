"""The ``dtviz`` command line: stats, table, sample (and sweep, from dtviz.cli.sweep; serve, from dtviz.serving.serve; blocks, from dtviz.cli.blocks).

Every error is one sentence on stderr and a non-zero exit; the numbers come from dtviz.analysis.stats, the
same functions the dashboard and the tests use.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys

import numpy as np

from dtviz.cli.args import (add_analysis_args, add_class_selection, add_source_args, check_output_dir, json_text,
                            select_classes, source_options, write_samples)
from dtviz.errors import DtvizInputError
from dtviz.sources.base import row_noun

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dtviz", description="Conditioning-vector analysis for diffusion transformers.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stats", help="the Table-1 row and sparsity of one model")
    add_source_args(p)
    add_analysis_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (keys in the README)")

    p = sub.add_parser("table", help="several models side by side, as the paper's Table 1")
    add_source_args(p, many=True)
    add_analysis_args(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")

    p = sub.add_parser("sample", help="write generated samples as PNG + index.csv")
    add_source_args(p)
    add_class_selection(p)
    p.add_argument("--out", required=True, help="output folder (created; must not be a checkpoint folder)")
    p.add_argument("--noise", default=None, metavar="FILE.pt",
                   help="initial noise: one tensor (samples × C × H × W) saved with torch.save, e.g. a release's z")
    p.add_argument("--seed-convention", default="per-sample", choices=("per-sample", "release"),
                   help="per-sample: each sample's noise from (seed, index); release: torch.manual_seed(seed) and the "
                        "draws of the family's sample.py / generate.py / inference.py / DiTPipeline, to replay its seeded run")
    p.add_argument("--scale", type=int, default=None,
                   help="grid.png upscaling factor, nearest neighbour (default: tiles >= 128 px, x8 for 16 px samples)")

    from dtviz.cli.sweep import add_sweep_parser

    add_sweep_parser(sub)
    from dtviz.serving.serve import add_serve_parser

    add_serve_parser(sub)
    from dtviz.cli.blocks import add_blocks_parser

    add_blocks_parser(sub)
    return parser


# ---------------------------------------------------------------------------------------- commands

def stats_summary(source, t=None, part="y+t", tau=0.01) -> dict:
    """The ``dtviz stats --json`` object (see the README for the keys)."""
    from dtviz.analysis.stats import ConditionStats

    E = source.embeddings(t=t, part=part)
    summary = ConditionStats().fit(E).summary(tau)
    t_used = None if source.family.convention is None else (source.t0 if t is None else source.family.convention.check(t))
    out = {"source": source.info.name, "family": source.family.key, "family_note": source.info.family_note,
           "num_classes": source.num_classes, "rows": row_noun(source)[1], "dim": source.dim,
           "t": t_used, "part": part}
    if source.family.key == "trajectory":  # t is the step index; say the sampler's timestep there too
        timestep = source.timestep_at(int(t_used))
        out.update(step=int(t_used), timestep=None if timestep != timestep else timestep)
    out.update(summary)
    return out


def analysis_t(source, args) -> float | None:
    """``--t``, or ``--step K`` of a captured trajectory file (whose t is the step index, dtviz.sources.trajectory)."""
    step = getattr(args, "step", None)
    if step is None:
        return args.t
    if source.family.key != "trajectory":
        raise DtvizInputError(f"--step reads a captured trajectory file (.traj.npz), but {source.info.name!r} is a "
                              f"{source.info.family.label}; use --t.")
    if args.t is not None:
        raise DtvizInputError("give --step or --t, not both.")
    return float(step)


def cmd_stats(args) -> int:
    from dtviz.sources.loading import load

    source = load(args.source, family=args.family, device=args.device, **source_options(args), labels=args.labels, prompts=args.prompts)
    s = stats_summary(source, analysis_t(source, args), args.part, args.tau)
    if args.json:
        print(json_text(s))
        return 0
    when = f"step={s['step']} (timestep {s['timestep']})" if "step" in s else f"t={s['t']}"
    print(f"{s['source']}  family={s['family']} ({s['family_note']})  {s['rows']}={s['num_classes']}  d={s['dim']}  {when}  part={s['part']}")
    if s["num_classes"] < 2:
        print(f"  cosine (off-diagonal)  none: it needs at least 2 {s['rows']}")
    else:
        print(f"  cosine (off-diagonal)  mean {s['cosine']['mean']:.4f}  min {s['cosine']['min']:.4f}  max {s['cosine']['max']:.4f}")
    for key in ("mean_vector", "per_class_mean"):
        print(f"  PR [{key}] {s['pr'][key]:.2f}   nPR {100 * s['npr'][key]:.2f}%   s_tail(τ={args.tau:g}) {s['s_tail'][key]:.4f}")
    print(f"  head dims (|c̄_i| >= τ): {s['head_count']} of {s['dim']}")
    print(f"  variance: mean {s['variance']['mean']:.4g}, top-20 share {100 * s['variance']['top20_share']:.1f}%")
    return 0


TABLE_COLUMNS = ("source", "family", "dim", "num_classes", "pr_mean_vector", "npr_mean_vector", "pr_per_class_mean",
                 "npr_per_class_mean", "cosine_mean", "s_tail_mean_vector")


def table_rows(sources, t=None, part="y+t", tau=0.01) -> list[dict]:
    rows = []
    for src in sources:
        s = stats_summary(src, t, part, tau)
        rows.append({"source": s["source"], "family": s["family"], "dim": s["dim"], "num_classes": s["num_classes"],
                     "pr_mean_vector": s["pr"]["mean_vector"], "npr_mean_vector": s["npr"]["mean_vector"],
                     "pr_per_class_mean": s["pr"]["per_class_mean"], "npr_per_class_mean": s["npr"]["per_class_mean"],
                     "cosine_mean": s["cosine"]["mean"], "s_tail_mean_vector": s["s_tail"]["mean_vector"]})
    return rows


def cmd_table(args) -> int:
    from dtviz.sources.loading import load

    sources = [load(s, family=args.family, device=args.device, **source_options(args), labels=args.labels, prompts=args.prompts) for s in args.sources]
    rows = table_rows(sources, [analysis_t(s, args) for s in sources][0], args.part, args.tau)
    if args.json:
        print(json_text(rows))
    elif args.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        print(buf.getvalue(), end="")
    else:
        names = [r["source"] for r in rows]
        width = max(12, *(len(n) for n in names))
        print("Embedding metric".ljust(22) + "".join(n.rjust(width + 2) for n in names))
        lines = [("Condition dim (d)", "dim", "{:d}"), ("PR (mean vector)", "pr_mean_vector", "{:.2f}"),
                 ("nPR (mean vector)", "npr_mean_vector", "{:.2%}"), ("PR (per-class mean)", "pr_per_class_mean", "{:.2f}"),
                 ("nPR (per-class mean)", "npr_per_class_mean", "{:.2%}"), ("Cosine sim.", "cosine_mean", "{:.4f}")]
        for label, key, fmt in lines:
            print(label.ljust(22) + "".join(fmt.format(r[key]).rjust(width + 2) for r in rows))
    return 0


def cmd_sample(args) -> int:
    from dtviz.sampling.generate import Generator, SampleSettings
    from dtviz.sources.loading import BUILTINS, load

    source = load(args.source, family=args.family, device=args.device, **source_options(args), prompts=args.prompts)
    out = check_output_dir(args.out, source.info.extra.get("path") if args.source not in BUILTINS else None)
    if args.per_class < 1:
        raise DtvizInputError(f"--per-class must be at least 1; got {args.per_class}.")
    if args.scale is not None and args.scale < 1:
        raise DtvizInputError(f"--scale must be a whole number >= 1; got {args.scale}.")
    ids = select_classes(source.num_classes, args.classes, args.random, args.seed)
    labels = np.repeat(ids, args.per_class)
    noise = None
    if args.noise:
        from dtviz.sampling.seeding import load_noise

        noise = load_noise(args.noise)
    settings = SampleSettings(steps=args.steps, cfg_scale=args.cfg, seed=args.seed, sampler=args.sampler,
                              seed_convention=args.seed_convention, size=args.size)
    images = Generator(source, vae=args.vae).sample(labels, settings, noise=noise)
    index = write_samples(out, images, labels, source.class_names)
    from dtviz.sampling.grid import sample_grid

    grid = os.path.join(out, "grid.png")  # not a sample: FID tools should read the files index.csv lists
    sample_grid(images, labels, source.class_names, args.scale, args.per_class).save(grid)
    print(f"wrote {len(labels)} samples to {out} ({index}) and the captioned grid {grid}")
    return 0


COMMANDS = {"stats": cmd_stats, "table": cmd_table, "sample": cmd_sample}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sweep":
            from dtviz.cli.sweep import cmd_sweep

            return cmd_sweep(args)
        if args.command == "blocks":
            from dtviz.cli.blocks import cmd_blocks

            return cmd_blocks(args)
        if args.command == "serve":
            from dtviz.serving.serve import cmd_serve

            return cmd_serve(args)
        return COMMANDS[args.command](args)
    except DtvizInputError as err:
        print(f"dtviz: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - a bug in dtviz: one sentence that says so, the traceback on request
        if os.environ.get("DTVIZ_DEBUG"):
            raise
        print(f"dtviz: internal error ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no message'}); "
              "this is a bug in dtviz, not your input — rerun with DTVIZ_DEBUG=1 for the traceback and report it.",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
