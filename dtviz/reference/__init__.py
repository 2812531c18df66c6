"""The paper's reported values as data (``paper_values``, with its citation), for reference rows and markers.

    paper_rows(table=1)                      Table 1: one dict per model (d, PR, nPR, cosine; y+t at t0)
    paper_rows(table=4, part="y")            Tables 4 / 5: cosine and nPR of y+t or of y alone
    paper_rows(table=2)                      Table 2: REPA's pruning rows (τ, schedule, removed dims, FID, IS, CLIP)
    headline("cosine", model="DiT-XL/2")     one number with its label: "paper's DiT-XL/2: 0.9001"
    reference_label("npr", family="sit")     the label beside a headline metric ("paper's SiT-XL/2: 2.28%")
    compare_rows()                           Table 1 in the columns of ``dtviz table`` (source "paper: DiT-XL/2")
    family_reference("sit")                  the paper's model for a dtviz family ("SiT-XL/2"), else DiT-XL/2

Definitions as the paper's (Eq. 1, 2): PR(v) = (Σ|v_i|)² / Σ v_i², nPR = PR / d; nPR is returned as a
fraction (10.47% → 0.1047). Every value also keeps the string as printed (``printed``).
"""
from __future__ import annotations

import re

from dtviz.errors import DtvizInputError
from dtviz.reference.paper_values import CITATION, TABLE1, TABLE2, TABLE4, TABLE5, XL_NAMES

TABLES = {1: TABLE1, 2: TABLE2, 4: TABLE4, 5: TABLE5}
METRICS = ("cosine", "npr", "pr")
# dtviz family key -> the paper's Table 1 column for it (matrices, diffusers pipelines: DiT, the first row).
FAMILY_COLUMNS = {"dit": "DiT", "diffusers": "DiT", "sit": "SiT", "mdt": "MDT", "lightningdit": "LightningDiT",
                  "mg": "MG", "repa": "REPA"}
ANCHOR = "DiT-XL/2"  # the paper's least concentrated ImageNet model, and issue 11's goal row


def _number(printed: str) -> float:
    """"10.47%" -> 0.1047; "0.9001" -> 0.9001."""
    text = printed.strip()
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def _name(column: str) -> str:
    return XL_NAMES.get(column, column)


def _table(table) -> int:
    try:
        number = int(table)
    except (TypeError, ValueError):
        number = None
    if number not in TABLES:
        raise DtvizInputError(f"expected one of the paper's tables {', '.join(map(str, TABLES))}, but got {table!r}.")
    return number


# ------------------------------------------------------------------------------------------ rows

def paper_rows(table=1, part: str | None = None) -> list[dict]:
    """The rows of one of the paper's tables as dicts (see the module docstring); ``part`` ("y+t" / "y")
    filters Tables 4 and 5. Every row has ``table``, ``model`` (the printed column) and ``printed``."""
    number = _table(table)
    if number == 1:
        return [_table1_row(i) for i in range(len(TABLE1["columns"]))]
    if number == 2:
        return [_table2_row(row) for row in TABLE2["rows"]]
    t = TABLES[number]
    rows = []
    for the_part in ("y+t", "y"):
        if part is not None and part != the_part:
            continue
        for i, column in enumerate(t["columns"]):
            cos, npr = t["rows"][("cosine", the_part)][i], t["rows"][("npr", the_part)][i]
            rows.append({"table": number, "model": column, "name": _name(column), "part": the_part,
                         "conditioning": t["conditioning"][i], "cosine": _number(cos), "npr": float(npr) / 100,
                         "printed": {"cosine": cos, "npr": npr}})
    if part is not None and not rows:
        raise DtvizInputError(f"expected part 'y+t' or 'y' for Table {number}, but got {part!r}.")
    return rows


def _table1_row(i: int) -> dict:
    column = TABLE1["columns"][i]
    printed = {key: values[i] for key, values in TABLE1["rows"].items()}
    return {"table": 1, "model": column, "name": _name(column), "part": "y+t", "dim": int(printed["d"]),
            "pr": _number(printed["pr"]), "npr": _number(printed["npr"]), "cosine": _number(printed["cosine"]),
            "printed": printed}


_THRESHOLD = re.compile(r"τ = ([0-9.]+) \((t_i|t_0|t_\{n-k,n\})\)")
_SCHEDULES = {"t_i": "every", "t_0": "first", "t_{n-k,n}": "last"}  # the paper does not print its k


def _table2_row(row: tuple) -> dict:
    prune, threshold, removed, fid, is_, clip = row
    count, dim = (int(x) for x in removed.split(" ")[0].split("/"))
    match = _THRESHOLD.fullmatch(threshold)
    return {"table": 2, "model": TABLE2["model"], "name": _name(TABLE2["model"]), "prune": prune.lower(),
            "baseline": match is None, "tau": float(match.group(1)) if match else None,
            "schedule": _SCHEDULES[match.group(2)] if match else None, "removed_dims": count, "dim": dim,
            "removed_share": count / dim, "fid": float(fid), "is": float(is_), "clip": float(clip),
            "printed": dict(zip(("prune", "threshold", "removed", "fid", "is", "clip"), row))}


# ------------------------------------------------------------------------------------- headlines

def headline(metric: str, model: str = ANCHOR, part: str = "y+t") -> dict:
    """One reported number: {"value", "printed", "model", "table", "label": "paper's DiT-XL/2: 0.9001"}.
    ``model``: a column as printed ("DiT", "SD3.0 (8B)") or its XL name ("DiT-XL/2"); y+t from Table 1 (PR, nPR,
    cosine), y from Tables 4 / 5 (cosine, nPR)."""
    if metric not in METRICS:
        raise DtvizInputError(f"expected a metric among {', '.join(METRICS)}, but got {metric!r}.")
    tables = (1, 4, 5) if part == "y+t" else (4, 5)
    for number in tables:
        for row in paper_rows(number, part=None if number == 1 else part):
            if model in (row["model"], row["name"]) and metric in row:
                printed = row["printed"][metric]
                shown = printed if metric != "npr" or printed.endswith("%") else f"{printed}%"
                return {"value": row[metric], "printed": printed, "model": row["name"], "table": number,
                        "part": part, "label": f"paper's {row['name']}: {shown}"}
    raise DtvizInputError(f"the paper reports no {metric} of {part} for {model!r}; its models are "
                          f"{', '.join(r['name'] for r in paper_rows(1))} and those of Tables 4 and 5.")


def reference_label(metric: str, family: str | None = None, part: str = "y+t", dim: int | None = None) -> str | None:
    """The paper's number to show beside a headline metric: "paper's DiT-XL/2: 0.9001". ``family``: the
    dtviz family of the user's model (its paper row, e.g. SiT-XL/2, SD3.0 (2B) by ``dim``), None for DiT-XL/2;
    part "t" has none."""
    if part not in ("y+t", "y"):
        return None
    model = ANCHOR if family is None else family_reference(family, dim)
    try:
        return headline(metric, model=model, part=part)["label"]
    except DtvizInputError:
        return None


def reported_range(metric: str, table=1, part: str | None = None, conditioning: str | None = None) -> str:
    """The lowest and highest value a table prints for ``metric`` over its models, as printed: "0.9001–0.9999";
    ``part`` / ``conditioning`` keep Tables 4 and 5's rows of that part (y+t, y) / mechanism (AdaLN, …) only."""
    rows = [r for r in paper_rows(table, part=part) if metric in r
            and (conditioning is None or r.get("conditioning") == conditioning)]
    low, high = min(rows, key=lambda r: r[metric]), max(rows, key=lambda r: r[metric])
    return f"{low['printed'][metric]}–{high['printed'][metric]}"


SD3_8B_MIN_DIM = 2000  # SD3's 2B (Medium) transformer is 1536 wide (24 heads × 64), the 8B one 2432 (38 × 64)


def family_reference(family: str | None, dim: int | None = None) -> str:
    """The paper's model for a dtviz family key (its XL name; for SD3 the Table 5 row of its size, told by the
    width ``dim`` of c); DiT-XL/2 for every other source."""
    if family == "sd3":
        return "SD3.0 (8B)" if dim is not None and dim >= SD3_8B_MIN_DIM else "SD3.0 (2B)"
    return _name(FAMILY_COLUMNS.get(family or "", "DiT"))


def compare_rows(models=None) -> list[dict]:
    """Table 1, then Table 5's y+t rows (X-MDPT, SD3.0, MDSGen, AudioLDM: cosine and nPR only), as rows of
    ``dtviz table`` (source "paper: DiT-XL/2", family "paper"); only the reported columns are filled (the paper
    gives one PR/nPR reading, shown as the mean-vector one)."""
    rows = []
    for r in paper_rows(1) + paper_rows(5, part="y+t"):
        if models is not None and r["model"] not in models and r["name"] not in models:
            continue
        rows.append({"source": f"paper: {r['name']}", "family": "paper", "dim": r.get("dim"), "num_classes": None,
                     "pr_mean_vector": r.get("pr"), "npr_mean_vector": r["npr"], "pr_per_class_mean": None,
                     "npr_per_class_mean": None, "cosine_mean": r["cosine"], "s_tail_mean_vector": None})
    return rows


def pruning_markers() -> list[dict]:
    """Table 2's tail rows as (τ, share of dims below τ) points for the dims-below-τ view: {"tau", "share",
    "label"} (one point per τ; the schedules share their removed count)."""
    seen = {}
    for r in paper_rows(2):
        if r["prune"] == "tail" and r["tau"] is not None and r["tau"] not in seen:
            seen[r["tau"]] = {"tau": r["tau"], "share": r["removed_share"], "count": r["removed_dims"], "dim": r["dim"],
                              "label": f"paper's {r['name']}: {r['printed']['removed']} below τ = {r['tau']:g}"}
    return list(seen.values())


__all__ = ["CITATION", "TABLES", "paper_rows", "headline", "reference_label", "reported_range", "family_reference",
           "compare_rows", "pruning_markers"]
