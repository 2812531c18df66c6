"""The live pruning page's starting point, chosen from the model's own statistics (issue 11 §3).

The paper's central contrast: pruning the *tail* — a large share of dims, 448/1152 ≈ 0.389, which is what its
τ = 0.01 removes on REPA-XL (Table 2) — changes little, while pruning a *few head* dims (2 of 1152 at τ = 5.0 in
Table 2) destroys the class. A fixed τ means nothing across models (|c̄ᵢ| scales differ by orders of magnitude),
so each model's one default τ (``default_tau``) is the one at which s_tail(c̄) = 448/1152 for *that* model; every
page, mask and command uses it.

The mask: the paper's is global (one set of dims from c̄). That stands for each class only when the classes
share a direction: at an off-diagonal cosine below 0.9 (the paper's lowest, DiT-XL/2: 0.9001) a small |c̄ᵢ|
is often a dim where classes cancel on average while each class is large there, so the default is then
the per-sample mask (each row's own |c|), at the same τ. Alignment alone is not enough either: given the rows,
the global mask is kept only when the tail of c̄ takes at most GLOBAL_NORM_RATIO times the share of ‖c‖ that each
class's own tail takes (``why`` says which held, with this model's numbers).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALIGNED_COSINE = 0.9  # the paper's least aligned ImageNet model (DiT-XL/2, Table 1) and issue 11's goal
# The paper's τ = 0.01 put 448 of REPA-XL's 1152 dims in the tail (Table 2). A fixed τ means nothing across models
# (their |c̄ᵢ| scales differ by 100×), so each source's one default τ is the τ below which the same share of ITS
# dims of c̄ lie: every page, the CLI and the claims use it; τ = 0.01 stays one click away as the paper's value.
PAPER_TAU = 0.01
PAPER_TAIL_SHARE = 448 / 1152
TAIL_SHARE = PAPER_TAIL_SHARE
# The head the contrast prunes: the paper's large dims are ~1–2 % of d at XL width (Sec. 5); small models spread
# the class over a few more, so k = 3 % of d, at least 2 (15 of 512, 35 of 1152).
HEAD_SHARE, HEAD_K_MIN = 0.03, 2
# c̄ stands for every class's small dims when its tail takes at most this multiple of what each class's own tail
# takes from ‖c‖ (the paper's XL models prune from c̄).
GLOBAL_NORM_RATIO = 2.0


@dataclass(frozen=True)
class PruningDefaults:
    mask: str  # "global" or "per-sample"
    tau: float  # τ at which s_tail ≈ tail_share for that mask's reading
    tau_by_mask: dict  # mask -> its τ (the page jumps to it when the mask changes)
    tail_share: float
    head_k: int
    why: str  # one sentence for the page


def default_tau(stats) -> float:
    """The source's default τ: the τ at which s_tail(c̄) = 448/1152, the share of dims REPA-XL's τ = 0.01 removes
    (Table 2), from a fitted ``ConditionStats`` of c at t0 (``tau_for_tail`` on c̄)."""
    return stats.tau_for_tail(PAPER_TAIL_SHARE, "mean_vector")


def reading_for(mask: str) -> str:
    """The s_tail reading a mask prunes by: c̄ for the global mask, each class's own c per sample."""
    return "mean_vector" if mask == "global" else "per_class_mean"


def tail_norm_shares(E: np.ndarray, tau_global: float, tau_per_sample: float) -> tuple[float, float]:
    """Mean over rows of ‖c_tail‖ / ‖c‖ (float64): the share of each class's c that the global tail (|c̄ᵢ| < τ)
    and that its own tail (|cᵢ| < τ) remove — what pruning takes away from c before any sampling."""
    E = np.asarray(E, dtype=np.float64)
    norms = np.linalg.norm(E, axis=1)
    norms[norms == 0] = 1.0
    global_tail = np.abs(E.mean(0)) < tau_global
    own = np.where(np.abs(E) < tau_per_sample, E, 0.0)
    return float(np.mean(np.linalg.norm(E[:, global_tail], axis=1) / norms)), float(np.mean(np.linalg.norm(own, axis=1) / norms))


def pruning_defaults(stats, tail_share: float = TAIL_SHARE, head_k: int | None = None, E=None) -> PruningDefaults:
    """Defaults from a fitted ``dtviz.analysis.stats.ConditionStats`` (see the module docstring); with the rows ``E`` the
    global mask must also remove at most GLOBAL_NORM_RATIO × the share of ‖c‖ each row's own tail removes."""
    cosine = (stats.cosine_summary_ or {}).get("mean", float("nan"))
    by_mask = {m: stats.tau_for_tail(tail_share, reading_for(m)) for m in ("global", "per-sample")}
    aligned = not cosine < ALIGNED_COSINE  # NaN (no cosine) keeps the paper's mask
    why = (f"classes share a direction (cosine {cosine:.2f} ≥ {ALIGNED_COSINE}), so one mask from c̄ stands for "
           "every class, as the paper's global mask assumes" if aligned else
           f"classes share little direction (cosine {cosine:.2f} < {ALIGNED_COSINE}), so c̄ is a poor guide to each "
           "class's small dims: each sample's own |c| decides")
    if aligned and E is not None:
        shared, own = tail_norm_shares(E, by_mask["global"], by_mask["per-sample"])
        if shared > GLOBAL_NORM_RATIO * own:
            aligned = False
            why = (f"classes share a direction (cosine {cosine:.2f}), but the tail of c̄ holds {100 * shared:.0f}% of each"
                   f" class's ‖c‖ against {100 * own:.0f}% in its own tail, so c̄ is a poor guide to each class's small"
                   " dims: each sample's own |c| decides")
    mask = "global" if aligned else "per-sample"
    one = default_tau(stats) if tail_share == PAPER_TAIL_SHARE else by_mask["global"]  # one τ per model, every mask
    return PruningDefaults(mask=mask, tau=one, tau_by_mask={m: one for m in by_mask}, tail_share=tail_share,
                           head_k=min(head_k or head_k_for(int(stats.dim_)), int(stats.dim_)), why=why)


def head_k_for(dim: int) -> int:
    """k of the head contrast for width ``dim``: HEAD_SHARE of the dims, at least HEAD_K_MIN."""
    return max(HEAD_K_MIN, round(HEAD_SHARE * dim))
