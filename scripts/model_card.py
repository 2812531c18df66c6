#!/usr/bin/env python
"""Measure the built-in model and write assets/builtin/README.md (+ samples.png, card.json)."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dtviz.builtin.card import class_read, head_modulation, head_silu, measure, read_trials, render, save_grid  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="assets/builtin")
    parser.add_argument("--per-class", type=int, default=2)
    parser.add_argument("--claims-samples", type=int, default=256, help="samples per sampling run of the scorecard")
    parser.add_argument("--render-only", action="store_true", help="rewrite README.md from the card.json already measured "
                        "(and trials.json as it is now, which scripts/trial_curve.py writes)")
    parser.add_argument("--statistics-only", action="store_true", help="as --render-only, with what needs no sampling "
                        "measured afresh (seconds): the scorecard's statistics rows, the head's modulation change and signs, where adaLN reads the class; "
                        "the sampling rows are kept as card.json has them")
    args = parser.parse_args()
    with open(os.path.join(args.model, "config.json")) as fh:
        cfg = json.load(fh)
    if args.render_only or args.statistics_only:
        with open(os.path.join(args.model, "card.json")) as fh:
            m = json.load(fh)
        if args.statistics_only:
            m["claims"] = fresh_statistics_rows(args.model, m.get("claims") or [])
            m["head_modulation"] = head_modulation(args.model, m["claims"])
            m["head_silu"] = head_silu(args.model, m["claims_plan"]["head_k"])
            m["class_read"] = class_read(args.model)
    else:
        m = measure(args.model, per_class=args.per_class, claims_samples=args.claims_samples)
        save_grid(args.model, os.path.join(args.model, "samples.png"))
    write_card(args.model, cfg, m)
    print(f"rewrote {args.model}/README.md from card.json" if args.render_only or args.statistics_only else
          f"class accuracy {m['class_accuracy']:.3f}; sample16 {m['sample16_median_s']:.2f}s; wrote {args.model}/README.md")
    return 0


def fresh_statistics_rows(model: str, rows: list[dict]) -> list[dict]:
    """``rows`` with every statistics row of the scorecard measured again on the weights in ``model``."""
    import dtviz
    from dtviz.evaluation.claims import statistics_claims

    fresh = {r.id: r.to_dict() for r in statistics_claims(dtviz.load(model))}
    return [fresh.get(r["id"], r) for r in rows]


def write_card(model: str, cfg: dict, m: dict) -> None:
    """card.json (the measurements) and README.md (rendered from them and from trials.json, which
    scripts/trial_curve.py writes and the card reads as it is) side by side."""
    with open(os.path.join(model, "card.json"), "w") as fh:
        json.dump(m, fh, indent=1)
    with open(os.path.join(model, "README.md"), "w") as fh:
        fh.write(render(cfg, m, read_trials(model)))

if __name__ == "__main__":
    raise SystemExit(main())
