"""``dtviz sweep``: its arguments and the command, which runs dtviz.evaluation.sweep.run_sweep (under torchrun on every rank)
and writes the samples, table.csv and table.md (the paper's Table 2 layout)."""
from __future__ import annotations

import os
import sys

import numpy as np

from dtviz.cli.args import (add_checkpoint_reading_args, add_class_selection, add_prompts_arg, check_output_dir,
                            job_size_line, note_assumptions, select_classes, source_options, write_samples)
from dtviz.errors import DtvizInputError
from dtviz.sources.builtins import builtin_names
from dtviz.pruning.spec import MASKS, MODES, format_schedule, parse_null_rows, parse_schedule
from dtviz.evaluation.sweep_metrics import add_metrics_args, fill_metrics, plan_metrics


def add_sweep_parser(sub) -> None:
    p = sub.add_parser("sweep", help="pruning sweep: samples and Table-2 metrics for each setting")
    p.add_argument("source", nargs="?", default="builtin", metavar="SOURCE",
                   help=f"{builtin_names()}, a checkpoint or a model folder that can sample")
    p.add_argument("--family", default="auto", help="auto, dit, sit, repa, mg")
    p.add_argument("--device", default=None, help="auto (cuda → mps → cpu), cpu, cuda, cuda:N, mps; under torchrun one GPU per process")
    add_prompts_arg(p)
    add_checkpoint_reading_args(p)
    add_class_selection(p)
    p.add_argument("--mode", default="tail", choices=MODES, help="tail: zero |c_i| < τ (or the k smallest); head: zero |c_i| >= τ (or the k largest)")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--tau", default=None, help="comma-separated thresholds, e.g. 0,0.01,0.02 (default 0.01)")
    sel.add_argument("--k", default=None, help="comma-separated numbers of dims, e.g. 2,4,8, instead of --tau")
    p.add_argument("--schedule", default="every", help="comma-separated: every, first, last:K (default every)")
    p.add_argument("--mask", default="global", choices=MASKS, help="global: from |c̄| at t0; per-sample: each row's |c| at each step")
    p.add_argument("--null-rows", default="pruned", metavar="pruned,kept",
                   help="the CFG null rows: pruned (default: as pruning c inside the model's forward prunes both halves of "
                        "the CFG batch; the paper does not say), kept (only the conditional rows are pruned), or both: "
                        "pruned,kept")
    p.add_argument("--pruned-guidance", type=float, default=None, metavar="W",
                   help="pruned-c guidance: keep c whole and guide each setting with its pruned c, D = D_u + s·(D_c − D_u) "
                        "+ W·(D_c − D_P(c)); one more network forward per step (column pruned_guidance)")
    add_metrics_args(p)
    p.add_argument("--batch-size", type=int, default=64, help="samples per network batch (default 64)")
    p.add_argument("--out", required=True, help="output folder (created; must not be the checkpoint's folder)")
    p.add_argument("--dry-run", action="store_true", help="print the size of the job and a time estimate, sample nothing")


def cmd_sweep(args) -> int:
    from dtviz.evaluation.sweep import (distributed, markdown_table, parse_numbers, run_sweep, sweep_specs, table_rows,
                                        write_csv)
    from dtviz.sampling.generate import Generator, SampleSettings
    from dtviz.sources.loading import load
    from dtviz.evaluation.quality import classifier_for, template_matcher_for

    if args.per_class < 1:
        raise DtvizInputError(f"--per-class must be at least 1; got {args.per_class}.")
    if args.batch_size < 1:
        raise DtvizInputError(f"--batch-size must be at least 1; got {args.batch_size}.")
    taus = parse_numbers(args.tau, "--tau") if args.tau is not None else None
    ks = parse_numbers(args.k, "--k", int) if args.k is not None else None
    schedules = [format_schedule(*parse_schedule(s)) for s in parse_numbers(args.schedule, "--schedule", str)]
    specs = sweep_specs(args.mode, taus, ks, schedules, args.mask, parse_null_rows(args.null_rows))

    with distributed(args.device) as (world, device):
        plan = plan_metrics(args, device)
        source = load(args.source, family=args.family, device=device, prompts=args.prompts, **source_options(args))
        out = check_output_dir(args.out, source.info.extra.get("path"))
        ids = select_classes(source.num_classes, args.classes, args.random, args.seed)
        labels = np.repeat(ids, args.per_class)
        generator = Generator(source, vae=args.vae)
        settings = SampleSettings(steps=args.steps, cfg_scale=args.cfg, seed=args.seed, sampler=args.sampler, size=args.size,
                                  pruned_guidance=args.pruned_guidance)
        if world.is_main:
            print(job_size_line(generator, len(ids), args.per_class, len(specs) + 1, settings), file=sys.stderr)
            note_assumptions(source)
        if args.dry_run:
            return 0
        results = run_sweep(generator, specs, labels, settings, args.batch_size, world, classifier_for(source),
                            matcher=template_matcher_for(source), featurize=plan.featurizer(source, world.rank))
        if not world.is_main:
            return 0
        metric_notes = fill_metrics(results, plan, args.reference)
        os.makedirs(out, exist_ok=True)
        for r in results:
            write_samples(os.path.join(out, r.name), r.images / 255.0, labels, source.class_names)
        write_csv(os.path.join(out, "table.csv"), table_rows(results))
        steps = generator.sampler(args.steps, args.sampler).steps
        sampler = args.sampler or generator.defaults["name"]
        cfg = generator.defaults["cfg_scale"] if args.cfg is None else args.cfg
        note = (f"{source.info.name}: {len(ids)} classes × {args.per_class} samples, {sampler} {steps} steps, CFG {cfg:g}, "
                f"seed {args.seed}, mask {args.mask}, null (CFG) rows {args.null_rows.replace(',', ' and ')}"
                + (f"; pruned-c guidance w = {args.pruned_guidance:g}: c kept whole, each setting's P(c) guides "
                   f"(one more forward per step)." if args.pruned_guidance is not None else ".")
                + "".join(" " + n for n in metric_notes))
        with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as fh:
            fh.write(markdown_table(results, source.dim, source.info.name, note))
        print(f"wrote {len(results)} settings × {len(labels)} samples to {out} (table.csv, table.md)")
    return 0
