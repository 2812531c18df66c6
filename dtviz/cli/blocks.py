"""``dtviz blocks``: per-block modulation change under a pruning of c (dtviz.analysis.blocks), without sampling."""
from __future__ import annotations


from dtviz.errors import DtvizInputError


def add_blocks_parser(sub) -> None:
    from dtviz.cli.args import add_source_args

    p = sub.add_parser("blocks", help="per-block modulation: relative change ‖m(c) − m(P(c))‖/‖m(c)‖ per block and chunk")
    add_source_args(p)
    from dtviz.cli.args import number, tau_value

    p.add_argument("--t", type=number(float), default=None, help="timestep in the family's convention (default t0)")
    p.add_argument("--mode", default="tail", choices=("tail", "head"))
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--tau", type=tau_value, default=None,
                     help="threshold on |c_i| (default auto: the source's τ, below which 448/1152 of c̄'s dims lie; 0.01 the paper's)")
    sel.add_argument("--k", type=number(int, 0), default=None, help="instead of --tau: the k smallest (tail) / largest (head) dims")
    p.add_argument("--mask", default="global", choices=("global", "per-sample"),
                   help="global: one mask from c̄ at t0; per-sample: each row's own |c|")
    p.add_argument("--null-rows", default="pruned", choices=("pruned", "kept"),
                   help="recorded with the spec; the modulation of the class rows is the same either way")
    p.add_argument("--over-t", type=number(int, 0), default=16, metavar="N",
                   help="also the mean and max over N t of the source's sampling schedule (default 16; 0: t0 only)")
    p.add_argument("--json", action="store_true",
                   help='print {"blocks": [{"block": i, "relative_change": {chunk: v, "all": v}, "change_vs_spread": s}], '
                        '"final": {...}, "final_vs_spread": s, "tau": τ, "over_t": {"t", "mean", "max"}, "class_read": '
                        '{...}}')


def cmd_blocks(args) -> int:
    import numpy as np

    from dtviz.analysis.blocks import change_over_t, class_read, modulation_change, modulations
    from dtviz.cli.args import json_text, note_assumptions, source_options
    from dtviz.evaluation.claims import class_read_sentence, source_tau
    from dtviz.pruning.spec import PruneSpec
    from dtviz.sources.base import row_noun
    from dtviz.sources.loading import load

    source = load(args.source, family=args.family, device=args.device, **source_options(args), labels=args.labels,
                  prompts=args.prompts)
    note_assumptions(source)
    tau = args.tau
    if args.k is None and tau in (None, "auto"):
        tau = source_tau(source)
    spec = PruneSpec(mode=args.mode, tau=tau if args.k is None else None, k=args.k, mask=args.mask,
                     prune_null=args.null_rows == "pruned")
    mods = modulations(source)
    result = modulation_change(source, spec, t=args.t, mods=mods)[0].to_json()
    result["tau"] = spec.tau
    over = None
    if args.over_t and source.family.convention is not None:
        ts = schedule_sample(source, args.over_t)
        over = change_over_t(source, spec, ts, mods=mods)
        result["over_t"] = {"t": over["t"], "blocks": over["blocks"] + ["final"],
                            "mean": {k: v.tolist() for k, v in over["mean"].items()},
                            "max": {k: v.tolist() for k, v in over["max"].items()}}
    if source.num_classes >= 2:
        result["class_read"] = class_read(source, t=args.t, mods=mods).to_json()
    if args.json:
        print(json_text(result))  # strict JSON: a zero modulation's NaN change is null
        return 0
    if not result["blocks"] and not result["final"]:
        raise DtvizInputError("the model has no modulation layers to read.")
    chunks = list(dict.fromkeys(k for b in result["blocks"] for k in b["relative_change"]))
    at = "t0" if args.t is None else f"t = {args.t:g}"
    print(f"{spec.label()}: the change of each block's modulation at {at}, mean over {source.num_classes} rows")
    print("  ‖Δm‖/‖m‖ per chunk, and ‖Δm‖ against the between-row spread of m (vs spread: what orders the damage)")
    print("block  " + "  ".join(f"{c:>10}" for c in chunks) + f"  {'vs spread':>10}")
    fmt = lambda v: f"{v:10.4g}" if v is not None else f"{'–':>10}"  # noqa: E731
    for b in result["blocks"]:
        print(f"{b['block']:>5}  " + "  ".join(fmt(b["relative_change"].get(c)) for c in chunks)
              + f"  {fmt(b['change_vs_spread'])}")
    print("final  " + "  ".join(f"{k}={fmt(v).strip()}" for k, v in result["final"].items())
          + f"  vs spread={fmt(result['final_vs_spread']).strip()}")
    if "class_read" in result:
        noun = row_noun(source)[0]
        print(f"where adaLN reads the {noun}: " + class_read_sentence(result["class_read"], noun))
    if over is not None:
        rel, spr = over["relative_change"], over["change_vs_spread"]
        print(f"over {len(over['t'])} t of the sampling schedule (all blocks): ‖Δm‖/‖m‖ mean {np.nanmean(rel):.4g}, max "
              f"{np.nanmax(rel):.4g}; vs spread mean {np.nanmean(spr):.4g}, max {np.nanmax(spr):.4g}")
    return 0


def schedule_sample(source, n: int) -> list[float]:
    """Up to ``n`` t of the source's own sampling schedule, both ends kept (the convention's grid without one)."""
    import numpy as np

    try:
        from dtviz.sampling.generate import schedule_timesteps

        ts = schedule_timesteps(source)
    except (DtvizInputError, AttributeError, KeyError):
        ts = source.family.convention.grid(n)
    if len(ts) > n:
        ts = [ts[int(round(i))] for i in np.linspace(0, len(ts) - 1, n)]
    return [float(t) for t in ts]
