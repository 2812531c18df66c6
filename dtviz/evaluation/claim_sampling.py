"""The claims that need samples: prune_tail, prune_head and late_vs_t0 (dtviz.evaluation.claims).

Every run samples the same labels from the same noise (per-sample seeds), so each difference is the pruning's:

    baseline                    no pruning
    tail      τ, every step     the source's τ (s_tail(c̄) = 448/1152, as REPA's τ = 0.01), global mask
    head      k, every step     the top-k |c̄ᵢ| dims
    head y-only                 the same dims, only the label part removed (c_i -> t_i): does the head hold the class?
    random    k random dims     the control: is the head special, or does removing any k dims cost as much?
    first / last:K              the tail at t0 only, and in the last K steps only (Table 2's t_0 and t_{n-k,n})

Each pruning is run twice where the paper is silent on it: with the CFG null rows pruned too (what pruning c inside
the model's forward does; dtviz's default) and with them kept. The read-out is class accuracy where the source ships
a classifier (the built-in models), else the pixel drift from the unpruned samples (PSNR).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dtviz.errors import DtvizInputError
from dtviz.evaluation.claim_rows import (ACCURACY_POINTS, DRIFT_RATIO, FAILS, HEAD_COST, HOLDS, PARTLY, PSNR_SAME,
                                         RANDOM_COST, SAMPLING_IDS, not_measurable, pct, row, source_tau)
from dtviz.pruning.spec import PruneSpec

HEAD_K = 8  # Table 2's head row removes 8 of 1152 dims (τ = 1.0); Fig. 7 shows 4–6
DEFAULT_SAMPLES = 256


@dataclass(frozen=True)
class SamplingPlan:
    """What the sampling rows sample. ``classes``: class ids (each ``per_class`` times); None → ``default_plan``."""

    classes: tuple[int, ...]
    per_class: int = 1
    seed: int = 0
    steps: int | None = None
    sampler: str | None = None
    cfg_scale: float | None = None
    head_k: int = HEAD_K
    random_draws: int = 2
    last_k: int | None = None  # None: a tenth of the sampler's evaluations, at least 1 (the paper does not print k)
    tau: float | None = None  # None: the source's τ

    @property
    def samples(self) -> int:
        return len(self.classes) * self.per_class


def default_plan(source, samples: int = DEFAULT_SAMPLES, seed: int = 0, **overrides) -> SamplingPlan:
    """All classes when they fit in ``samples`` (as many per class as fit), else ``samples`` random classes, one each."""
    n = source.num_classes
    if n <= samples:
        classes, per_class = tuple(range(n)), max(1, samples // n)
    else:
        rng = np.random.default_rng(seed)
        classes, per_class = tuple(int(i) for i in np.sort(rng.choice(n, size=samples, replace=False))), 1
    return SamplingPlan(classes=classes, per_class=per_class, seed=seed, **overrides)


@dataclass
class RunResult:
    name: str
    spec: PruneSpec | None
    accuracy: float | None = None
    template_accuracy: float | None = None
    mse: float | None = None
    psnr: float | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)


def plan_runs(plan: SamplingPlan, tau: float, dim: int, steps: int) -> list[tuple[str, PruneSpec | None]]:
    """(name, spec) of every run, the baseline first; random dims are drawn from the plan's seed."""
    k = min(plan.head_k, dim)
    last_k = plan.last_k or max(1, round(steps / 10))
    rng = np.random.default_rng(plan.seed + 1)
    runs = [("baseline", None)]
    for null, tag in ((True, "pruned"), (False, "kept")):
        runs += [(f"tail_{tag}", PruneSpec(mode="tail", tau=tau, prune_null=null)),
                 (f"head_{tag}", PruneSpec(mode="head", k=k, prune_null=null))]
    runs.append(("head_y_only", PruneSpec(mode="head", k=k, part="y", prune_null=True)))
    for i in range(plan.random_draws):
        runs.append((f"random_{i}", PruneSpec(dims=tuple(int(x) for x in rng.choice(dim, size=k, replace=False)))))
    for null, tag in ((True, "pruned"), (False, "kept")):
        runs += [(f"first_{tag}", PruneSpec(mode="tail", tau=tau, schedule="first", prune_null=null)),
                 (f"last_{tag}", PruneSpec(mode="tail", tau=tau, schedule=f"last:{last_k}", prune_null=null))]
    return runs


def run_all(generator, plan: SamplingPlan, runs, progress=None, cancel=None) -> dict[str, RunResult]:
    """Sample every run; read-outs from dtviz.evaluation.quality. A run the source cannot do (e.g. y-only on a
    text-to-image pipeline) keeps its one-sentence reason in ``error``."""
    from dtviz.evaluation.quality import class_accuracy, classifier_for, pixel_drift, template_accuracy, template_matcher_for
    from dtviz.sampling.generate import SampleSettings
    from dtviz.sampling.queue import Cancelled

    source = generator.source
    labels = np.repeat(np.asarray(plan.classes, dtype=np.int64), plan.per_class)
    settings = SampleSettings(steps=plan.steps, cfg_scale=plan.cfg_scale, seed=plan.seed, sampler=plan.sampler)
    clf, matcher = classifier_for(source), template_matcher_for(source)
    out, base = {}, None
    for i, (name, spec) in enumerate(runs):
        if progress is not None:
            progress(i, len(runs), name)
        res = RunResult(name, spec)
        try:
            images = generator.sample(labels, settings, prune=spec, cancel=cancel)
        except DtvizInputError as err:
            if spec is None or isinstance(err, Cancelled):
                raise
            res.error = str(err)
            out[name] = res
            continue
        if spec is None:
            base = images
        if clf is not None:
            res.accuracy = class_accuracy(images, labels, clf)
        if matcher is not None:
            res.template_accuracy = template_accuracy(images, labels, matcher)
        drift = pixel_drift(base, images)
        res.mse, res.psnr = drift["mse"], drift["psnr"]
        out[name] = res
    if progress is not None:
        progress(len(runs), len(runs), "done")
    return out


def _readout(r: RunResult | None) -> str:
    if r is None or r.error:
        return "–"
    if r.accuracy is not None:
        return pct(r.accuracy)
    return "∞ dB" if not np.isfinite(r.psnr) else f"{r.psnr:.1f} dB"


def _keeps(r: RunResult, base: RunResult) -> bool:
    """Quality kept: accuracy within ACCURACY_POINTS, or (no classifier) PSNR ≥ PSNR_SAME."""
    if r is None or r.error:
        return False
    if base.accuracy is not None:
        return r.accuracy >= base.accuracy - ACCURACY_POINTS
    return r.psnr >= PSNR_SAME


def _evidence(results: dict) -> dict:
    return {name: {"spec": None if r.spec is None else r.spec.label(), "accuracy": r.accuracy,
                   "template_accuracy": r.template_accuracy, "mse": r.mse, "psnr": r.psnr, "error": r.error}
            for name, r in results.items()}


def tail_row(results: dict, plan: SamplingPlan, tau: float, removed: int, dim: int):
    base, kept, pruned = results["baseline"], results["tail_kept"], results["tail_pruned"]
    ok = [_keeps(pruned, base), _keeps(kept, base)]
    verdict = HOLDS if all(ok) else PARTLY if any(ok) else FAILS
    measured = (f"τ = {tau:.4g} removes {removed}/{dim} dims ({pct(removed / dim)}): {_readout(base)} → "
                f"{_readout(pruned)} (null rows pruned) / {_readout(kept)} (kept); {plan.samples} samples")
    return row("prune_tail", measured, verdict, {"tau": tau, "removed_dims": removed, "dim": dim, "samples": plan.samples,
                                                 "runs": _evidence({k: results[k] for k in ("baseline", "tail_pruned", "tail_kept")})})


def head_row(results: dict, plan: SamplingPlan, dim: int):
    base = results["baseline"]
    head_p, head_k, y_only = results["head_pruned"], results["head_kept"], results["head_y_only"]
    randoms = [r for n, r in results.items() if n.startswith("random_") and not r.error]
    k = min(plan.head_k, dim)
    if base.accuracy is not None:
        cost_p, cost_k = base.accuracy - head_p.accuracy, base.accuracy - head_k.accuracy
        cost_r = base.accuracy - float(np.mean([r.accuracy for r in randoms])) if randoms else float("nan")
        ok_random = cost_r < RANDOM_COST
        verdict = (HOLDS if cost_p >= HEAD_COST and ok_random else
                   PARTLY if (cost_p >= HEAD_COST or cost_k >= HEAD_COST) else FAILS)
        random_text = pct(float(np.mean([r.accuracy for r in randoms]))) if randoms else "–"
    else:
        mse_r = float(np.mean([r.mse for r in randoms])) if randoms else float("nan")
        ratio_p = head_p.mse / mse_r if mse_r > 0 else float("inf")
        ratio_k = head_k.mse / mse_r if mse_r > 0 else float("inf")
        verdict = HOLDS if ratio_p >= DRIFT_RATIO else PARTLY if ratio_k >= DRIFT_RATIO else FAILS
        random_text = f"{10 * np.log10(1 / mse_r):.1f} dB" if mse_r > 0 else "∞ dB"
    y_text = "not available: " + y_only.error.rstrip(".") if y_only.error else _readout(y_only)
    measured = (f"k = {k}: {_readout(base)} → {_readout(head_p)} (null rows pruned) / {_readout(head_k)} (kept); "
                f"controls: only y removed from those dims {y_text}, {k} random dims {random_text} "
                f"(mean of {len(randoms)} draws)")
    names = ["baseline", "head_pruned", "head_kept", "head_y_only"] + [n for n in results if n.startswith("random_")]
    return row("prune_head", measured, verdict, {"k": k, "samples": plan.samples, "runs": _evidence({n: results[n] for n in names})})


def late_row(results: dict, plan: SamplingPlan, last_k: int):
    base, every = results["baseline"], results["tail_pruned"]
    first, last = results["first_pruned"], results["last_pruned"]
    first_ok, last_ok = _keeps(first, base), _keeps(last, base)
    if base.accuracy is not None:
        late_no_worse = last.accuracy >= every.accuracy - 0.01
    else:
        late_no_worse = last.psnr >= every.psnr - 1.0
    verdict = HOLDS if first_ok and last_ok and late_no_worse else PARTLY if (first_ok or last_ok) else FAILS
    measured = (f"{_readout(base)} unpruned; tail at t0 only {_readout(first)} (kept null rows: "
                f"{_readout(results['first_kept'])}), in the last K = {last_k} evaluations {_readout(last)} "
                f"({_readout(results['last_kept'])}), every step {_readout(every)}")
    names = ["baseline", "tail_pruned", "first_pruned", "first_kept", "last_pruned", "last_kept"]
    return row("late_vs_t0", measured, verdict, {"last_k": last_k, "samples": plan.samples,
                                                  "runs": _evidence({n: results[n] for n in names})})


def sampling_claims(source, plan: SamplingPlan | None = None, generator=None, progress=None, cancel=None) -> list:
    """The rows of SAMPLING_IDS. ``progress(i, n, name)`` before each run; ``cancel`` a CancelToken."""
    if not source.info.can_sample and generator is None:
        why = f"not measurable: {source.info.name} cannot sample ({source.info.sample_note.rstrip('.')})."
        return [not_measurable(cid, why) for cid in SAMPLING_IDS]
    if generator is None:
        from dtviz.sampling.generate import Generator

        generator = Generator(source)
    plan = plan or default_plan(source)
    tau = plan.tau if plan.tau is not None else source_tau(source)
    sampler = generator.sampler(plan.steps, plan.sampler)
    steps = len(sampler.timesteps()) if not getattr(sampler, "adaptive", False) else 0
    if not steps:
        return [not_measurable(cid, "not measurable: the adaptive ODE sampler has no fixed last steps; give --sampler "
                               "euler or heun.") for cid in SAMPLING_IDS]
    runs = plan_runs(plan, tau, source.dim, steps)
    results = run_all(generator, plan, runs, progress, cancel)
    removed = int((~generator.global_mask(PruneSpec(mode="tail", tau=tau))).sum())
    last_k = next(int(s.schedule.split(":")[1]) for n, s in runs if n == "last_pruned")
    return [tail_row(results, plan, tau, removed, source.dim), head_row(results, plan, source.dim),
            late_row(results, plan, last_k)]
