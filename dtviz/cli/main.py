"""The ``dtviz`` command line: stats, table, claims, sample, plot (and sweep, from dtviz.cli.sweep; serve, from
dtviz.serving.serve; blocks, from dtviz.cli.blocks).

Every error is one sentence on stderr and a non-zero exit; the numbers come from the same library functions the
dashboard and the tests use. Nothing heavy is imported before the arguments parse: ``dtviz --help`` and a
mistyped flag answer at once, and torch starts only with the chosen thread policy (dtviz.cli.args.apply_threads).
"""
from __future__ import annotations

import csv
import io
import os
import sys

from dtviz.cli.args import (Parser, add_analysis_args, analysis_t, add_class_selection, add_source_args, add_threads_arg,
                            apply_threads, check_output_dir, json_text, nearest_option, number, select_classes,
                            source_options, write_samples)
from dtviz.errors import DtvizInputError


def build_parser() -> tuple[Parser, dict]:
    """(the top-level parser, {command: its subparser}) — the subparsers name a mistyped flag's nearest match."""
    parser = Parser(prog="dtviz", description="Conditioning-vector analysis for diffusion transformers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("stats", help="the Table-1 row and sparsity of one model")
    add_source_args(p)
    add_analysis_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (keys in docs/cli.md)")

    p = sub.add_parser("table", help="several models side by side, as the paper's Table 1")
    add_source_args(p, many=True)
    add_analysis_args(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")

    p = sub.add_parser("claims", help="the paper's claims, each measured on this model with a verdict")
    add_source_args(p)
    add_claims_args(p)

    p = sub.add_parser("sample", help="write generated samples as PNG + index.csv")
    add_source_args(p)
    add_class_selection(p)
    p.add_argument("--dry-run", action="store_true", help="print the size of the job and a time estimate, sample nothing")
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
    from dtviz.cli.plot import add_plot_parser

    add_plot_parser(sub)
    commands = dict(sub.choices)
    for p in commands.values():
        add_threads_arg(p)
    return parser, commands


def add_claims_args(p) -> None:
    p.add_argument("--t", type=number(float), default=None,
                   help="read the alignment and statistics rows at this t (default t0, the first sampling step)")
    p.add_argument("--run", default=None, metavar="DIR",
                   help="a folder of training snapshots for training_sparsification (default: the source's snapshots/)")
    p.add_argument("--no-sampling", action="store_true", help="only the rows that need no samples (seconds, not minutes)")
    p.add_argument("--samples", type=number(int, 1), default=256, metavar="N",
                   help="samples per sampling run: all classes when they fit (several each), else N random classes "
                        "(default 256; 12 runs)")
    p.add_argument("--seed", type=number(int, 0), default=0)
    p.add_argument("--steps", type=number(int, 1), default=None, help="sampler steps (default the source's)")
    p.add_argument("--k", type=number(int, 1), default=8, help="head dims removed by prune_head (default 8, as Tab. 2)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of {id, claim, paper, measured, verdict, rule, evidence, page}")
    p.add_argument("--markdown", default=None, metavar="FILE.md", help="also write the scorecard as a Markdown table")


# ---------------------------------------------------------------------------------------- commands

def stats_summary(source, t=None, part="y+t", tau="auto") -> dict:
    """The ``dtviz stats --json`` object (see docs/cli.md for the keys). ``tau`` "auto": the source's τ
    (dtviz.pruning.defaults.default_tau, from c̄ at t0), the one every page uses."""
    from dtviz.analysis.stats import ConditionStats
    from dtviz.pruning.defaults import default_tau
    from dtviz.sources.base import row_noun

    E = source.embeddings(t=t, part=part)
    stats = ConditionStats().fit(E)
    if tau == "auto":
        tau = default_tau(stats if (t is None and part == "y+t") else ConditionStats(compute_cosine=False).fit(source.embeddings()))
    summary = stats.summary(tau)
    t_used = None if source.family.convention is None else (source.t0 if t is None else source.family.convention.check(t))
    out = {"source": source.info.name, "family": source.family.key, "family_note": source.info.family_note,
           "num_classes": source.num_classes, "rows": row_noun(source)[1], "dim": source.dim,
           "t": t_used, "part": part}
    if source.family.key == "trajectory":  # t is the step index; say the sampler's timestep there too
        timestep = source.timestep_at(int(t_used))
        out.update(step=int(t_used), timestep=None if timestep != timestep else timestep)
    out.update(summary)
    from dtviz.analysis.stats import head_through_silu
    from dtviz.evaluation.claim_sampling import HEAD_K

    out["head_through_silu"] = head_through_silu(stats.mean_vector_, HEAD_K)  # the prune_head k dims, as adaLN reads them
    return out


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
        print(f"  PR [{key}] {s['pr'][key]:.2f}   nPR {100 * s['npr'][key]:.2f}%   s_tail(τ={s['tau']:.4g}) {s['s_tail'][key]:.4f}")
    print(f"  head dims (|c̄_i| >= τ = {s['tau']:.4g}): {s['head_count']} of {s['dim']}")
    h = s["head_through_silu"]
    print(f"  top-{h['k']} |c̄_i| through SiLU: {h['negative']} negative; {100 * h['share_c']:.1f}% of Σ|c̄_i|, "
          f"{100 * h['share_silu']:.1f}% of Σ|SiLU(c̄_i)|")
    print(f"  variance: mean {s['variance']['mean']:.4g}, top-20 share {100 * s['variance']['top20_share']:.1f}%")
    return 0


TABLE_COLUMNS = ("source", "family", "dim", "num_classes", "pr_mean_vector", "npr_mean_vector", "pr_per_class_mean",
                 "npr_per_class_mean", "cosine_mean", "s_tail_mean_vector")


def table_rows(sources, t=None, part="y+t", tau="auto") -> list[dict]:
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
    import numpy as np

    from dtviz.cli.args import job_size_line, note_assumptions
    from dtviz.sampling.generate import Generator, SampleSettings
    from dtviz.sources.builtins import BUILTINS
    from dtviz.sources.loading import load

    source = load(args.source, family=args.family, device=args.device, **source_options(args), prompts=args.prompts)
    note_assumptions(source)
    out = check_output_dir(args.out, source.info.extra.get("path") if args.source not in BUILTINS else None)
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
    generator = Generator(source, vae=args.vae)
    print(job_size_line(generator, len(ids), args.per_class, 1, settings), file=sys.stderr)
    if args.dry_run:
        return 0
    images = generator.sample(labels, settings, noise=noise)
    index = write_samples(out, images, labels, source.class_names)
    from dtviz.sampling.grid import sample_grid

    grid = os.path.join(out, "grid.png")  # not a sample: FID tools should read the files index.csv lists
    sample_grid(images, labels, source.class_names, args.scale, args.per_class).save(grid)
    print(f"wrote {len(labels)} samples to {out} ({index}) and the captioned grid {grid}")
    return 0


def cmd_claims(args) -> int:
    from dtviz.cli.args import note_assumptions
    from dtviz.evaluation.claim_sampling import default_plan
    from dtviz.evaluation.claims import claims_markdown, measure_claims
    from dtviz.sources.loading import load

    source = load(args.source, family=args.family, device=args.device, **source_options(args), labels=args.labels,
                  prompts=args.prompts)
    note_assumptions(source)
    plan = default_plan(source, samples=args.samples, seed=args.seed, steps=args.steps, head_k=args.k)
    progress = None
    if not args.no_sampling and source.info.can_sample:
        print(f"dtviz: the sampling rows sample {plan.samples} images 12 times ({len(plan.classes)} classes × "
              f"{plan.per_class}); --no-sampling skips them", file=sys.stderr)

        def progress(i, n, name):
            if name != "done":
                print(f"  run {i + 1}/{n}: {name}", file=sys.stderr, flush=True)
    rows = measure_claims(source, t=args.t, run=args.run, sampling=not args.no_sampling, plan=plan, progress=progress)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(claims_markdown(rows, source.info.name, claims_settings(source, args, plan)))
    if args.json:
        print(json_text([r.to_dict() for r in rows]))
        return 0
    width = max(len(r.id) for r in rows)
    for r in rows:
        print(f"{r.verdict:>19}  {r.id:<{width}}  {r.measured}")
    return 0


def claims_settings(source, args, plan) -> dict:
    return {"source": source.info.name, "t": "t0" if args.t is None else args.t, "sampling": not args.no_sampling,
            "samples": plan.samples, "seed": plan.seed, "steps": plan.steps or "the source's", "head k": plan.head_k}


COMMANDS = {"stats": cmd_stats, "table": cmd_table, "sample": cmd_sample, "claims": cmd_claims}


def parse(argv: list[str] | None = None):
    """The arguments, or argparse's exit (status 2) with one sentence: a mistyped flag is named with the nearest flag
    of its own command."""
    parser, commands = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = commands[args.command]
        flag = next((x for x in extra if x.startswith("-")), extra[0])
        best = nearest_option(sub, flag) if flag.startswith("-") else None
        sub.exit(2, f"{sub.prog}: error: unrecognized argument {flag!r}"
                 + (f"; did you mean {best}?\n" if best else f"; see {sub.prog} --help\n"))
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
    except SystemExit as done:  # argparse's own exit (help, or one sentence for a bad flag): its status
        return int(done.code or 0)
    apply_threads(getattr(args, "threads", "auto"))
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
        if args.command == "plot":
            from dtviz.cli.plot import cmd_plot

            return cmd_plot(args)
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
