#!/usr/bin/env python
"""Write the generated blocks of README.md and docs/ from their sources, so no measurement in prose is typed by hand.

    python scripts/docs_numbers.py           # rewrite every <!-- generated: NAME --> … <!-- /generated --> block
    python scripts/docs_numbers.py --check   # exit 1 (naming the blocks) when a file differs from what it would write

Blocks: ``builtin-claims`` (README.md: the built-in model's scorecard, from assets/builtin/card.json, which
scripts/model_card.py measures) and ``claim-rules`` (docs/claims.md: every claim's text and rule, from
dtviz.evaluation.claims), ``builtin-models`` (docs/setup.md: each shipped model from its own card.json) and the
measured tables of docs/reliability.md and docs/performance.md, and docs/sources.md's CLIP padding timing
(``t2i-clip``). tests/test_readme.py runs the check.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.S)


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def builtin_claims_block() -> str:
    path = os.path.join(ROOT, "assets", "builtin", "card.json")
    with open(path, encoding="utf-8") as fh:
        card = json.load(fh)
    rows = card.get("claims")
    if not rows:
        return "(not measured yet: run `python scripts/model_card.py`)\n"
    plan = card.get("claims_plan", {})
    lines = ["| claim | this model | verdict |", "|---|---|---|"]
    lines += [f"| **{r['id']}**: {cell(r['claim'])} | {cell(r['measured'])} | **{r['verdict']}** |" for r in rows]
    counts = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    lines += ["", "Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + f". Sampling rows: "
              f"{plan.get('samples', '?')} samples per run, seed {plan.get('seed', '?')}. The rules: "
              "[docs/claims.md](docs/claims.md)."]
    return "\n".join(lines) + "\n"


def builtin_models_block() -> str:
    """docs/setup.md: each shipped model (dtviz.sources.builtins.BUILTINS) with its own card.json's numbers."""
    from dtviz.builtin.card import verdict_counts
    from dtviz.sources.builtins import BUILTINS

    lines = ["| source | what it is | width × depth | classes | parameters | class accuracy | y+t cosine at t0 | "
             "nPR(c̄) at t0 | the paper's claims on it |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for b in BUILTINS.values():
        with open(os.path.join(b.path, "card.json"), encoding="utf-8") as fh:
            card = json.load(fh)
        with open(os.path.join(b.path, "config.json"), encoding="utf-8") as fh:
            model = json.load(fh)["model"]
        lines.append(f"| `{b.name}` | {cell(b.summary)} | {model['hidden_size']} × {model['depth']} | {card['num_classes']} | "
                     f"{card['parameters'] / 1e6:.1f} M | {100 * card['class_accuracy']:.1f} % | "
                     f"{card['t0']['cosine_mean']:.4f} | {100 * card['t0']['npr_mean_vector']:.2f} % | "
                     f"{cell(verdict_counts(b.path) or 'not measured')} ([card]({os.path.relpath(b.path, os.path.join(ROOT, 'docs'))}/README.md)) |")
    return "\n".join(lines) + "\n"


def claim_rules_block() -> str:
    from dtviz.evaluation.claims import CLAIM_IDS, CLAIM_TEXT

    lines = ["| id | claim | paper | rule | page |", "|---|---|---|---|---|"]
    for cid in CLAIM_IDS:
        t = CLAIM_TEXT[cid]
        lines.append(f"| `{cid}` | {cell(t['claim'])} | {cell(t['paper'])} | {cell(t['rule'])} | {t['page']} |")
    return "\n".join(lines) + "\n"


def measured(name: str, command: str) -> dict | str:
    """docs/NAME's measurements, or the block's text saying which command measures them."""
    path = os.path.join(ROOT, "docs", name)
    if not os.path.isfile(path):
        return f"(not measured yet: run `{command}`)\n"
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def hostile_block() -> str:
    data = measured("hostile-round2.json", "python bench/hostile_round2.py")
    if isinstance(data, str):
        return data
    lines = ["| file | size on disk | peak RSS over an honest file | answer | the sentence |", "|---|---:|---:|---:|---|"]
    for r in data["rows"]:
        size = f"{r['file_bytes'] / 1024:.1f} KB" if r["file_bytes"] < 2 ** 20 else f"{r['file_bytes'] / 2 ** 20:.1f} MB"
        lines.append(f"| {cell(r['case'])} | {size} | {r['peak_mb_over_honest']:+d} MB | {r['seconds']} s | "
                     f"{cell(r['message'])} |")
    lines += ["", f"Measured by `python bench/hostile_round2.py` (`dtviz stats FILE --json`, or the command named, in a fresh "
              f"process; the honest file's peak: {data['honest_peak_mb']} MB); `tests/test_hostile_files.py` and "
              "`tests/test_hostile_round3.py` hold every case under +300 MB."]
    return "\n".join(lines) + "\n"


def safe_to_share_block() -> str:
    data = measured("safe-to-share.json", "python bench/safe_to_share.py")
    if isinstance(data, str):
        return data
    lines = ["| file | on disk (apparent) | answer | peak RSS growth | kept |", "|---|---:|---|---:|---:|"]
    for r in data["files"]:
        lines.append(f"| {cell(r['case'])} | {r['file_mb']} MB | {'refused (one sentence)' if r['refused'] else 'loaded'} | "
                     f"+{r['peak_mb']} MB | +{r['kept_mb']} MB |")
    s = data["spellings"]
    lines += ["", f"Five spellings of one 6 000-row `.npy` (absolute, `/./`, `//`, relative, a symlink) through the dashboard's "
              f"caches: {s['copies']} cached {'copy' if s['copies'] == 1 else 'copies'} (its cosine matrix {s['cosine_mb']} MB), "
              f"+{s['kept_mb']} MB kept, +{s['peak_mb']} MB peak. The neighbours page of a 200 000-row matrix renders in "
              f"{data['neighbours_200k_s']:g} s (AppTest). Measured {data['date']} by `python bench/safe_to_share.py` (load "
              f"average {data['load']:g} on the machine while it ran)."]
    return "\n".join(lines) + "\n"


def bench_block() -> str:
    data = measured("bench.json", "python bench/run.py --json docs/bench.json")
    if isinstance(data, str):
        return data

    def shown(value, unit):
        if value is None:
            return "–"
        return f"{value:.1f} {unit}" if unit != "s" else (f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s")

    lines = [f"Measured {data['date']} on {cell(data['machine'])} by `python bench/run.py --json docs/bench.json`:", "",
             "| benchmark | dtviz | baseline | ratio |", "|---|---:|---:|---:|"]
    for r in data["rows"]:
        ratio = f"{r['baseline'] / r['ours']:.2f}×" if r["baseline"] and r["ours"] else "–"
        lines.append(f"| {cell(r['name'])} | {shown(r['ours'], r['unit'])} | {shown(r['baseline'], r['unit'])} | {ratio} |")
    return "\n".join(lines) + "\n"


def setup_times_block() -> str:
    data = measured("setup-times.json", "python bench/setup_time.py")
    if isinstance(data, str):
        return data
    lines = [f"Measured {data['date']} by `python bench/setup_time.py` on this project's machine ({cell(data['machine'])}, "
             f"no GPU), each in a fresh clone with no venv or conda env active"
             + (", pip's download cache as the machine had it" if data.get("pip_cache") else ", pip's cache empty") + ":",
             "", "| `make setup PYTHON=…` | Python | installed into | torch | `import dtviz, torch, streamlit` | wall time "
             "| load average at start |", "|---|---|---|---|---|---:|---:|"]
    for r in data["rows"]:
        lines.append(f"| `{cell(r['python'].replace(os.path.expanduser('~'), '~', 1))}` | {r['version']} | {'the clone’s `.venv`' if r['venv'] else 'the interpreter'} | "
                     f"{r['torch'] or '–'} | {'works' if r['imports_ok'] else 'fails'} | {r['seconds'] / 60:.1f} min | "
                     f"{r['load_at_start']:g} |")
    return "\n".join(lines) + "\n"


def t2i_clip_block() -> str:
    data = measured("t2i-clip.json", "python bench/t2i_clip.py --json docs/t2i-clip.json")
    if isinstance(data, str):
        return data
    full, batch = data["rows"]
    return (f"`python bench/t2i_clip.py` — {data['prompts']} ImageNet prompts through a random CLIP-L-shaped encoder on "
            f"one CPU thread (load average {data['load']:g}, {data['date']}): {full['seconds']:g} s at {full['tokens']} "
            f"tokens vs {batch['seconds']:g} s at {batch['tokens']} (largest difference {data['max_difference']:.1e}).\n")


BLOCKS = {"builtin-claims": builtin_claims_block, "claim-rules": claim_rules_block, "hostile-round2": hostile_block,
          "bench": bench_block, "builtin-models": builtin_models_block, "safe-to-share": safe_to_share_block,
          "setup-times": setup_times_block, "t2i-clip": t2i_clip_block}
FILES = ("README.md", os.path.join("docs", "claims.md"), os.path.join("docs", "reliability.md"),
         os.path.join("docs", "performance.md"), os.path.join("docs", "setup.md"), os.path.join("docs", "sources.md"))


def render(text: str) -> str:
    def fill(m):
        make = BLOCKS.get(m.group("name"))
        if make is None:
            raise SystemExit(f"unknown generated block {m.group('name')!r}")
        return m.group(1) + make() + m.group(4)
    return BLOCK.sub(fill, text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    stale = []
    for rel in FILES:
        path = os.path.join(ROOT, rel)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        new = render(text)
        if new != text:
            stale.append(rel)
            if not args.check:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(new)
    if args.check and stale:
        print("stale generated blocks in: " + ", ".join(stale) + " (run python scripts/docs_numbers.py)")
        return 1
    if not args.check:
        print("rewrote " + (", ".join(stale) if stale else "nothing (up to date)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
