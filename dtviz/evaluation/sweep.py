"""``dtviz sweep``: sample every pruning setting on the same noise and tabulate the paper's Table 2.

    dtviz sweep SOURCE --mode tail --tau 0,0.01,0.02,0.05 --schedule every,first,last:10 --per-class 5 --out DIR

writes

    DIR/table.csv          one row per setting, the unpruned baseline first (columns: TABLE_COLUMNS)
    DIR/table.md           the same in the layout of the paper's Table 2
    DIR/<setting>/         PNGs + index.csv, exactly as ``dtviz sample`` writes them

Settings are the product (τ or k) × schedule × null-row variant for one mode and mask. ``removed_dims`` is the
count of the global mask, or for ``--mask per-sample`` — whose mask follows c(t) from step to step — the mean over
the pruned steps of the mean over the chosen classes of each class's count (``removed_dims_t0``: at t0 alone). Quality without FID: class accuracy
from the built-in glyph classifier and, independently, by template matching (``template_accuracy``,
dtviz.builtin.templates; both empty for models without them — never estimated) and the pixel drift
(MSE, PSNR) of each sample from its baseline, which shares its noise.

The command line is dtviz.cli.sweep. Distributed: ``torchrun --nproc_per_node=N -m dtviz sweep ...`` (gloo on CPU, nccl on CUDA). The samples
are cut into fixed chunks of ``--batch-size`` and chunk j runs on rank j mod N, so every number is
computed in the same batches whatever N is; per-sample results are gathered on rank 0, which alone
writes, and reduced in sample order — the table does not depend on the process count.
"""
from __future__ import annotations

import contextlib
import csv
import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from dtviz.errors import DtvizInputError
from dtviz.evaluation.metrics import METRIC_COLUMNS
from dtviz.pruning.spec import PruneSpec, paper_schedule, spec_removed_dims, spec_removed_dims_t0

BASELINE = "baseline"
TABLE_COLUMNS = ("setting", "label", "mode", "tau", "k", "mask", "schedule", "prune_null", "removed_dims",
                 "removed_share", "removed_dims_t0", "class_accuracy", "template_accuracy", "drift_mse", "drift_psnr", "samples",
                 "pruned_guidance", *METRIC_COLUMNS)


# ------------------------------------------------------------------------------------------ parsing

def parse_numbers(text: str, option: str, kind=float) -> list:
    """"0,0.01,0.02" -> [0.0, 0.01, 0.02] (duplicates dropped, order kept)."""
    try:
        values = [kind(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        example = "0,0.01,0.02" if kind is float else "2,4,8"
        raise DtvizInputError(f"{option} expects comma-separated {'numbers' if kind is float else 'integers'} like {example}; got {text!r}.") from None
    if not values:
        raise DtvizInputError(f"{option} expects at least one value; got {text!r}.")
    return list(dict.fromkeys(values))


def sweep_specs(mode: str = "tail", taus=None, ks=None, schedules=("every",), mask: str = "global",
                prune_null=(True,)) -> list[PruneSpec]:
    """The product (τ or k) × schedule × null-row variant, in the given order; τ = [0.01] when neither is given.
    ``prune_null``: a bool or a sequence of them (True: the CFG null rows are pruned too; False: kept)."""
    variants = [bool(prune_null)] if isinstance(prune_null, (bool, np.bool_)) else [bool(v) for v in prune_null]
    if taus is not None and ks is not None:
        raise DtvizInputError("give either --tau or --k, not both.")
    selections = [dict(k=k) for k in ks] if ks is not None else [dict(tau=t) for t in (taus if taus is not None else [0.01])]
    specs = [PruneSpec(mode=mode, mask=mask, schedule=s, prune_null=v, **sel)
             for sel in selections for s in schedules for v in variants]
    return list(dict.fromkeys(specs))


# ------------------------------------------------------------------------------------- distribution

@dataclass(frozen=True)
class World:
    """This process's place in a torchrun job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def chunks(self, num_samples: int, batch_size: int) -> list[np.ndarray]:
        """Sample indices of the fixed chunks this rank runs: chunk j = [j·B, (j+1)·B) goes to rank j mod size."""
        starts = range(0, num_samples, batch_size)
        return [np.arange(s, min(s + batch_size, num_samples)) for j, s in enumerate(starts) if j % self.size == self.rank]

    def gather(self, obj) -> list | None:
        """Every rank's ``obj`` on rank 0 (in rank order), None elsewhere."""
        if self.size == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out


@contextlib.contextmanager
def distributed(device: str | None = None):
    """Join the torchrun job described by the environment (WORLD_SIZE > 1), else run alone.

    Backend nccl when CUDA is used, gloo otherwise; yields (World, device to load the model on)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        yield World(), device
        return
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available() and (device in (None, "auto") or str(device).startswith("cuda"))
    if use_cuda:
        if device in (None, "auto", "cuda"):  # one GPU per process
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
        torch.cuda.set_device(torch.device(device))
    elif device in (None, "auto"):
        device = "cpu"
    dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        yield World(rank=dist.get_rank(), size=dist.get_world_size()), device
    finally:
        dist.destroy_process_group()


# -------------------------------------------------------------------------------------------- sweep

@dataclass
class SettingResult:
    """One table row's samples and per-sample read-outs, in sample order (rank 0 after ``run_sweep``)."""

    name: str
    spec: PruneSpec | None  # None = the unpruned baseline
    images: np.ndarray  # (N, H, W, C) uint8, as written
    sample_mse: np.ndarray  # (N,) float64, against the baseline
    correct: np.ndarray | None  # (N,) bool, or None without a classifier
    template_correct: np.ndarray | None = None  # (N,) bool by template matching, or None without a matcher
    removed: tuple = (0, 0.0)  # (count, share): per-sample masks averaged over the pruned steps (spec_removed_dims)
    removed_t0: tuple = (0, 0.0)  # the same at t0 alone (spec_removed_dims_t0)
    pruned_guidance: float | None = None  # w when the spec defined P(c) of pruned-c guidance instead of pruning c
    features: dict | None = None  # {"pool" (N, 2048), "logits" (N, 1008), "clip" (N,)} as wanted, None without --metrics
    metrics: dict = field(default_factory=dict)  # dtviz.evaluation.metrics.METRIC_COLUMNS -> value (cmd_sweep fills it)


def prunes_nothing(spec: PruneSpec) -> bool:
    """True when ``spec`` removes no dim whatever c is: tail τ = 0 (no |c_i| < 0) or k = 0 (either mode).
    Its samples are the baseline's, so the sweep reuses those instead of sampling again."""
    return (spec.mode == "tail" and spec.tau == 0) or spec.k == 0


class SweepProgress:
    """A tqdm bar (stderr) over every network evaluation of the sweep, with rate and ETA.

    ``runs`` sampling runs are expected; the total (runs × evaluations per run) is set at the first
    ``on_step(i, n)``, because n depends on the sampler (e.g. DDPM's 250, an SDE's extra last step).
    An adaptive solver reports n = 0 (unknown): the bar then counts runs as they start, still with an ETA."""

    def __init__(self, runs: int, enabled: bool = True):
        self.runs, self.enabled, self.bar, self.per_step = runs, enabled, None, True

    def on_step(self, step: int, num_steps: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.per_step = num_steps > 0
            self.bar = tqdm(total=self.runs * num_steps if self.per_step else self.runs, dynamic_ncols=True,
                            desc=f"sweep ({self.runs} sampling runs)", unit="step" if self.per_step else "run")
        if self.per_step or step == 0:
            self.bar.update(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def run_sweep(generator, specs: list[PruneSpec], labels, settings, batch_size: int = 64, world: World = World(),
              classifier=None, progress: bool = True, matcher=None, featurize=None) -> list[SettingResult] | None:
    """Baseline + each spec on the same noise: images, per-sample MSE, classifier verdicts, removed dims.

    ``generator``: a dtviz.sampling.generate.Generator; ``labels``: (N,) class ids, sample i drawn from noise
    (settings.seed, i). The baseline is sampled once per chunk and reused for specs that prune nothing.
    ``progress``: a tqdm bar on rank 0. ``featurize``: (uint8 (n, H, W, C), class ids (n,)) -> {name: per-sample
    array} (dtviz.evaluation.sweep_metrics), run on each rank's own chunks so that features, not images, carry the metrics to rank 0.
    Returns the results in table order on rank 0, None elsewhere."""
    from dtviz.sampling.generate import to_uint8
    from dtviz.evaluation.quality import correct_per_sample, per_sample_mse, template_correct

    import dataclasses

    labels = np.asarray(labels, dtype=np.int64)
    # pruned-c guidance (settings.pruned_guidance = w): each spec is P of D + w·(D_c − D_P(c)); the baseline is unguided by P
    base_settings = dataclasses.replace(settings, pruned_guidance=None)
    names = [BASELINE] + [s.slug() for s in specs]
    parts = {name: [] for name in names}  # name -> [(indices, uint8, mse, correct, template correct)]
    chunks = world.chunks(len(labels), batch_size)
    runs = len(chunks) * (1 + sum(not prunes_nothing(s) for s in specs))
    with SweepProgress(runs, enabled=world.is_main and progress) as bar:
        for idx in chunks:
            base = generator.sample(labels[idx], base_settings, indices=idx, batch_size=len(idx), on_step=bar.on_step)
            base_feats = None
            for name, spec in zip(names, [None] + list(specs)):
                # the baseline stands for every spec that prunes nothing (τ = 0 tail, k = 0): sampled once
                images = base if spec is None or prunes_nothing(spec) else generator.sample(
                    labels[idx], settings, indices=idx, batch_size=len(idx), prune=spec, on_step=bar.on_step)
                correct = None if classifier is None else correct_per_sample(images, labels[idx], classifier)
                by_template = None if matcher is None else template_correct(images, labels[idx], matcher)
                u8 = to_uint8(images)
                if featurize is None:
                    feats = None
                elif spec is None or prunes_nothing(spec):  # the baseline's images: their features once per chunk
                    base_feats = featurize(u8, labels[idx]) if base_feats is None else base_feats
                    feats = base_feats
                else:
                    feats = featurize(u8, labels[idx])
                parts[name].append((idx, u8, per_sample_mse(base, images), correct, by_template, feats))
    gathered = world.gather(parts)
    if not world.is_main:
        return None
    results = []
    for name, spec in zip(names, [None] + list(specs)):
        pieces = [p for rank_parts in gathered for p in rank_parts[name]]
        pieces.sort(key=lambda p: int(p[0][0]) if len(p[0]) else -1)
        order = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, np.int64)
        if not np.array_equal(order, np.arange(len(labels))):
            raise RuntimeError(f"sweep gather lost samples: got {len(order)} of {len(labels)}.")
        results.append(SettingResult(
            name=name, spec=spec,
            images=np.concatenate([p[1] for p in pieces]),
            sample_mse=np.concatenate([p[2] for p in pieces]),
            correct=None if classifier is None else np.concatenate([p[3] for p in pieces]),
            template_correct=None if matcher is None else np.concatenate([p[4] for p in pieces]),
            removed=(0, 0.0) if spec is None else spec_removed_dims(generator.source, spec, classes=np.unique(labels),
                                                                    timesteps=_timesteps(generator, settings)),
            removed_t0=(0, 0.0) if spec is None else spec_removed_dims_t0(generator.source, spec, classes=np.unique(labels)),
            pruned_guidance=None if spec is None else settings.pruned_guidance,
            features=None if featurize is None else {k: np.concatenate([p[5][k] for p in pieces]) for k in pieces[0][5]},
        ))
    return results


def _timesteps(generator, settings) -> list | None:
    from dtviz.evaluation.quality import _sampler_timesteps

    return _sampler_timesteps(generator, settings)


# -------------------------------------------------------------------------------------------- table

def _num(x, digits: int = 6) -> str:
    if x is None:
        return ""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return "inf" if math.isinf(x) else f"{x:.{digits}g}"


def table_rows(results: list[SettingResult]) -> list[dict]:
    """One dict per setting with TABLE_COLUMNS as strings (empty = not applicable / not available)."""
    from dtviz.evaluation.quality import drift_summary

    rows = []
    for r in results:
        drift = drift_summary(r.sample_mse)
        s = r.spec
        rows.append({
            "setting": r.name,
            "label": BASELINE if s is None else s.label(),
            "mode": "" if s is None else s.mode,
            "tau": "" if s is None or s.tau is None else f"{s.tau:g}",
            "k": "" if s is None or s.k is None else str(s.k),
            "mask": "" if s is None else s.mask,
            "schedule": "" if s is None else s.schedule,
            "prune_null": "" if s is None else str(s.prune_null).lower(),
            "removed_dims": _num(r.removed[0]),
            "removed_share": _num(float(r.removed[1])),
            "removed_dims_t0": _num(r.removed_t0[0]),
            "class_accuracy": "" if r.correct is None else _num(float(r.correct.mean())),
            "template_accuracy": "" if r.template_correct is None else _num(float(r.template_correct.mean())),
            "drift_mse": _num(drift["mse"]),
            "drift_psnr": _num(drift["psnr"]),
            "samples": str(len(r.sample_mse)),
            "pruned_guidance": "" if r.pruned_guidance is None else f"{r.pruned_guidance:g}",
            **{c: _num(float(r.metrics[c])) if c in r.metrics else "" for c in METRIC_COLUMNS},
        })
    return rows


def write_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


MD_METRICS = {"fid": "FID ↓", "is": "IS ↑", "kid": "KID ↓", "clip": "CLIP ↑", "precision": "Precision ↑", "recall": "Recall ↑"}


def markdown_table(results: list[SettingResult], dim: int, source_name: str, note: str = "") -> str:
    """The paper's Table 2 layout: Prune | Threshold τ (schedule) | # Removed Dims | metrics."""
    from dtviz.evaluation.quality import drift_summary

    lines = [
        "Performance under sparsification of c (layout of the paper's Table 2). "
        "t_i: prune every step, t_0: prune only at start, t_{n-k,n}: prune during the last k steps.",
        "Class acc.: the built-in glyph classifier; template acc.: nearest class by template matching (— when the "
        "model has none); drift: pixel MSE / PSNR "
        "of each sample against the baseline with the same noise.",
    ]
    if note:
        lines.append(note)
    shown = [c for c in MD_METRICS if any(c in r.metrics for r in results)]  # the paper's FID, IS, (KID), CLIP, P, R
    head = "".join(f" {MD_METRICS[c]} |" for c in shown)
    lines += ["", f"| Prune | Threshold τ | # Removed Dims |{head} Class acc. ↑ | Template acc. ↑ | Drift MSE ↓ | PSNR ↑ |",
              "|---|---|---|" + "---|" * len(shown) + "---|---|---|---|"]
    for i, r in enumerate(results):
        s = r.spec
        prune = "" if i else (results[1].spec.mode.capitalize() if len(results) > 1 else "")
        if s is None:
            threshold = f"Baseline ({source_name})"
        else:
            sel = f"τ = {s.tau:g}" if s.tau is not None else (f"k = {s.k}" if s.k is not None else s.selection)
            when = [f"${paper_schedule(s.schedule)}$"] + ([s.mask] if s.mask != "global" else []) + (["null kept"] if not s.prune_null else [])
            threshold = f"{sel} ({', '.join(when)})"
        count, share = r.removed
        removed = (f"{count}/{dim} ({100 * share:.2f}%)" if isinstance(count, (int, np.integer)) else
                   f"≈{count:.1f}/{dim} ({100 * share:.2f}%) mean over steps; {r.removed_t0[0]:.1f} at t0")
        acc = "—" if r.correct is None else f"{r.correct.mean():.4f}"
        tacc = "—" if r.template_correct is None else f"{r.template_correct.mean():.4f}"
        drift = drift_summary(r.sample_mse)
        psnr = "∞" if math.isinf(drift["psnr"]) else f"{drift['psnr']:.2f}"
        values = "".join(f" {r.metrics[c]:.4g} |" if c in r.metrics else " — |" for c in shown)
        lines.append(f"| {prune} | {threshold} | {removed} |{values} {acc} | {tacc} | {drift['mse']:.4g} | {psnr} |")
    return "\n".join(lines) + "\n"
