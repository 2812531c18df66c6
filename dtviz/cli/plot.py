"""``dtviz plot VIEW SOURCE --out FILE.{png,svg,pdf}``: any figure the dashboard draws, without a browser window.

The figures come from dtviz.plots.gallery (the same builders as the pages, at the pages' default controls) and take
the settings flags of ``dtviz stats`` (--t, --step, --part, --tau). Several figures (e.g. the variance view's three)
go to FILE-<name>.ext.
"""
from __future__ import annotations

import sys

VIEW_HELP = {
    "heatmap": "cosine similarity of every pair of rows (Fig. 3)",
    "histogram": "histogram of |c_i| over rows and dims, log x (Fig. 5)",
    "profile": "c̄ and the first row per dimension, with τ (Fig. 6)",
    "variance": "variance per dim, sorted spectrum, cumulative share (Fig. 9): three files",
    "dims-below": "dims of c̄ below τ, counts and shares, with the paper's REPA points (Fig. 11): two files",
    "projection": "head vs tail projection, PCA by default, each panel's class-structure score (Fig. 13)",
    "blocks": "each dim's contribution to each adaLN block, and the modulation change against τ: two files",
    "over-t": "cosine and nPR of c over t (App. A.2): two files",
    "training": "cosine, nPR and where c's size sits over a run's checkpoints (--run DIR; the built-in models' own "
                "snapshots by default; Fig. 12): three files",
    "samples": "a captioned grid of samples (--classes, --per-class, --seed; --prune-tau to prune the tail)",
    "claims": "the paper-claims scorecard as a table (--sampling adds the sampling rows: minutes)",
}


def add_plot_parser(sub) -> None:
    from dtviz.cli.args import add_analysis_args, add_source_args, number

    VIEWS = tuple(VIEW_HELP)  # dtviz.plots.gallery.VIEWS, without importing plotly for --help (a test checks both)

    p = sub.add_parser("plot", help="write any figure of the dashboard as PNG, SVG or PDF",
                       description="Write the figures of one view. Views: " +
                                   "; ".join(f"{v}: {VIEW_HELP[v]}" for v in VIEWS) + ".")
    p.add_argument("view", choices=VIEWS, metavar="VIEW", help="one of " + ", ".join(VIEWS))
    add_source_args(p)
    add_analysis_args(p)
    p.add_argument("--out", required=True, metavar="FILE.png|svg|pdf", help="where to write (several figures: FILE-<name>.ext)")
    p.add_argument("--method", default="pca", choices=("pca", "tsne", "umap"), help="projection: the 2-D method (default pca)")
    p.add_argument("--classes", default=None, help="samples: comma-separated class ids (default the first 16)")
    p.add_argument("--per-class", type=number(int, 1), default=1, metavar="K", help="samples: per class")
    p.add_argument("--seed", type=number(int, 0), default=0)
    p.add_argument("--steps", type=number(int, 1), default=None)
    p.add_argument("--prune-tau", type=number(float, 0), default=None, metavar="TAU",
                   help="samples: prune the tail below TAU (global mask, every step, null rows pruned)")
    p.add_argument("--sampling", action="store_true", help="claims: run the sampling rows too")
    p.add_argument("--run", default=None, metavar="DIR", help="training: a folder of the run's checkpoints "
                                                              "(default: the snapshots/ beside the source, if any)")
    p.add_argument("--width", type=number(int, 200), default=1200, help="figure width in px (default 1200)")
    p.add_argument("--height", type=number(int, 200), default=750, help="figure height in px (default 750)")


def cmd_plot(args) -> int:
    from dtviz.cli.args import analysis_t, note_assumptions, source_options
    from dtviz.errors import DtvizInputError
    from dtviz.plots.gallery import ViewData, output_paths, view_figures, write_figure
    from dtviz.sources.loading import load

    source = load(args.source, family=args.family, device=args.device, **source_options(args), labels=args.labels,
                  prompts=args.prompts)
    note_assumptions(source)
    data = ViewData.of(source, t=analysis_t(source, args), part=args.part, tau=args.tau)
    options = {"method": args.method, "seed": args.seed, "per_class": args.per_class, "steps": args.steps,
               "sampling": args.sampling, "run": args.run}
    if args.classes:
        from dtviz.cli.args import select_classes

        options["classes"] = select_classes(source.num_classes, args.classes, None, args.seed)
    if args.prune_tau is not None:
        from dtviz.pruning.spec import PruneSpec

        options["prune"] = PruneSpec(mode="tail", tau=args.prune_tau)
    items = view_figures(args.view, data, **options)
    if not items:
        raise DtvizInputError(f"the {args.view} view has no figure for {source.info.name}.")
    for item, path in zip(items, output_paths(args.out, items)):
        write_figure(item, path, width=args.width, height=args.height)
        print(f"wrote {path} ({item['title']})", file=sys.stderr)
    return 0
