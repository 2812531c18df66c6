"""``dtviz blocks``: per-block modulation change under a pruning of c (dtviz.analysis.blocks), without sampling."""
from __future__ import annotations


from dtviz.errors import DtvizInputError


def add_blocks_parser(sub) -> None:
    from dtviz.cli.args import add_source_args

    p = sub.add_parser("blocks", help="per-block modulation: relative change ‖m(c) − m(P(c))‖/‖m(c)‖ per block and chunk")
    add_source_args(p)
    p.add_argument("--t", type=float, default=None, help="timestep in the family's convention (default t0)")
    p.add_argument("--mode", default="tail", choices=("tail", "head"))
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--tau", type=float, default=None, help="threshold on |c_i| (default 0.01)")
    sel.add_argument("--k", type=int, default=None, help="instead of --tau: the k smallest (tail) / largest (head) dims")
    p.add_argument("--mask", default="global", choices=("global", "per-sample"),
                   help="global: one mask from c̄ at t0; per-sample: each row's own |c|")
    p.add_argument("--json", action="store_true",
                   help='print {"blocks": [{"block": i, "relative_change": {chunk: value, ..., "all": value}}], "final": {...}}')


def cmd_blocks(args) -> int:
    from dtviz.analysis.blocks import modulation_change
    from dtviz.cli.args import json_text, source_options
    from dtviz.sources.loading import load
    from dtviz.pruning.spec import PruneSpec

    source = load(args.source, family=args.family, device=args.device, **source_options(args), labels=args.labels,
                  prompts=args.prompts)
    tau = 0.01 if args.tau is None and args.k is None else args.tau
    spec = PruneSpec(mode=args.mode, tau=tau, k=args.k, mask=args.mask)
    result = modulation_change(source, spec, t=args.t)[0].to_json()
    if args.json:
        print(json_text(result))  # strict JSON: a zero modulation's NaN change is null
        return 0
    if not result["blocks"] and not result["final"]:
        raise DtvizInputError("the model has no modulation layers to read.")
    chunks = list(dict.fromkeys(k for b in result["blocks"] for k in b["relative_change"]))
    print(f"relative change of each block's modulation, {spec.label()} (mean over {source.num_classes} rows)")
    print("block  " + "  ".join(f"{c:>10}" for c in chunks))
    fmt = lambda v: f"{v:10.4g}" if v is not None else f"{'–':>10}"  # noqa: E731
    for b in result["blocks"]:
        print(f"{b['block']:>5}  " + "  ".join(fmt(b["relative_change"].get(c)) for c in chunks))
    print("final  " + "  ".join(f"{k}={fmt(v).strip()}" for k, v in result["final"].items()))
    return 0
