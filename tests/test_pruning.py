"""Pruning hooks against the exact oracle, specs, masks, and quality read-outs.

Oracle: SiLU(0) = 0, so zeroing c_i before every adaLN_modulation equals zeroing column i of every
adaLN Linear weight (blocks and final layer). Rows with different masks are run as the whole batch
through the model zeroed for that row and picked out, so batch shapes match and the comparison is exact.
"""
from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dtviz.errors import DtvizInputError
from dtviz.pruning.spec import (PruneSpec, format_schedule, global_mask, keep_mask, keep_mask_torch, parse_schedule,
                           removed_dims, schedule_active, spec_removed_dims)
from dtviz.pruning.hooks import adaln_modules, pruned
from dtviz.sampling.samplers import DDIMSampler, EulerFlowSampler, guided_denoiser
from dtviz.analysis.stats import head_dims, mean_vector, tail_dims, topk_dims
from tests.factories import randomized_dit, save_model_folder, tiny_config

NUM_CLASSES = 10


@pytest.fixture(scope="module")
def model():
    return randomized_dit(tiny_config(NUM_CLASSES, hidden=32, depth=2, in_channels=1, learn_sigma=False), seed=3)


def save_tiny_folder(path: str, family: str = "sit", seed: int = 0, input_size: int = 8, patch: int = 2,
                     classifier: bool = False, steps: int = 4) -> str:
    """A dtviz model folder (config.json + model.safetensors) holding a tiny random 1-channel model."""
    cfg = tiny_config(NUM_CLASSES, hidden=32, depth=2, in_channels=1, learn_sigma=False, input_size=input_size, patch=patch)
    extra = {"class_names": [f"glyph {i}" for i in range(NUM_CLASSES)]}
    if classifier:
        from dtviz.builtin.classifier import GlyphClassifier

        torch.manual_seed(seed)
        clf = GlyphClassifier(NUM_CLASSES, width=4, size=input_size)
        os.makedirs(path, exist_ok=True)
        save_file({k: v.contiguous() for k, v in clf.state_dict().items()}, os.path.join(path, "classifier.safetensors"))
        extra["classifier"] = {"file": "classifier.safetensors", "input_range": [0, 1]}
    # Euler for flow families: the pruning tests count fixed steps (SiT's own default, the adaptive ODE, has none)
    sampler = {"steps": steps} if family in ("dit", "mdt") else {"name": "euler", "steps": steps}
    save_model_folder(path, randomized_dit(cfg, seed=seed), family, sampler, extra)
    return path


# ------------------------------------------------------------------------------------------ oracle

def reference_keep(v: np.ndarray, spec: PruneSpec) -> np.ndarray:
    """(d,) keep-mask built from dtviz.analysis.stats alone (independent of dtviz.pruning.spec.keep_mask)."""
    if spec.dims is not None:
        removed = list(spec.dims)
    elif spec.tau is not None:
        removed = tail_dims(v, spec.tau) if spec.mode == "tail" else head_dims(v, spec.tau)
    else:
        removed = topk_dims(v, spec.k, largest=spec.mode == "head")
    keep = np.ones(len(v), dtype=bool)
    keep[removed] = False
    return keep


def zero_columns(model, keep: np.ndarray):
    """A copy of ``model`` with column i of every adaLN Linear weight zeroed where keep[i] is False."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for _, module in adaln_modules(m):
            module[-1].weight[:, torch.from_numpy(~keep)] = 0
    return m


class Oracle(torch.nn.Module):
    """model(x, t, y) with rows pruned by weight-zeroed copies; ``on_step`` follows the sampler."""

    def __init__(self, model, spec: PruneSpec, mask: np.ndarray | None):
        super().__init__()
        self.model, self.spec, self.mask = model, spec, mask
        self.step = self.num_steps = None
        self._zeroed = {}

    def on_step(self, i, n):
        self.step, self.num_steps = i, n

    def row_keeps(self, t, y) -> np.ndarray:
        c = self.model.condition(t, y).detach().double().numpy()  # (B, d), the vector the adaLN modules receive
        keeps = np.ones(c.shape, dtype=bool)
        if self.spec.schedule != "every" and not self.spec.is_active(self.step, self.num_steps):
            return keeps
        for r in range(len(c)):
            if y[r] == NUM_CLASSES and not self.spec.prune_null:
                continue
            keeps[r] = self.mask if self.mask is not None else reference_keep(c[r], self.spec)
        return keeps

    def forward(self, x, t, y):
        keeps = self.row_keeps(t, y)
        out = None
        for pattern in np.unique(keeps, axis=0):
            key = pattern.tobytes()
            if key not in self._zeroed:
                self._zeroed[key] = self.model if pattern.all() else zero_columns(self.model, pattern)
            rows = torch.from_numpy((keeps == pattern).all(1))
            full = self._zeroed[key](x, t, y)  # the whole batch: same shapes as the hooked run
            out = full if out is None else torch.where(rows[:, None, None, None], full, out)
        return out


def class_mean_mask(model, spec: PruneSpec, t0: float) -> np.ndarray:
    """The global mask from c̄ at t0 over the model's classes (what global_mask reads off a source)."""
    E = model.condition(torch.full((NUM_CLASSES,), t0), torch.arange(NUM_CLASSES)).detach().double().numpy()
    return reference_keep(mean_vector(E), spec)


SELECTIONS = [dict(mode="tail", tau=0.3), dict(mode="head", tau=0.6), dict(mode="tail", k=12), dict(mode="head", k=3),
              dict(dims=(5,)), dict(dims=(0, 7, 31))]  # explicit dims: the dashboard's one-dimension ablation


@torch.no_grad()
@pytest.mark.parametrize("mask_kind", ["global", "per-sample"])
@pytest.mark.parametrize("prune_null", [False, True])
@pytest.mark.parametrize("selection", SELECTIONS, ids=lambda s: "-".join(map(str, s.values())))
def test_forward_matches_weight_zeroing_oracle(model, mask_kind, prune_null, selection):
    spec = PruneSpec(mask=mask_kind, prune_null=prune_null, **selection)
    mask = class_mean_mask(model, spec, 0.0) if mask_kind == "global" else None
    assert mask is None or 0 < (~mask).sum() < len(mask)
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 3, 7, 9])
    x = torch.randn(4, 1, 8, 8, generator=g)
    # A CFG batch [cond; null], as guided_denoiser builds it.
    xb, tb, yb = torch.cat([x, x]), torch.full((8,), 0.37), torch.cat([y, torch.full_like(y, NUM_CLASSES)])
    with pruned(model, spec, mask=mask) as pruner:
        hooked = model(xb, tb, yb)
    expected = Oracle(model, spec, mask)(xb, tb, yb)
    assert torch.equal(hooked, expected)
    assert not torch.equal(hooked, model(xb, tb, yb))  # something was pruned
    if not prune_null:  # null rows untouched
        assert torch.equal(hooked[4:], model(xb, tb, yb)[4:])
    assert pruner.pruned_steps == []  # no sampler: no steps counted


def zero_label_columns(model, removed: np.ndarray, null_too: bool):
    """A copy of ``model`` whose label table has column i zeroed for removed dims (every class row; the null row
    too when ``null_too``): the oracle of removing only the label part y of c in those dims (c_i -> t_i)."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        table = m.y_embedder.embedding_table.weight
        rows = slice(None) if null_too else slice(0, NUM_CLASSES)
        cols = torch.from_numpy(removed)
        table[rows, cols] = 0
    return m


@torch.no_grad()
@pytest.mark.parametrize("prune_null", [False, True])
@pytest.mark.parametrize("selection", [dict(mode="head", k=3), dict(dims=(0, 7, 31)), dict(mode="tail", tau=0.3)],
                         ids=lambda s: "-".join(map(str, s.values())))
def test_removing_only_the_label_part_equals_zeroed_label_columns(model, prune_null, selection):
    spec = PruneSpec(part="y", prune_null=prune_null, **selection)
    mask = class_mean_mask(model, spec, 0.0)
    g = torch.Generator().manual_seed(1)
    y = torch.tensor([0, 3, 7, 9])
    x = torch.randn(4, 1, 8, 8, generator=g)
    xb, tb, yb = torch.cat([x, x]), torch.full((8,), 0.37), torch.cat([y, torch.full_like(y, NUM_CLASSES)])
    with pruned(model, spec, mask=mask):
        hooked = model(xb, tb, yb)
        c_hooked = model.condition(tb, yb)
    expected = zero_label_columns(model, np.flatnonzero(~mask), prune_null)(xb, tb, yb)
    assert torch.equal(hooked, expected)
    # c_i becomes t_i in the removed dims of the pruned rows, and stays c elsewhere
    t_part = model.t_embedder(tb)
    c_full = model.condition(tb, yb)
    rows = slice(None) if prune_null else slice(0, 4)
    removed = torch.from_numpy(~mask)
    assert torch.equal(c_hooked[rows][:, removed], t_part[rows][:, removed])
    assert torch.equal(c_hooked[:, ~removed], c_full[:, ~removed])
    if not prune_null:
        assert torch.equal(hooked[4:], model(xb, tb, yb)[4:])


SAMPLERS = {
    "sit-euler": (lambda: EulerFlowSampler(steps=6, t_start=0.0, t_end=1.0), None),
    "repa-interval": (lambda: EulerFlowSampler(steps=6, t_start=1.0, t_end=0.0), (0.0, 0.7)),  # CFG on 3 of 6 steps
    "dit-ddim": (lambda: DDIMSampler(steps=6), None),
}


@torch.no_grad()
@pytest.mark.parametrize("schedule,expected_steps", [("every", [0, 1, 2, 3, 4, 5]), ("first", [0]), ("last:2", [4, 5])])
@pytest.mark.parametrize("mask_kind,prune_null", [("global", False), ("per-sample", False), ("global", True), ("per-sample", True)])
@pytest.mark.parametrize("sampler_name", list(SAMPLERS))
def test_sampling_schedules_match_oracle(model, schedule, expected_steps, mask_kind, prune_null, sampler_name):
    make_sampler, interval = SAMPLERS[sampler_name]
    spec = PruneSpec(mode="tail", tau=0.3, mask=mask_kind, schedule=schedule, prune_null=prune_null)
    mask = class_mean_mask(model, spec, 0.0) if mask_kind == "global" else None
    labels = torch.tensor([1, 4, 8])
    noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))

    with pruned(model, spec, mask=mask, null_class=NUM_CLASSES) as pruner:
        hooked = make_sampler().sample(guided_denoiser(model, NUM_CLASSES, 4.0, None, interval), noise, labels,
                                       on_step=pruner.on_step)
    oracle = Oracle(model, spec, mask)
    expected = make_sampler().sample(guided_denoiser(oracle, NUM_CLASSES, 4.0, None, interval), noise, labels,
                                     on_step=oracle.on_step)
    baseline = make_sampler().sample(guided_denoiser(model, NUM_CLASSES, 4.0, None, interval), noise, labels)
    assert torch.equal(hooked, expected)
    assert not torch.equal(hooked, baseline)
    assert pruner.pruned_steps == expected_steps


def test_schedule_needs_on_step(model):
    spec = PruneSpec(tau=0.3, schedule="first")
    with pytest.raises(DtvizInputError, match="on_step"):
        with pruned(model, spec, mask=class_mean_mask(model, spec, 0.0)):
            model(torch.zeros(1, 1, 8, 8), torch.zeros(1), torch.zeros(1, dtype=torch.long))


# --------------------------------------------------------------------------------- model unchanged

def hook_count(model) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())


@torch.no_grad()
def test_hooks_removed_after_exception(model):
    spec = PruneSpec(mode="head", k=4)
    mask = class_mean_mask(model, spec, 0.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, t, y = torch.randn(2, 1, 8, 8), torch.full((2,), 0.5), torch.tensor([2, NUM_CLASSES])
    clean = model(x, t, y)
    with pytest.raises(RuntimeError, match="boom"):
        with pruned(model, spec, mask=mask):
            assert hook_count(model) == 1 + len(adaln_modules(model))
            model(x, t, y)
            raise RuntimeError("boom")
    # An error raised inside a hook (a mask of the wrong size) also leaves nothing behind.
    with pytest.raises(DtvizInputError, match="one entry per dim"):
        with pruned(model, spec, mask=np.ones(5, dtype=bool)):
            model(x, t, y)
    assert hook_count(model) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(model(x, t, y), clean)


def test_pruned_refuses_bad_inputs(model):
    with pytest.raises(DtvizInputError, match="keep-mask"):
        with pruned(model, PruneSpec(tau=0.1)):
            pass
    with pytest.raises(DtvizInputError, match="adaLN_modulation"):
        with pruned(torch.nn.Linear(2, 2), PruneSpec(tau=0.1, mask="per-sample")):
            pass
    assert hook_count(model) == 0


# ------------------------------------------------------------------------------------- generation

@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory):
    import dtviz

    return dtviz.load(save_tiny_folder(str(tmp_path_factory.mktemp("tiny") / "model")), device="cpu")


def test_generator_tau_zero_is_bit_identical_and_model_unchanged(tiny_source):
    from dtviz.sampling.generate import Generator, SampleSettings

    gen = Generator(tiny_source)
    state = {k: v.clone() for k, v in gen.model.state_dict().items()}
    labels, settings = [0, 1, 5, 9], SampleSettings(seed=7)
    baseline = gen.sample(labels, settings)
    for mask_kind in ("global", "per-sample"):
        same = gen.sample(labels, settings, prune=PruneSpec(mode="tail", tau=0.0, mask=mask_kind))
        assert np.array_equal(same, baseline)
    steps = []
    changed = gen.sample(labels, settings, prune=PruneSpec(mode="head", k=4, schedule="last:2"),
                         on_step=lambda i, n: steps.append((i, n)))
    assert steps == [(i, 4) for i in range(4)]  # the caller's on_step still runs
    assert not np.array_equal(changed, baseline)
    assert hook_count(gen.model) == 0
    assert all(torch.equal(state[k], v) for k, v in gen.model.state_dict().items())
    assert np.array_equal(gen.sample(labels, settings), baseline)


def test_global_mask_is_the_stats_tail(tiny_source):
    from dtviz.cli.main import stats_summary

    for tau in (0.05, 0.2, 0.5):
        spec = PruneSpec(mode="tail", tau=tau)
        keep = global_mask(tiny_source, spec)
        s = stats_summary(tiny_source, tau=tau)  # what `dtviz stats --tau` reports
        assert np.flatnonzero(keep).tolist() == s["head_dims"]
        assert removed_dims(keep) == (s["tail_count"], s["tail_count"] / s["dim"])
        assert spec_removed_dims(tiny_source, spec) == removed_dims(keep)
        head = global_mask(tiny_source, PruneSpec(mode="head", tau=tau))
        assert np.array_equal(head, ~keep)
    count, share = spec_removed_dims(tiny_source, PruneSpec(tau=0.2, mask="per-sample"), classes=[0, 1])
    E = tiny_source.embeddings([0, 1])
    assert count == pytest.approx((np.abs(E) < 0.2).sum(1).mean()) and share == pytest.approx(count / E.shape[1])


# ------------------------------------------------------------------------------------ spec, masks

def test_prune_spec_validation_and_names():
    spec = PruneSpec(mode="tail", tau=0.01, schedule=" Last:10 ")
    assert spec.schedule == "last:10" and spec.label() == "tail tau=0.01 last:10" and spec.slug() == "tail_tau0.01_last10"
    assert PruneSpec(tau=0.01).label() == "tail tau=0.01 every"
    assert PruneSpec(mode="head", k=4, mask="per-sample", prune_null=False).label() == "head k=4 every per-sample null-kept"
    assert PruneSpec(mode="head", k=4, mask="per-sample", prune_null=False).slug() == "head_k4_every_per-sample_nullkept"
    y_only = PruneSpec(mode="head", k=8, part="y")
    assert y_only.prune_null and y_only.label() == "head k=8 every y-only" and y_only.slug() == "head_k8_every_yonly"
    assert PruneSpec(mode="head", k=4, schedule="first").slug() == "head_k4_first"
    assert PruneSpec(tau=0.01) == PruneSpec(tau=0.01, schedule="every") and len({PruneSpec(tau=0), PruneSpec(tau=0.0)}) == 1
    with pytest.raises(Exception):
        spec.tau = 0.5  # frozen
    for bad in (dict(), dict(tau=0.1, k=2), dict(tau=-1), dict(tau=float("nan")), dict(k=-1), dict(k=1.5),
                dict(tau=0.1, mode="middle"), dict(tau=0.1, mask="local"), dict(tau=0.1, schedule="last:0"),
                dict(tau=0.1, schedule="lats:3"), dict(tau=0.1, schedule="last:x"), dict(tau=0.1, dims=(1,)),
                dict(dims=()), dict(dims=(-1,)), dict(dims=(1.5,)), dict(dims=(True,)), dict(dims=("a",)),
                dict(dims=(float("nan"),)), dict(tau=0.1, part="t"), dict(tau=0.1, part="y", mask="per-sample")):
        with pytest.raises(DtvizInputError):
            PruneSpec(**bad)


def test_prune_spec_with_explicit_dims():
    spec = PruneSpec(dims=[31, 3, 3])
    assert spec.dims == (3, 31) and PruneSpec(dims=7).dims == (7,) and PruneSpec(dims=(7,)) == PruneSpec(dims=7)
    assert spec.label() == "dims=3,31 every" and spec.slug() == "dims3-31_every" and spec.selection == "dims=3,31"
    assert PruneSpec(dims=(4,), mask="per-sample", schedule="last:2", prune_null=False).label() == "dims=4 last:2 per-sample null-kept"
    v = np.linspace(-1, 1, 32)
    assert np.flatnonzero(~keep_mask(v, spec)).tolist() == [3, 31]  # whatever the values
    assert np.array_equal(keep_mask_torch(torch.from_numpy(np.stack([v, -v])), spec).numpy(), np.stack([keep_mask(v, spec)] * 2))
    assert removed_dims(keep_mask(v, spec)) == (2, 2 / 32)
    with pytest.raises(DtvizInputError, match="0..31"):
        keep_mask(v, PruneSpec(dims=(32,)))


def test_schedules():
    assert parse_schedule("every") == ("every", 0) and parse_schedule("first") == ("first", 0)
    assert parse_schedule("last:10") == ("last", 10) and format_schedule("last", 10) == "last:10"
    for text in ("every", "first", "last:3"):
        assert format_schedule(*parse_schedule(text)) == text
    n = 8
    assert [i for i in range(n) if schedule_active("every", i, n)] == list(range(8))
    assert [i for i in range(n) if schedule_active("first", i, n)] == [0]
    assert [i for i in range(n) if schedule_active("last:3", i, n)] == [5, 6, 7]
    assert [i for i in range(n) if schedule_active("last:20", i, n)] == list(range(8))


@pytest.mark.parametrize("selection", SELECTIONS + [dict(mode="tail", k=0), dict(mode="head", k=99), dict(mode="tail", tau=0.0)],
                         ids=lambda s: "-".join(map(str, s.values())))
def test_keep_mask_numpy_torch_and_stats_agree(selection):
    rng = np.random.default_rng(0)
    E = np.round(rng.normal(0, 0.5, (6, 32)), 1).astype(np.float32)  # rounded: many ties for k
    spec = PruneSpec(**selection)
    ref = np.stack([reference_keep(row.astype(np.float64), spec) for row in E])
    assert np.array_equal(keep_mask(E, spec), ref)
    assert np.array_equal(keep_mask_torch(torch.from_numpy(E), spec).numpy(), ref)
    assert np.array_equal(keep_mask(E[0], spec), ref[0])
    if spec.k is not None:
        assert ((~ref).sum(1) == min(spec.k, 32)).all()


# ---------------------------------------------------------------------------------------- quality

def test_pixel_drift():
    from dtviz.evaluation.quality import per_sample_mse, pixel_drift

    a = np.zeros((2, 4, 4, 1), np.float32)
    assert pixel_drift(a, a) == {"mse": 0.0, "psnr": float("inf")}
    b = a.copy()
    b[0] = 0.1
    assert per_sample_mse(a, b) == pytest.approx([0.01, 0.0])
    d = pixel_drift(a, b)
    assert d["mse"] == pytest.approx(0.005) and d["psnr"] == pytest.approx(10 * np.log10(1 / 0.005))
    with pytest.raises(DtvizInputError):
        pixel_drift(a, b[:1])


def test_class_accuracy_with_a_classifier(tmp_path, tiny_source):
    from dtviz.evaluation.quality import class_accuracy, classifier_for

    assert classifier_for(tiny_source) is None  # no classifier: no accuracy, never a made-up one
    import dtviz

    src = dtviz.load(save_tiny_folder(str(tmp_path / "m"), input_size=16, patch=4, classifier=True), device="cpu")
    clf = classifier_for(src)
    images = np.random.default_rng(0).random((6, 16, 16, 1)).astype(np.float32)
    pred = clf.predict(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
    labels = pred.copy()
    labels[:2] = (labels[:2] + 1) % NUM_CLASSES
    assert class_accuracy(images, labels, clf) == pytest.approx(4 / 6)
    with pytest.raises(DtvizInputError, match="expects"):
        class_accuracy(np.zeros((2, 8, 8, 1)), [0, 1], clf)


def test_sample_readout(tiny_source, tmp_path):
    """The live page's one call per release: samples, removed dims, drift against the baseline, accuracy."""
    import dtviz
    from dtviz.evaluation.quality import sample_readout
    from dtviz.sampling.generate import Generator, SampleSettings
    from dtviz.evaluation.quality import classifier_for, class_accuracy, pixel_drift

    gen = Generator(tiny_source)
    labels, settings = [0, 1, 1, 5], SampleSettings(seed=2)
    base = sample_readout(gen, labels, settings)
    assert base["removed"] == (0, 0.0) and base["drift"] is None and base["accuracy"] is None
    assert np.array_equal(base["images"], gen.sample(labels, settings))
    spec = PruneSpec(mode="head", k=3, mask="per-sample")
    out = sample_readout(gen, labels, settings, spec, base["images"])
    assert np.array_equal(out["images"], gen.sample(labels, settings, prune=spec))
    assert out["removed"] == spec_removed_dims(tiny_source, spec, classes=[0, 1, 5])
    assert out["drift"] == pixel_drift(base["images"], out["images"])
    src = dtviz.load(save_tiny_folder(str(tmp_path / "m"), input_size=16, patch=4, classifier=True), device="cpu")
    clf = classifier_for(src)
    with_clf = sample_readout(Generator(src), labels, settings, classifier=clf)
    assert with_clf["accuracy"] == class_accuracy(with_clf["images"], labels, clf)


# ------------------------------------------------------------------------------------- concurrency

def test_generator_shared_by_threads_keeps_each_call_to_itself(tiny_source):
    """The dashboard shares one Generator between sessions: a pruned and an unpruned call running at the same
    time must each give exactly what they give alone (the pruning hooks live on the shared model)."""
    import threading

    from dtviz.sampling.generate import Generator, SampleSettings

    gen = Generator(tiny_source)
    labels, settings = list(range(NUM_CLASSES)) * 2, SampleSettings(steps=12, seed=3)
    spec = PruneSpec(mode="head", k=6)
    alone = {"pruned": gen.sample(labels, settings, prune=spec), "baseline": gen.sample(labels, settings)}
    assert not np.array_equal(alone["pruned"], alone["baseline"])
    results = {name: [] for name in alone}
    start = threading.Barrier(2)
    errors = []

    def work(name):
        try:
            start.wait()
            for _ in range(4):
                results[name].append(gen.sample(labels, settings, prune=spec if name == "pruned" else None))
        except Exception as err:  # noqa: BLE001 — reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(name,)) for name in alone]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors and not any(th.is_alive() for th in threads)
    for name, runs in results.items():
        assert len(runs) == 4 and all(np.array_equal(r, alone[name]) for r in runs), name
    assert hook_count(gen.model) == 0
