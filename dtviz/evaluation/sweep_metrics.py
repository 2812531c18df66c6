"""``dtviz sweep --metrics fid,is,kid,pr,clip [--inception PATH] [--reference PATH] [--clip FOLDER]``: the
Table-2 quality columns.

Each rank computes Inception features (dtviz.evaluation.inception) and per-sample CLIP scores (dtviz.evaluation.clipscore) of its
own chunks, from local weights only; the sweep gathers those (not images) on rank 0, which loads the reference
once and computes every setting's metrics over all samples (dtviz.evaluation.metrics). Missing weights or reference skip
the metrics that need them, said in one sentence on stderr and in table.md."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

from dtviz.evaluation.metrics import NEEDS_INCEPTION, NEEDS_REFERENCE, compute_metrics, parse_metrics


def add_metrics_args(p) -> None:
    p.add_argument("--metrics", default="", help="comma-separated fid,is,kid,pr,clip: quality metrics per setting "
                   "(local weights only: --inception for fid/is/kid/pr, of which fid/kid/pr also need --reference; --clip for clip)")
    p.add_argument("--inception", default=None, metavar="PATH",
                   help="torch-fidelity's weights-inception-2015-12-05-6726825d.pth (default: the torch hub checkpoints folder)")
    p.add_argument("--reference", default=None, metavar="PATH",
                   help="real images for fid/kid/pr: ADM's reference batch .npz (arr_0, mu, sigma) or a folder of images")
    p.add_argument("--clip", default=None, metavar="FOLDER",
                   help="a transformers CLIP folder (save_pretrained layout) for the CLIP score (default: openai/clip-vit-* "
                        "in the Hugging Face cache); texts are the prompts, or 'a photo of a {class}'")


@dataclass
class MetricsPlan:
    """What this sweep computes: the metrics that will run, the networks, and sentences for what was skipped."""

    metrics: tuple = ()
    net: object = None  # the Inception network, when a metric needs it
    clip: object = None  # a dtviz.evaluation.clipscore.ClipScorer, when "clip" runs
    skipped: list = field(default_factory=list)

    def featurizer(self, source=None, rank: int = 0, batch_size: int = 32):
        """(uint8 (n, H, W, C), class ids (n,)) -> {"pool", "logits"} Inception features and/or {"clip"}
        per-sample CLIP scores against ``source``'s texts (dtviz.evaluation.clipscore.condition_texts), with a tqdm bar per
        rank over the images it scores."""
        if not self.metrics:
            return None
        from tqdm import tqdm

        from dtviz.evaluation.clipscore import condition_texts
        from dtviz.evaluation.inception import features

        bar = tqdm(desc=f"metric features (rank {rank})", unit="img", position=1 + rank, dynamic_ncols=True, leave=False)

        def featurize(images, labels):
            out = {}
            if self.net is not None:
                out["pool"], out["logits"] = features(self.net, images, batch_size)
            if self.clip is not None:
                out["clip"] = self.clip.scores(images, condition_texts(source, labels), batch_size)
            bar.update(len(images))
            return out

        return featurize


def plan_metrics(args, device: str | None = None) -> MetricsPlan:
    """Parse --metrics and find the weights (every rank does the same, on the same files)."""
    from dtviz.evaluation.clipscore import ClipScorer, find_clip
    from dtviz.evaluation.clipscore import skip_sentence as clip_skip
    from dtviz.evaluation.inception import find_weights, load_inception, skip_sentence

    wanted = parse_metrics(args.metrics)
    if not wanted:
        return MetricsPlan()
    device = device if device not in (None, "auto") else "cpu"
    skipped = []
    if args.reference is None and any(m in NEEDS_REFERENCE for m in wanted):
        gone = [m for m in wanted if m in NEEDS_REFERENCE]
        skipped.append(f"Skipped {', '.join(m.upper() for m in gone)}: they compare with real images; pass --reference "
                       f"(ADM's reference batch .npz or a folder of images).")
        wanted = tuple(m for m in wanted if m not in NEEDS_REFERENCE)
    net = clip = None
    inception_metrics = [m for m in wanted if m in NEEDS_INCEPTION]
    if inception_metrics:
        path = find_weights(args.inception)
        if path is None:
            skipped.append(skip_sentence(inception_metrics))
            wanted = tuple(m for m in wanted if m not in NEEDS_INCEPTION)
        else:
            net = load_inception(path, device)
    if "clip" in wanted:
        path = find_clip(getattr(args, "clip", None))
        if path is None:
            skipped.append(clip_skip())
            wanted = tuple(m for m in wanted if m != "clip")
        else:
            clip = ClipScorer(path, device)
    return MetricsPlan(metrics=wanted, net=net, clip=clip, skipped=skipped)


def fill_metrics(results, plan: MetricsPlan, reference_path: str | None) -> list[str]:
    """On rank 0: each result's ``metrics`` from its gathered features; returns the table.md note lines."""
    for sentence in plan.skipped:
        print(sentence, file=sys.stderr)
    if not plan.metrics:
        return list(plan.skipped)
    from dtviz.evaluation.inception import reference_from

    compares = plan.net is not None and any(m in NEEDS_REFERENCE for m in plan.metrics)
    reference = reference_from(reference_path, plan.net, progress=True) if compares and reference_path else None
    for r in results:
        r.metrics = compute_metrics(plan.metrics, r.features, reference)
    n = len(results[0].images)
    notes = []
    if plan.net is not None:
        names = ", ".join(m.upper() for m in plan.metrics if m in NEEDS_INCEPTION)
        notes.append(f"Metrics {names} from Inception pool_3 features / logits (torch-fidelity's Inception-2015-12-05 "
                     f"port) of {n} samples per setting" + (f" against {reference.name}" if reference is not None else "")
                     + ("; precision/recall k = 3 as ADM." if "pr" in plan.metrics else "."))
    if plan.clip is not None:
        notes.append(f"CLIP score = 100 · max(cos, 0) of {plan.clip.name}'s image and text embeddings, mean of {n} samples "
                     "per setting; texts: the prompts, or 'a photo of a {class}'.")
    if reference is not None and reference.stats_from:
        notes.append(f"FID against the reference's own μ, Σ, computed by {reference.stats_from}.")
    lacking = [m.upper() for m in plan.metrics if m in ("kid", "pr")] if reference is not None and reference.features is None else []
    if lacking:
        notes.append(f"Skipped {', '.join(lacking)}: the reference .npz has mu/sigma but no arr_0 images to take features of.")
        print(notes[-1], file=sys.stderr)
    return notes + list(plan.skipped)


# ------------------------------------------------------------------------------- reading a sweep

METRIC_LABELS = {"fid": "FID ↓", "is": "IS ↑", "kid": "KID ↓", "precision": "precision ↑", "recall": "recall ↑",
                 "clip": "CLIP ↑", "class_accuracy": "class accuracy ↑", "template_accuracy": "template accuracy ↑",
                 "drift_mse": "drift MSE ↓", "drift_psnr": "PSNR ↑"}


def read_sweep_table(folder: str):
    """``folder``/table.csv as written by ``dtviz sweep`` -> a pandas DataFrame, numeric columns as floats
    (empty = NaN). DtvizInputError in one sentence when it is not a sweep folder."""
    import os

    import pandas as pd

    from dtviz.errors import DtvizInputError

    from dtviz.sources import budgets
    from dtviz.sources.access import check_allowed

    path = os.path.join(folder, "table.csv")
    if not os.path.isfile(path):
        raise DtvizInputError("expected a folder written by dtviz sweep (with table.csv); found no table.csv in it.")
    check_allowed(path, "the sweep table")
    budgets.check_bytes("a sweep table", os.path.getsize(path), budgets.MAX_SWEEP_TABLE_BYTES, "table.csv")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception:
        raise DtvizInputError("expected table.csv of dtviz sweep; it could not be read as CSV.") from None
    if not {"setting", "tau", "k", "schedule"} <= set(df.columns):
        raise DtvizInputError("expected table.csv of dtviz sweep (columns setting, tau, k, schedule, …); found other columns.")
    for c in ("tau", "k", "removed_dims", "removed_share", "removed_dims_t0", *METRIC_LABELS, "is_std", "kid_std"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c].replace("", None), errors="coerce")
    return df


def metric_curves(df, metric: str) -> tuple[str, dict, float | None]:
    """(x column 'tau' or 'k', {schedule: (x (n,), values (n,)) sorted by x}, the baseline's value or None)."""
    import numpy as np

    x = "tau" if df["tau"].notna().any() else "k"
    base = df[df["setting"] == "baseline"][metric].dropna()
    curves = {}
    for schedule, part in df[df["setting"] != "baseline"].groupby("schedule", sort=False):
        part = part.dropna(subset=[x, metric]).sort_values(x)
        if len(part):
            curves[schedule] = (part[x].to_numpy(np.float64), part[metric].to_numpy(np.float64))
    return x, curves, (float(base.iloc[0]) if len(base) else None)
