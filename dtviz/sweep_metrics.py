"""``dtviz sweep --metrics fid,is,kid,pr [--inception PATH] [--reference PATH]``: the Table-2 quality columns.

Each rank computes Inception features of its own chunks (dtviz.inception, local weights only); the sweep
gathers the features (not images) on rank 0, which loads the reference once and computes every setting's
metrics over all samples (dtviz.metrics). Missing weights or reference skip the metrics that need them,
said in one sentence on stderr and in table.md."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

from dtviz.metrics import NEEDS_REFERENCE, compute_metrics, parse_metrics


def add_metrics_args(p) -> None:
    p.add_argument("--metrics", default="", help="comma-separated fid,is,kid,pr: Inception metrics per setting "
                   "(local weights only, see --inception; fid/kid/pr also need --reference)")
    p.add_argument("--inception", default=None, metavar="PATH",
                   help="torch-fidelity's weights-inception-2015-12-05-6726825d.pth (default: the torch hub checkpoints folder)")
    p.add_argument("--reference", default=None, metavar="PATH",
                   help="real images for fid/kid/pr: ADM's reference batch .npz (arr_0, mu, sigma) or a folder of images")


@dataclass
class MetricsPlan:
    """What this sweep computes: the metrics that will run, the network, and sentences for what was skipped."""

    metrics: tuple = ()
    net: object = None
    skipped: list = field(default_factory=list)

    def featurizer(self, rank: int = 0, batch_size: int = 32):
        """uint8 (n, H, W, C) -> (pool, logits), with a tqdm bar per rank over the images it featurizes."""
        if not self.metrics:
            return None
        from tqdm import tqdm

        from dtviz.inception import features

        bar = tqdm(desc=f"inception features (rank {rank})", unit="img", position=1 + rank, dynamic_ncols=True, leave=False)

        def featurize(images):
            out = features(self.net, images, batch_size)
            bar.update(len(images))
            return out

        return featurize


def plan_metrics(args, device: str | None = None) -> MetricsPlan:
    """Parse --metrics and find the weights (every rank does the same, on the same files)."""
    from dtviz.inception import find_weights, load_inception, skip_sentence

    wanted = parse_metrics(args.metrics)
    if not wanted:
        return MetricsPlan()
    skipped = []
    if args.reference is None and any(m in NEEDS_REFERENCE for m in wanted):
        gone = [m for m in wanted if m in NEEDS_REFERENCE]
        skipped.append(f"Skipped {', '.join(m.upper() for m in gone)}: they compare with real images; pass --reference "
                       f"(ADM's reference batch .npz or a folder of images).")
        wanted = tuple(m for m in wanted if m not in NEEDS_REFERENCE)
    path = find_weights(args.inception)
    if path is None:
        return MetricsPlan(skipped=skipped + [skip_sentence(wanted)] if wanted else skipped)
    if not wanted:
        return MetricsPlan(skipped=skipped)
    net = load_inception(path, device if device not in (None, "auto") else "cpu")
    return MetricsPlan(metrics=wanted, net=net, skipped=skipped)


def fill_metrics(results, plan: MetricsPlan, reference_path: str | None) -> list[str]:
    """On rank 0: each result's ``metrics`` from its gathered features; returns the table.md note lines."""
    for sentence in plan.skipped:
        print(sentence, file=sys.stderr)
    if not plan.metrics:
        return list(plan.skipped)
    from dtviz.inception import reference_from

    reference = None if reference_path is None else reference_from(reference_path, plan.net, progress=True)
    for r in results:
        r.metrics = compute_metrics(plan.metrics, r.features[0], r.features[1], reference)
    notes = [f"Metrics {', '.join(m.upper() for m in plan.metrics)} from Inception pool_3 features / logits "
             f"(torch-fidelity's Inception-2015-12-05 port) of {len(results[0].features[0])} samples per setting"
             + (f" against {reference.name}" if reference is not None else "") + "; precision/recall k = 3 as ADM."]
    if reference is not None and reference.stats_from:
        notes.append(f"FID against the reference's own μ, Σ, computed by {reference.stats_from}.")
    lacking = [m.upper() for m in plan.metrics if m in ("kid", "pr")] if reference is not None and reference.features is None else []
    if lacking:
        notes.append(f"Skipped {', '.join(lacking)}: the reference .npz has mu/sigma but no arr_0 images to take features of.")
        print(notes[-1], file=sys.stderr)
    return notes + list(plan.skipped)


# ------------------------------------------------------------------------------- reading a sweep

METRIC_LABELS = {"fid": "FID ↓", "is": "IS ↑", "kid": "KID ↓", "precision": "precision ↑", "recall": "recall ↑",
                 "class_accuracy": "class accuracy ↑", "template_accuracy": "template accuracy ↑",
                 "drift_mse": "drift MSE ↓", "drift_psnr": "PSNR ↑"}


def read_sweep_table(folder: str):
    """``folder``/table.csv as written by ``dtviz sweep`` -> a pandas DataFrame, numeric columns as floats
    (empty = NaN). DtvizInputError in one sentence when it is not a sweep folder."""
    import os

    import pandas as pd

    from dtviz.errors import DtvizInputError

    path = os.path.join(folder, "table.csv")
    if not os.path.isfile(path):
        raise DtvizInputError("expected a folder written by dtviz sweep (with table.csv); found no table.csv in it.")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception:
        raise DtvizInputError("expected table.csv of dtviz sweep; it could not be read as CSV.") from None
    if not {"setting", "tau", "k", "schedule"} <= set(df.columns):
        raise DtvizInputError("expected table.csv of dtviz sweep (columns setting, tau, k, schedule, …); found other columns.")
    for c in ("tau", "k", "removed_dims", "removed_share", *METRIC_LABELS, "is_std", "kid_std"):
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
