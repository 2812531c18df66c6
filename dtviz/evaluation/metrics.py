"""Sample-quality metrics of the paper's Table 2 from Inception features: FID, IS, KID, precision/recall
(the CLIP column's per-sample scores come from dtviz.evaluation.clipscore).

Why torch-fidelity (not clean-fid): its ``FeatureExtractorInceptionV3`` is the PyTorch port of the same
TF Inception graph (2015-12-05) that ADM's evaluator (guided-diffusion/evaluations/evaluator.py, the paper's
evaluation code) runs, takes the weights from a path (``feature_extractor_weights_path``; checked on 0.4.0),
and gives pool_3 features ('2048') and logits ('logits_unbiased') from ONE forward, so FID, IS, KID and
precision/recall share one feature pass. clean-fid fetches a TorchScript Inception by URL. The network
lives in dtviz/evaluation/inception.py; this module is the arithmetic on features, in float64, UI-free:

- FID (Heusel et al. 2017): ‖μ₁−μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½), ADM's formula; the trace of the square
  root by symmetric eigendecompositions (see trace_sqrt_product) instead of scipy's sqrtm.
- IS (Salimans et al. 2016): exp E_x KL(p(y|x) ‖ p(y)) over ``splits`` equal splits (mean, std), as ADM.
- KID (Bińkowski et al. 2018): unbiased MMD² with the kernel (x·y/d + 1)³ over random subsets (mean, std),
  torch-fidelity's defaults (100 subsets of ≤ 1000, seed 2020).
- Precision / recall (Kynkäänniemi et al. 2019): the share of generated features inside the union of real
  k-NN balls (k = 3), and vice versa, as ADM's ManifoldEstimator (on Inception pool_3 features).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dtviz.errors import DtvizInputError

METRICS = ("fid", "is", "kid", "pr", "clip")
METRIC_COLUMNS = ("fid", "is", "is_std", "kid", "kid_std", "precision", "recall", "clip")
NEEDS_REFERENCE = ("fid", "kid", "pr")  # IS needs only the samples
NEEDS_INCEPTION = ("fid", "is", "kid", "pr")  # CLIP score needs a CLIP (dtviz.evaluation.clipscore) instead


def parse_metrics(text: str | None) -> tuple[str, ...]:
    """"fid,is,kid,pr,clip" -> ('fid', 'is', 'kid', 'pr', 'clip') in METRICS order; '' / None -> ()."""
    if not text:
        return ()
    names = [x.strip().lower() for x in str(text).split(",") if x.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise DtvizInputError(f"--metrics expects a comma-separated subset of {','.join(METRICS)}; got {unknown[0]!r}.")
    return tuple(m for m in METRICS if m in names)


# ------------------------------------------------------------------------------------------- FID

def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features (N, D) -> μ (D,), Σ (D, D) in float64 (np.cov, N−1 normalisation, as ADM and torch-fidelity)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise DtvizInputError(f"FID needs at least 2 feature rows; got shape {tuple(f.shape)}.")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr (Σ₁Σ₂)^½ = Tr (Σ₁^½ Σ₂ Σ₁^½)^½ for PSD Σ (same eigenvalues), by symmetric eigendecompositions:
    exact and stabler than scipy's general sqrtm (which ADM uses), and ~10× faster at D = 2048."""
    a = _psd_sqrt(sigma1)
    m = a @ sigma2 @ a
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂): ‖μ₁−μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Tr (Σ₁Σ₂)^½."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise DtvizInputError(f"FID needs statistics of the same size; got means {mu1.shape} and {mu2.shape}.")
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2))


def fid_from_features(features: np.ndarray, mu_ref, sigma_ref) -> float:
    """FID of features (N, D) against N(μ, Σ). With N ≤ D, Σ_g = XᵀX/(N−1) (X centred) has rank < N and
    Tr (Σ_g Σ)^½ = Σ √eig(X Σ Xᵀ)/√(N−1), an N×N problem (same nonzero eigenvalues); else the D×D path."""
    mu_g, sigma_g = gaussian_stats(features)
    x = np.asarray(features, np.float64) - mu_g
    if len(x) > x.shape[1]:
        return frechet_distance(mu_g, sigma_g, mu_ref, sigma_ref)
    sigma_ref = np.asarray(sigma_ref, np.float64)
    m = x @ sigma_ref @ x.T
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum() / np.sqrt(len(x) - 1)
    diff = mu_g - np.asarray(mu_ref, np.float64)
    return float(diff.dot(diff) + np.trace(sigma_g) + np.trace(sigma_ref) - 2 * tr_sqrt)


# -------------------------------------------------------------------------------------------- IS

def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """logits (N, C) -> (mean, std) of exp(E KL(p(y|x) ‖ p(y))) over ``splits`` consecutive splits."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # (N, C) softmax
    scores = []
    for part in np.array_split(p, max(1, min(splits, len(p)))):
        py = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part + 1e-30) - np.log(py + 1e-30))).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


# ------------------------------------------------------------------------------------------- KID

def kernel_inception_distance(f_gen: np.ndarray, f_ref: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 2020) -> tuple[float, float]:
    """Unbiased MMD² with k(x, y) = (x·y/d + 1)³ over random subsets of both sets: (mean, std)."""
    g, r = np.asarray(f_gen, np.float64), np.asarray(f_ref, np.float64)
    m = min(len(g), len(r), subset_size)
    if m < 2:
        raise DtvizInputError(f"KID needs at least 2 samples in each set; got {len(g)} and {len(r)}.")
    rng, d = np.random.RandomState(seed), g.shape[1]
    values = []
    for _ in range(subsets):
        x, y = g[rng.choice(len(g), m, replace=False)], r[rng.choice(len(r), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        values.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


# ------------------------------------------------------------------------------ precision / recall

def _knn_radii(f: np.ndarray, k: int) -> np.ndarray:
    """(N,) distance of each row to its k-th nearest other row (ADM: k+1-th smallest incl. itself)."""
    d = _pairwise(f, f)
    return np.sort(d, axis=1)[:, min(k, len(f) - 1)]


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
    return np.sqrt(np.maximum(sq, 0.0))


def precision_recall(f_real: np.ndarray, f_gen: np.ndarray, k: int = 3) -> tuple[float, float]:
    """(precision, recall): share of generated rows within some real row's k-NN radius, and vice versa."""
    real, gen = np.asarray(f_real, np.float64), np.asarray(f_gen, np.float64)
    if len(real) < 2 or len(gen) < 2:
        raise DtvizInputError(f"precision/recall needs at least 2 samples in each set; got {len(real)} and {len(gen)}.")
    r_real, r_gen = _knn_radii(real, k), _knn_radii(gen, k)
    precision = (_pairwise(gen, real) <= r_real[None, :]).any(axis=1).mean()
    recall = (_pairwise(real, gen) <= r_gen[None, :]).any(axis=1).mean()
    return float(precision), float(recall)


# --------------------------------------------------------------------------------------- together

@dataclass
class Reference:
    """What the generated set is compared against: features (N, 2048) and/or precomputed μ, Σ."""

    features: np.ndarray | None  # Inception pool_3 features of real images (our network), or None
    mu: np.ndarray | None = None
    sigma: np.ndarray | None = None
    stats_from: str = ""  # which network computed μ, Σ (said in table.md)
    name: str = ""


def compute_metrics(metrics, features: dict, reference: Reference | None) -> dict:
    """{column: value} for METRIC_COLUMNS of the requested ``metrics`` (others absent).

    ``features``: {"pool": (N, 2048), "logits": (N, 1008)} Inception features and/or {"clip": (N,)} per-sample
    CLIP scores (dtviz.evaluation.clipscore); the CLIP column is their mean."""
    out: dict = {}
    if "clip" in metrics and features.get("clip") is not None:
        out["clip"] = float(np.mean(features["clip"]))
    if "is" in metrics:
        out["is"], out["is_std"] = inception_score(features["logits"])
    if reference is None:
        return out
    pool = features["pool"]
    if "fid" in metrics:
        if reference.mu is not None:
            mu, sigma = reference.mu, reference.sigma
        else:
            mu, sigma = gaussian_stats(reference.features)
        out["fid"] = fid_from_features(pool, mu, sigma)
    if reference.features is not None:
        if "kid" in metrics:
            out["kid"], out["kid_std"] = kernel_inception_distance(pool, reference.features)
        if "pr" in metrics:
            out["precision"], out["recall"] = precision_recall(reference.features, pool)
    return out
