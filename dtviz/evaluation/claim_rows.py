"""The scorecard's rows: the ``Claim`` record, what each claim says, the paper's value, the rule and its thresholds
(each with the paper's number it comes from). dtviz.evaluation.claims measures the statistics rows and
dtviz.evaluation.claim_sampling the sampling ones; both build their rows here, so neither imports the other's rows.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from dtviz.analysis.stats import ConditionStats
from dtviz.analysis.structure import HEAD_DIMS
from dtviz.pruning.defaults import default_tau

HOLDS, PARTLY, FAILS, NOT_MEASURABLE = "holds", "partly", "does not hold", "not measurable here"
VERDICTS = (HOLDS, PARTLY, FAILS, NOT_MEASURABLE)
CLAIM_IDS = ("alignment_yt", "alignment_y", "alignment_over_t", "sparsity_npr", "sparsity_magnitudes", "variance_head",
             "head_is_class", "prune_tail", "prune_head", "late_vs_t0", "training_sparsification")
SAMPLING_IDS = ("prune_tail", "prune_head", "late_vs_t0")

# ------------------------------------------------------------------------------------ thresholds
# Each with the paper's number it comes from; the rule text of every row quotes them.
ALIGNED = 0.90           # Table 1's least aligned ImageNet model, DiT-XL/2: 0.9001
HALF_ALIGNED = 0.50      # below this, classes share less than half their direction: not "aligned" in any reading
LABEL_ALIGNED = 0.50     # Table 4's least aligned label part of an AdaLN model, REPA: 0.5194
LABEL_HALF = 0.25
OVER_T_MIN = 0.85        # App. A.2: "> 0.99 across nearly all timesteps"; 0.85 allows the DiT-XL/2-like t0 of 0.90
SPARSE_NPR = 0.1047      # Table 1's least sparse ImageNet model, DiT-XL/2: 10.47 %
GAUSSIAN_NPR = 2 / np.pi  # nPR of a vector of i.i.d. Gaussians (E|x|² / E x² = 2/π): no sparsity at all
LARGE_RELATIVE = 1 / 8   # Sec. 4.1 / A.3: ~10 dims exceed 1 where the largest are ≈ 5–8: "large" = ≥ max / 8
LARGE_SHARE = 0.02       # A.3: "about 1% to 2%" of dims are large
TOP_VARIANCE = 20        # Fig. 9b: "only ~15–20 head dimensions carry most of the variance"
HEAD_MAX = HEAD_DIMS     # head_is_class's head: the top-|c̄| dims, as many as Fig. 9b's (fewer for d < 200)
STRUCTURE_KEPT = 0.5     # head-only keeps at least half of each row's 10 nearest neighbours
ACCURACY_POINTS = 0.03   # "barely changes": a loss of at most 3 points of class accuracy (issue 20's goal)
HEAD_COST = 0.20         # "destroys": removing head dims costs at least 20 points
RANDOM_COST = 0.05       # the control: removing as many random dims costs under 5 points
PSNR_SAME = 30.0         # drift read-out (no classifier): ≥ 30 dB from the unpruned samples counts as unchanged
DRIFT_RATIO = 10.0       # drift read-out: removing the head drifts ≥ 10× (in MSE) what as many random dims do


@dataclass
class Claim:
    id: str
    claim: str
    paper: str
    measured: str
    verdict: str
    rule: str
    evidence: dict = field(default_factory=dict)
    page: str = "overview"

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}; got {self.verdict!r}")

    def to_dict(self) -> dict:
        return _json_safe(asdict(self))


def _json_safe(obj):
    """Floats rounded to 6 significant digits, NaN/inf as None, numpy scalars as Python ones."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not np.isfinite(obj) else float(f"{float(obj):.6g}")
    return obj


def not_measurable(claim_id: str, why: str) -> Claim:
    """The row of a claim this source cannot test, saying why in one sentence."""
    text = CLAIM_TEXT[claim_id]
    return Claim(claim_id, text["claim"], text["paper"], why, NOT_MEASURABLE, text["rule"], {}, text["page"])


def pct(x: float, digits: int = 1) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f} %"


# What each claim says, what the paper reports, the rule, and the page that shows it.
CLAIM_TEXT = {
    "alignment_yt": dict(
        claim="Class vectors c = y + t point the same way (extreme alignment).",
        paper="off-diagonal cosine 0.90 (DiT-XL/2) – 0.995 (REPA-XL) at t0, Tab. 1",
        rule=f"holds: mean off-diagonal cosine ≥ {ALIGNED} (Tab. 1's least aligned row, DiT-XL/2); partly: ≥ {HALF_ALIGNED}; "
             "else does not hold", page="cosine"),
    "alignment_y": dict(
        claim="The label part alone is aligned too, not only through a shared t.",
        paper="cosine of y alone 0.52 (REPA) – 0.85 (MDT), Tab. 4; text part of SD3 0.99, Tab. 5",
        rule=f"holds: cosine of the label (or text) part ≥ {LABEL_ALIGNED} (Tab. 4's lowest AdaLN row, REPA 0.5194); "
             f"partly: ≥ {LABEL_HALF}; else does not hold. On the split the weights hold, as Tab. 4 reads the released "
             "weights: the model's outputs do not fix it (docs/claims.md, The label part)", page="cosine"),
    "alignment_over_t": dict(
        claim="The alignment holds at every step of sampling, not only at t0.",
        paper="cosine > 0.99 across nearly all timesteps, App. A.2",
        rule=f"holds: the minimum over the source's own sampling schedule ≥ {OVER_T_MIN} and the median ≥ {ALIGNED}; "
             f"partly: the median ≥ {ALIGNED} with a dip below {OVER_T_MIN}; else does not hold", page="dynamics"),
    "sparsity_npr": dict(
        claim="A few dims carry the magnitude of c̄ (low nPR).",
        paper="nPR(c̄) 1.5 % (REPA-XL) – 10.47 % (DiT-XL/2), Tab. 1",
        rule=f"holds: nPR(c̄) ≤ {pct(SPARSE_NPR, 2)} (Tab. 1's least sparse ImageNet row, DiT-XL/2); partly: below half "
             f"of a Gaussian vector's {pct(GAUSSIAN_NPR)}; else does not hold", page="magnitudes"),
    "sparsity_magnitudes": dict(
        claim="Only 1–2 % of dims reach large magnitudes; most are near zero.",
        paper="~10–20 of 1152 dims ≈ 5–8, ~10 above 1, 38.9 % below 0.01 (Sec. 4.1, 5, A.3)",
        rule=f"scale-free: 'large' = |c̄ᵢ| ≥ max|c̄| / 8 (the paper's 1 against a largest ≈ 8). holds: large dims ≤ "
             f"{pct(LARGE_SHARE, 0)} of d; partly: ≤ 5 %; else does not hold", page="magnitudes"),
    "variance_head": dict(
        claim="The between-class variance sits in 15–20 dims.",
        paper="15–20 head dims (< 2 %) carry most of the variance across classes, Fig. 9b",
        rule=f"holds: the top {TOP_VARIANCE} dims by variance hold ≥ 50 % of it; partly: more than twice the uniform "
             f"share ({TOP_VARIANCE}/d); else does not hold", page="variance"),
    "head_is_class": dict(
        claim="The head of c̄ carries the class; the tail does not (Fig. 13 as a number).",
        paper="head-only t-SNE keeps the class clusters, tail-only collapses, Fig. 13",
        rule=f"head = the top-{HEAD_MAX} |c̄ᵢ| dims (fewer when d < {10 * HEAD_MAX}). Class structure kept = mean share of "
             f"each row's 10 nearest rows (Euclidean, c − c̄) that stay nearest. holds: head-only keeps ≥ "
             f"{STRUCTURE_KEPT:.0%} and more than tail-only and than random dims of the head's size; partly: more "
             "than random dims only; else does not hold. Also shown, not in the verdict: the head as every dim at or "
             "above the source's τ (the paper does not give its head's size)", page="projection"),
    "prune_tail": dict(
        claim="Zeroing the low-magnitude tail barely changes generation.",
        paper="τ = 0.01 removes 448/1152 dims (38.9 %) of REPA-XL: FID 7.17 → 7.21, Tab. 2",
        rule=f"at the source's τ (s_tail(c̄) = 448/1152, as REPA's τ = 0.01), every step. Class read-out: holds when the "
             f"accuracy falls ≤ {ACCURACY_POINTS * 100:.0f} points with the null rows pruned and with them kept, partly when "
             f"one does; drift read-out (no classifier): the same with PSNR ≥ {PSNR_SAME:.0f} dB", page="pruning"),
    "prune_head": dict(
        claim="Removing a few head dims destroys generation.",
        paper="removing 4–6 of 1152 dims degrades it (Fig. 7); 8 dims: FID 7.2 → 524, Tab. 2",
        rule=f"remove the top-k |c̄ᵢ| dims every step. Class read-out: holds when it costs ≥ {HEAD_COST * 100:.0f} points with "
             f"the null rows pruned and k random dims cost < {RANDOM_COST * 100:.0f}; partly when the cost needs the null "
             f"rows kept, or random dims cost as much; drift read-out: head MSE ≥ {DRIFT_RATIO:g}× random MSE", page="pruning"),
    "late_vs_t0": dict(
        claim="Pruning the tail only at t0 or only in the last steps keeps quality (late at least as well).",
        paper="τ = 0.01 at t0: FID 7.17, last k steps: 7.16, every step: 7.21 (Tab. 2; k not printed)",
        rule=f"tail at the source's τ. holds: first-step and last-K pruning each lose ≤ {ACCURACY_POINTS * 100:.0f} points "
             "(or PSNR ≥ 30 dB) and last-K is no worse than every step by more than 1 point; partly: one of the two "
             "schedules keeps quality; else does not hold", page="sweep"),
    "training_sparsification": dict(
        claim="nPR falls as training goes on (sparsification is learned).",
        paper="REPA B/2: nPR ≈ 90 % early → < 6 % at 200k steps, still falling, Fig. 12",
        rule="over the run's snapshots: holds when the last nPR(c̄) ≤ half the run's peak; partly when it is below the "
             "peak but above half; else does not hold", page="dynamics"),
}


def row(claim_id: str, measured: str, verdict: str, evidence: dict, paper: str | None = None) -> Claim:
    text = CLAIM_TEXT[claim_id]
    return Claim(claim_id, text["claim"], paper or text["paper"], measured, verdict, text["rule"], evidence, text["page"])


def source_tau(source, t: float | None = None) -> float:
    """The source's one default τ (dtviz.pruning.defaults.default_tau): s_tail(c̄ at t0) = 448/1152."""
    return default_tau(ConditionStats(compute_cosine=False).fit(source.embeddings(t=t)))
