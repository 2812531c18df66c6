"""Pruned-c guidance, D = D_u + s·(D_c − D_u) + w·(D_c − D_P(c)), against a direct implementation: the weak branch is
a copy of the model with the pruned dims' columns zeroed in every adaLN Linear (SiLU(0) = 0), the sampler the same
DDPM loop with the same noise."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import dtviz
from dtviz.errors import DtvizInputError
from dtviz.sampling.generate import Generator, SampleSettings
from dtviz.pruning.spec import PruneSpec
from dtviz.sampling.samplers import DDPMSampler
from dtviz.sampling.seeding import initial_noise, noise_generators
from tests.test_app import steady_state_navigation  # noqa: F401 — autouse: AppTest in st.navigation mode
from tests.test_pruning import NUM_CLASSES, save_tiny_folder

LABELS = [0, 3, 7]
TAU = 0.3


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    source = dtviz.load(save_tiny_folder(str(tmp_path_factory.mktemp("pg") / "model"), family="dit"), device="cpu")
    return Generator(source)


def column_oracle(model, source, tau: float):
    """The model with column i of every adaLN Linear zeroed for each |c̄_i| < τ (c̄ over all classes at t0)."""
    removed = np.flatnonzero(np.abs(source.embeddings().astype(np.float64).mean(0)) < tau)
    assert 0 < len(removed) < source.dim
    weak = copy.deepcopy(model)
    with torch.no_grad():
        for name, module in weak.named_modules():
            if name.endswith("adaLN_modulation"):
                module[-1].weight[:, removed] = 0
    return weak


def direct(gen, cfg: float, w: float, active_steps=None, seed: int = 0) -> np.ndarray:
    """The formula written out, on the generator's own DDPM sampler settings and noise."""
    model, weak = gen.model, column_oracle(gen.model, gen.source, TAU)
    null, step = gen.source.num_classes, {"i": 0}

    def on_step(i, n):
        step["i"] = i

    @torch.no_grad()
    def denoise(x, t, y):
        if cfg > 1:
            cond, uncond = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null)])).chunk(2)
            out = uncond + cfg * (cond - uncond)
        else:
            cond = out = model(x, t, y)
        if active_steps is None or step["i"] in active_steps:
            out = out + w * (cond - weak(x, t, y))
        return out

    rows = np.arange(len(LABELS))
    noise = initial_noise(gen.image_shape, seed, rows, "cpu")
    sampler = gen.sampler()
    assert isinstance(sampler, DDPMSampler) and not sampler.learned_sigma
    x = sampler.sample(denoise, noise, torch.tensor(LABELS), on_step=on_step, generator=noise_generators(seed, rows))
    return ((x.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("cfg,w,schedule,active", [(4.0, 2.0, "every", None), (1.0, 1.5, "every", None),
                                                   (3.0, 2.5, "last:2", {2, 3})])
def test_sampler_option_equals_direct_formula(gen, cfg, w, schedule, active):
    spec = PruneSpec(mode="tail", tau=TAU, schedule=schedule)
    got = gen.sample(LABELS, SampleSettings(cfg_scale=cfg, pruned_guidance=w), prune=spec)
    expected = direct(gen, cfg, w, active)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    plain = gen.sample(LABELS, SampleSettings(cfg_scale=cfg))
    assert np.abs(got - plain).max() > 1e-3  # the guidance term does something


def test_weight_zero_is_plain_cfg_and_c_is_never_pruned(gen):
    spec = PruneSpec(mode="head", k=3)
    plain = gen.sample(LABELS, SampleSettings(cfg_scale=4.0))
    assert np.array_equal(gen.sample(LABELS, SampleSettings(cfg_scale=4.0, pruned_guidance=0.0), prune=spec), plain)


def test_one_sentence_errors(gen):
    with pytest.raises(DtvizInputError, match="needs a pruning spec"):
        gen.sample(LABELS, SampleSettings(pruned_guidance=1.0))
    with pytest.raises(DtvizInputError, match="finite number"):
        gen.sample(LABELS, SampleSettings(pruned_guidance=float("nan")), prune=PruneSpec(tau=0.1))
    assert NUM_CLASSES > max(LABELS)


def test_sweep_column(gen, tmp_path, capsys):
    import csv

    from dtviz.cli.main import main
    from PIL import Image

    folder = gen.source.info.extra["path"]
    out = tmp_path / "sweep"
    assert main(["sweep", folder, "--family", "dit", "--tau", f"0,{TAU}", "--classes", "0,3,7", "--cfg", "4",
                 "--pruned-guidance", "2", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "table.csv", encoding="utf-8")))
    assert [r["pruned_guidance"] for r in rows] == ["", "2", "2"]
    expected = gen.sample(LABELS, SampleSettings(cfg_scale=4.0, pruned_guidance=2.0), prune=PruneSpec(tau=TAU))
    from dtviz.sampling.generate import to_uint8

    written = [np.asarray(Image.open(p)) for p in sorted((out / rows[2]["setting"]).glob("*.png"))]
    assert np.array_equal(np.stack(written), to_uint8(expected)[..., 0])  # the sweep's row is the sampler option


def test_pruning_page_toggle_guides_with_the_pruned_c():
    """The live page's toggle: its PSNR is the library's drift of the guided samples (same classes, seed, steps)."""
    from dtviz.cli.main import select_classes
    from dtviz.pruning.defaults import pruning_defaults
    from dtviz.evaluation.quality import pixel_drift
    from dtviz.analysis.stats import ConditionStats
    from tests.test_app import metric, pruning_app

    at = pruning_app(pr_n=4, pr_steps=8, pr_mask="global", pr_contrast="false", pr_pg="true", pr_pg_w="2")
    assert at.toggle(key="pr_pg").value and at.number_input(key="pr_pg_w").value == 2.0
    source = dtviz.load("builtin")
    tau = pruning_defaults(ConditionStats().fit(source.embeddings())).tau_by_mask["global"]
    g = Generator(source)
    labels = select_classes(source.num_classes, None, 4, 0)
    settings = SampleSettings(steps=8, cfg_scale=g.defaults["cfg_scale"], seed=0)
    base = g.sample(labels, settings)
    guided = g.sample(labels, SampleSettings(**{**settings.__dict__, "pruned_guidance": 2.0}),
                      prune=PruneSpec(mode="tail", tau=tau, mask="global"))
    assert metric(at, "PSNR").value == f"{pixel_drift(base, guided)['psnr']:.1f} dB"
    assert any("pruned-c guidance w = 2" in c.value for c in at.caption)


def test_diffusers_dit_pipeline_with_its_own_scheduler(tmp_path, monkeypatch):
    """A diffusers DiT pipeline: the weak branch is the transformer with the pruned columns of every norm1.linear and
    of proj_out_1 zeroed; guidance on all 4 latent channels, as DiTPipeline guides; decoded through its VAE."""
    diffusers = pytest.importorskip("diffusers")
    from dtviz.sampling.seeding import noise_generators
    from tests.test_release_schedules import tiny_pipeline

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    source = dtviz.load(tiny_pipeline(tmp_path / "ddim", diffusers.DDIMScheduler()), device="cpu")
    g = Generator(source)
    dims, labels, seed, cfg, w, steps = (0, 5, 11), [3, 999], 11, 4.0, 1.5, 6
    zeroed = copy.deepcopy(source.transformer)
    with torch.no_grad():
        for block in zeroed.transformer_blocks:
            block.norm1.linear.weight[:, list(dims)] = 0
        zeroed.proj_out_1.weight[:, list(dims)] = 0
    got = g.sample(labels, SampleSettings(steps=steps, cfg_scale=cfg, seed=seed, pruned_guidance=w), prune=PruneSpec(dims=dims))

    @torch.no_grad()
    def denoise(x, t, y):
        cond, uncond = source.transformer(torch.cat([x, x]), timestep=torch.cat([t, t]),
                                          class_labels=torch.cat([y, torch.full_like(y, 1000)])).sample.chunk(2)
        weak = zeroed(x, timestep=t, class_labels=y).sample
        guided = uncond[:, :4] + cfg * (cond[:, :4] - uncond[:, :4]) + w * (cond[:, :4] - weak[:, :4])
        return torch.cat([guided, cond[:, 4:]], dim=1)

    rows = range(len(labels))
    x = g.sampler(steps).sample(denoise, initial_noise((4, 8, 8), seed, rows, "cpu"), torch.tensor(labels),
                                generator=noise_generators(seed, rows))
    np.testing.assert_allclose(got, g._to_images(x), atol=1e-6, rtol=0)
    assert np.abs(got - g.sample(labels, SampleSettings(steps=steps, cfg_scale=cfg, seed=seed))).max() > 1e-4
