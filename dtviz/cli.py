"""The ``dtviz`` command line: stats, table, sample (and sweep, from dtviz.sweep; serve, from dtviz.serve).

Every error is one sentence on stderr and a non-zero exit; the numbers come from dtviz.stats, the
same functions the dashboard and the tests use.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys

import numpy as np

from dtviz.errors import DtvizInputError
from dtviz.families import SAMPLER_NAMES
from dtviz.sources.base import row_noun

PARTS = ("y+t", "y", "t")


def _add_source_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    if many:
        p.add_argument("sources", nargs="+", metavar="SOURCE", help="'builtin', 'builtin-wide', a checkpoint, a pipeline folder or a matrix")
    else:
        p.add_argument("source", nargs="?", default="builtin", metavar="SOURCE",
                       help="'builtin' (default), 'builtin-wide', a checkpoint, a pipeline folder, hf:<repo> or a matrix")
    p.add_argument("--family", default="auto", help="auto, dit, sit, repa, lightningdit, mdt, mg")
    p.add_argument("--device", default=None, help="auto (cuda → mps → cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--labels", default=None, help="labels file for a matrix, one per line")
    add_prompts_arg(p)
    add_checkpoint_reading_args(p)


def add_checkpoint_reading_args(p: argparse.ArgumentParser) -> None:
    """What a native checkpoint's file may not say (dtviz.sources.release_config); pass on with source_options."""
    p.add_argument("--num-heads", type=int, default=None, metavar="N",
                   help="attention heads of a native checkpoint (default: its training args/config or shapes, else "
                        "a reading stated in the family note)")
    p.add_argument("--null-row", default="auto", choices=("auto", "yes", "no"),
                   help="is the label table's last row the null (CFG) row? auto: the training args/config say, else "
                        "yes (stated in the family note); no for a model trained with class_dropout_prob=0")


def source_options(args) -> dict:
    """load() keywords from add_checkpoint_reading_args."""
    return {"num_heads": getattr(args, "num_heads", None), "null_row": getattr(args, "null_row", "auto"),
            "guidance": getattr(args, "guidance", None)}


def add_prompts_arg(p: argparse.ArgumentParser) -> None:
    from dtviz.prompts import PROMPT_SETS

    p.add_argument("--guidance", type=float, default=None, metavar="G",
                   help="Flux-dev: the guidance value embedded in c (and used to sample); default the pipeline's own")
    p.add_argument("--prompts", default=None, metavar="FILE",
                   help="text-to-image pipelines (SD3, Flux, PixArt, Sana): the rows, one prompt per line, or a shipped "
                        f"set: {', '.join(PROMPT_SETS)} (default varied)")


def _add_analysis_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--t", type=float, default=None, help="timestep in the family's convention (default t0)")
    p.add_argument("--step", type=int, default=None, metavar="K",
                   help="a captured trajectory file (.traj.npz): read c at step K (default 0 = t0, the first step)")
    p.add_argument("--part", default="y+t", choices=PARTS)
    p.add_argument("--tau", type=float, default=0.01)


def sampler_spec(text: str) -> str:
    """argparse type of --sampler: a known name, options checked later by Generator.sampler."""
    from dtviz.flow_samplers import parse_sampler_spec

    try:
        name, _ = parse_sampler_spec(text)
    except DtvizInputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if name not in SAMPLER_NAMES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(SAMPLER_NAMES)}; got {text!r}")
    return text


def add_class_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classes", default=None, help="comma-separated class ids")
    p.add_argument("--random", type=int, default=None, metavar="N", help="N random classes")
    p.add_argument("--per-class", type=int, default=1, metavar="K", help="samples per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--cfg", type=float, default=None, help="classifier-free guidance scale (Flux-dev: the embedded guidance)")
    p.add_argument("--size", type=int, default=None, metavar="PX",
                   help="text-to-image pipelines: image side in px (default the pipeline's; smaller is faster on CPU)")
    p.add_argument("--sampler", default=None, type=sampler_spec, metavar="NAME[:KEY=VALUE,...]",
                   help=f"one of {', '.join(SAMPLER_NAMES)}; default: the family's release default (README, Samplers); "
                        "flow options e.g. sde:diffusion_form=linear,last_step=tweedie or ode:method=dopri5,atol=1e-6")
    p.add_argument("--vae", default=None, metavar="PATH",
                   help="local diffusers AutoencoderKL folder for latent models, or a VA-VAE folder (checkpoint + "
                        "latents_stats.pt) for LightningDiT (default: vae/ beside the model, then the HF cache)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dtviz", description="Conditioning-vector analysis for diffusion transformers.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stats", help="the Table-1 row and sparsity of one model")
    _add_source_args(p)
    _add_analysis_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (keys in the README)")

    p = sub.add_parser("table", help="several models side by side, as the paper's Table 1")
    _add_source_args(p, many=True)
    _add_analysis_args(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")

    p = sub.add_parser("sample", help="write generated samples as PNG + index.csv")
    _add_source_args(p)
    add_class_selection(p)
    p.add_argument("--out", required=True, help="output folder (created; must not be a checkpoint folder)")
    p.add_argument("--noise", default=None, metavar="FILE.pt",
                   help="initial noise: one tensor (samples × C × H × W) saved with torch.save, e.g. a release's z")
    p.add_argument("--seed-convention", default="per-sample", choices=("per-sample", "release"),
                   help="per-sample: each sample's noise from (seed, index); release: torch.manual_seed(seed) and the "
                        "draws of the family's sample.py / generate.py / inference.py / DiTPipeline, to replay its seeded run")
    p.add_argument("--scale", type=int, default=None,
                   help="grid.png upscaling factor, nearest neighbour (default: tiles >= 128 px, x8 for 16 px samples)")

    from dtviz.sweep import add_sweep_parser

    add_sweep_parser(sub)
    from dtviz.serve import add_serve_parser

    add_serve_parser(sub)
    from dtviz.blocks_cli import add_blocks_parser

    add_blocks_parser(sub)
    return parser


# ---------------------------------------------------------------------------------------- commands

def stats_summary(source, t=None, part="y+t", tau=0.01) -> dict:
    """The ``dtviz stats --json`` object (see the README for the keys)."""
    from dtviz.stats import ConditionStats

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


def json_text(value) -> str:
    """Strict JSON: NaN/±Inf (e.g. the cosine of a one-row matrix, which has no pairs) become null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(value), allow_nan=False)


def cmd_stats(args) -> int:
    from dtviz.loading import load

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
    from dtviz.loading import load

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


def select_classes(num_classes: int, classes: str | None, random_n: int | None, seed: int) -> list[int]:
    """--classes 3,17,42 | --random N (seeded) | all classes."""
    if classes and random_n:
        raise DtvizInputError("give either --classes or --random, not both.")
    if classes:
        try:
            ids = [int(x) for x in classes.split(",") if x.strip()]
        except ValueError:
            raise DtvizInputError(f"--classes expects comma-separated integers like 3,17,42; got {classes!r}.") from None
        bad = [i for i in ids if not 0 <= i < num_classes]
        if bad:
            raise DtvizInputError(f"class ids must lie in 0..{num_classes - 1}; got {bad[:5]}.")
        return ids
    if random_n:
        if not 0 < random_n <= num_classes:
            raise DtvizInputError(f"--random must be between 1 and {num_classes}; got {random_n}.")
        return sorted(np.random.default_rng(seed).choice(num_classes, random_n, replace=False).tolist())
    return list(range(num_classes))


def write_samples(out_dir: str, images: np.ndarray, labels, class_names, prefix: str = "") -> str:
    """One PNG per sample and ``index.csv`` (file,class_id,class_name); returns the index path."""
    from PIL import Image

    from dtviz.generate import to_uint8

    os.makedirs(out_dir, exist_ok=True)
    index = os.path.join(out_dir, "index.csv")
    with open(index, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "class_id", "class_name"])
        for i, (img, label) in enumerate(zip(to_uint8(images), labels)):
            name = f"{prefix}{i:06d}_class{int(label):04d}.png"
            Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(os.path.join(out_dir, name))
            writer.writerow([name, int(label), class_names[int(label)]])
    return index


def check_output_dir(out: str, source_path: str | None) -> str:
    """Refuse to write into the folder of the user's checkpoint."""
    out = os.path.abspath(out)
    if source_path:
        src_dir = os.path.abspath(source_path if os.path.isdir(source_path) else os.path.dirname(source_path))
        if out == src_dir or out.startswith(src_dir + os.sep):
            raise DtvizInputError(f"--out {out!r} is inside the checkpoint's folder {src_dir!r}; dtviz never writes there — choose another folder.")
    if os.path.isfile(out):
        raise DtvizInputError(f"--out must be a folder, but {out!r} is a file.")
    return out


def cmd_sample(args) -> int:
    from dtviz.generate import Generator, SampleSettings
    from dtviz.loading import BUILTINS, load

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
        from dtviz.seeding import load_noise

        noise = load_noise(args.noise)
    settings = SampleSettings(steps=args.steps, cfg_scale=args.cfg, seed=args.seed, sampler=args.sampler,
                              seed_convention=args.seed_convention, size=args.size)
    images = Generator(source, vae=args.vae).sample(labels, settings, noise=noise)
    index = write_samples(out, images, labels, source.class_names)
    from dtviz.grid import sample_grid

    grid = os.path.join(out, "grid.png")  # not a sample: FID tools should read the files index.csv lists
    sample_grid(images, labels, source.class_names, args.scale, args.per_class).save(grid)
    print(f"wrote {len(labels)} samples to {out} ({index}) and the captioned grid {grid}")
    return 0


COMMANDS = {"stats": cmd_stats, "table": cmd_table, "sample": cmd_sample}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sweep":
            from dtviz.sweep import cmd_sweep

            return cmd_sweep(args)
        if args.command == "blocks":
            from dtviz.blocks_cli import cmd_blocks

            return cmd_blocks(args)
        if args.command == "serve":
            from dtviz.serve import cmd_serve

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
