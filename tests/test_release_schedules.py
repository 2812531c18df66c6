"""Each release's own timesteps, schedulers and VAE scaling (issue 10, items 2, 3, 4 and 10).

    DDIM        DiT's ``space_timesteps(1000, "ddimN")``, written out independently here (the smallest integer
                stride k with ⌈1000/k⌉ = N): N = 30 starts 986, 952, 918 (round(i·1000/N) gave 967, 933, 900)
    scheduler   a diffusers pipeline samples with its own scheduler object; the oracle is diffusers'
                DiTPipeline itself, called here on the same initial latents (diffusers' code, not dtviz's)
    t0          the pipeline scheduler's first timestep at DiTPipeline's default 50 steps (980 for DDIM leading)
    VAE         latents / config.scaling_factor (+ shift_factor) go into the decoder, not / 0.18215

Every model is tiny, random and saved at test time; the HF cache is pointed at an empty folder.
"""
from __future__ import annotations

import copy
import math
import os

import numpy as np
import pytest
import torch

import dtviz
from dtviz.cli.main import stats_summary
from dtviz.errors import DtvizInputError
from dtviz.sampling.generate import Generator, SampleSettings, initial_noise
from dtviz.pruning.spec import PruneSpec
from dtviz.pruning.hooks import pruned
from dtviz.sampling.samplers import DDIMSampler
from dtviz.sources.vae import decode
from tests.test_pruning import save_tiny_folder

diffusers = pytest.importorskip("diffusers")

LABELS, SEED = [3, 999], 11


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))


# ------------------------------------------------------------------------------------------ DDIM spacing
def dit_ddim_steps(num_timesteps: int, n: int) -> list[int]:
    """DiT respace.py "ddimN", independently: stride k is the first with ⌈T/k⌉ = n; steps 0, k, …, (n−1)·k."""
    for k in range(1, num_timesteps):
        if -(-num_timesteps // k) == n:
            return [k * i for i in range(n)]
    return []


@pytest.mark.parametrize("n", [30, 50, 7, 250, 36])
def test_ddim_timesteps_are_dit_respacing(n):
    expected = dit_ddim_steps(1000, n)[::-1]
    assert DDIMSampler(steps=n).timesteps() == expected
    if n == 30:
        assert expected[:3] == [986, 952, 918] and expected[-1] == 0


def test_ddim_step_count_dit_cannot_take_is_one_sentence(tmp_path):
    dit = Generator(dtviz.load(save_tiny_folder(str(tmp_path / "dit"), family="dit"), device="cpu"))
    assert dit.sampler(30, "ddim").timesteps()[:3] == [986, 952, 918]
    assert dit_ddim_steps(1000, 37) == []
    with pytest.raises(DtvizInputError, match=r"exactly 37 steps.*36, 38"):
        dit.sampler(37, "ddim")


# ----------------------------------------------------------------------------------- a tiny DiTPipeline
def tiny_pipeline(folder, scheduler, scaling_factor: float = 0.5) -> str:
    """DiTTransformer2DModel (1000 classes: DiTPipeline's null label is 1000; learned sigma) + AutoencoderKL with
    ``scaling_factor`` + ``scheduler``, saved by DiTPipeline.save_pretrained."""
    torch.manual_seed(0)
    transformer = diffusers.DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                                  num_layers=2, sample_size=8, patch_size=2, num_embeds_ada_norm=1000,
                                                  out_channels=8)
    with torch.no_grad():  # random everywhere: the default init zeroes adaLN and would hide mistakes
        for p in transformer.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    vae = diffusers.AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4, sample_size=16,
                                  scaling_factor=scaling_factor)
    diffusers.DiTPipeline(transformer=transformer.eval(), vae=vae.eval(), scheduler=scheduler).save_pretrained(str(folder))
    return str(folder)


def run_dit_pipeline(folder, monkeypatch, steps: int, cfg: float, transformer=None) -> np.ndarray:
    """diffusers' own DiTPipeline.__call__ from the saved folder, with dtviz's initial latents for LABELS, SEED."""
    import diffusers.pipelines.dit.pipeline_dit as pipeline_dit

    noise = initial_noise((4, 8, 8), SEED, range(len(LABELS)), "cpu")
    monkeypatch.setattr(pipeline_dit, "randn_tensor", lambda *a, **k: noise.clone())
    pipe = diffusers.DiTPipeline.from_pretrained(str(folder))
    if transformer is not None:
        pipe.transformer = transformer
    pipe.set_progress_bar_config(disable=True)
    return pipe(class_labels=LABELS, guidance_scale=cfg, num_inference_steps=steps, output_type="np").images


SCHEDULERS = {
    "dpm-multistep": lambda: diffusers.DPMSolverMultistepScheduler(),
    "ddim-trailing": lambda: diffusers.DDIMScheduler(clip_sample=False, timestep_spacing="trailing"),
    "euler": lambda: diffusers.EulerDiscreteScheduler(),
}


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_pipeline_scheduler_sampling_equals_dit_pipeline(tmp_path, monkeypatch, kind):
    folder = tiny_pipeline(tmp_path / kind, SCHEDULERS[kind]())
    gen = Generator(dtviz.load(folder, device="cpu"))
    steps, cfg = 12, 4.0
    ours = gen.sample(LABELS, SampleSettings(steps=steps, cfg_scale=cfg, seed=SEED))
    ref = run_dit_pipeline(folder, monkeypatch, steps, cfg)
    assert ours.shape == ref.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert gen.sampler_names[0] == "scheduler"
    other = run_dit_pipeline(folder, monkeypatch, steps, cfg * 1.01)  # the comparison can fail
    assert np.abs(ours - other).max() > 1e-4


def test_pipeline_scheduler_pruning_every_step_equals_pipeline_on_zeroed_columns(tmp_path, monkeypatch):
    """The weight-zeroing oracle through DiTPipeline itself; and last:K counts the scheduler's own steps."""
    folder = tiny_pipeline(tmp_path / "dpm", diffusers.DPMSolverMultistepScheduler())
    source = dtviz.load(folder, device="cpu")
    gen = Generator(source)
    dims = (0, 5, 11)
    keep = np.ones(source.dim, dtype=bool)
    keep[list(dims)] = False
    zeroed = copy.deepcopy(source.transformer)
    drop = torch.from_numpy(~keep)
    with torch.no_grad():
        for block in zeroed.transformer_blocks:
            block.norm1.linear.weight[:, drop] = 0
        zeroed.proj_out_1.weight[:, drop] = 0
    settings = SampleSettings(steps=6, cfg_scale=4.0, seed=SEED)
    ours = gen.sample(LABELS, settings, prune=PruneSpec(dims=dims, prune_null=True))
    np.testing.assert_allclose(ours, run_dit_pipeline(folder, monkeypatch, 6, 4.0, transformer=zeroed), atol=1e-5)

    sampler = gen.sampler(6)
    seen = []
    denoise = lambda x, t, y: source.transformer(torch.cat([x, x]), timestep=torch.cat([t, t]),  # noqa: E731
                                                 class_labels=torch.cat([y, torch.full_like(y, 1000)])).sample[:len(x)]
    with pruned(source.transformer, PruneSpec(dims=dims, schedule="last:2"), mask=keep) as pruner:
        sampler.sample(denoise, initial_noise((4, 8, 8), 0, [0], "cpu"), torch.tensor([3]),
                       on_step=lambda i, n: (seen.append((i, n)), pruner.on_step(i, n)))
    assert [n for _, n in seen] == [6] * 6 and pruner.pruned_steps == [4, 5]


def test_scaled_linear_pipeline_samples_with_its_scheduler_and_dit_samplers_refuse(tmp_path, monkeypatch):
    folder = tiny_pipeline(tmp_path / "sl", diffusers.DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False))
    gen = Generator(dtviz.load(folder, device="cpu"))
    ours = gen.sample(LABELS, SampleSettings(steps=5, cfg_scale=4.0, seed=SEED))
    np.testing.assert_allclose(ours, run_dit_pipeline(folder, monkeypatch, 5, 4.0), atol=1e-5)
    with pytest.raises(DtvizInputError, match="beta_schedule.*--sampler scheduler"):
        gen.sampler(5, "ddim")


# ------------------------------------------------------------------------------------------------ t0
@pytest.mark.parametrize("spacing, t0", [("leading", 980), ("trailing", 999)])
def test_pipeline_t0_is_first_timestep_of_its_scheduler_at_50_steps(tmp_path, spacing, t0):
    # facebook/DiT-XL-2-256's scheduler: DDIMScheduler, linear betas, clip_sample false, leading spacing
    folder = tiny_pipeline(tmp_path / spacing, diffusers.DDIMScheduler(clip_sample=False, timestep_spacing=spacing))
    source = dtviz.load(folder, device="cpu")
    assert source.t0 == t0
    np.testing.assert_array_equal(source.embeddings(), source.embeddings(t=t0))
    summary = stats_summary(source)
    assert summary["t"] == t0
    assert f"t0 = {t0}" in summary["family_note"] and "50 steps" in summary["family_note"]


# ------------------------------------------------------------------------------------------------ VAE
@pytest.mark.parametrize("shift", [None, 0.25])
def test_vae_decode_uses_its_config_scaling_and_shift(shift):
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4, sample_size=16,
                                  scaling_factor=0.5, shift_factor=shift).eval()
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = vae.decode(z / 0.5 + (shift or 0.0)).sample
    ref = (ref / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(decode(vae, z), ref, atol=1e-6)
    with torch.no_grad():
        old = (vae.decode(z / 0.18215).sample / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert np.abs(old - ref).max() > 1e-3
    assert math.isclose(vae.config.scaling_factor, 0.5)


def test_stochastic_pipeline_scheduler_draws_dtvizs_per_row_noise(tmp_path):
    """DDPMScheduler draws step noise: from the seed's per-row streams, so repeatable and independent of batching."""
    gen = Generator(dtviz.load(tiny_pipeline(tmp_path / "ddpm", diffusers.DDPMScheduler()), device="cpu"))
    settings = SampleSettings(steps=6, seed=3)
    a = gen.sample([1, 2, 5], settings)
    assert np.array_equal(a, gen.sample([1, 2, 5], settings))
    np.testing.assert_allclose(gen.sample([1, 2, 5], settings, batch_size=1), a, atol=1e-4)
    assert np.abs(a - gen.sample([1, 2, 5], SampleSettings(steps=6, seed=4))).max() > 1e-2


@pytest.mark.parametrize("config, match", [
    ('{"_class_name": "os"}', "diffusers scheduler class"),
    ("[1]", "diffusers scheduler class"),
    ("{not json", "expected JSON"),
    ('{"_class_name": "DDIMScheduler", "beta_schedule": "nope"}', "could not"),
    ('{"_class_name": "DDIMScheduler", "num_train_timesteps": 10}', "default 50 steps"),
])
def test_bad_scheduler_config_is_one_sentence(tmp_path, config, match):
    folder = tiny_pipeline(tmp_path / "bad", diffusers.DDIMScheduler())
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as fh:
        fh.write(config)
    with pytest.raises(DtvizInputError, match=match):
        dtviz.load(folder, device="cpu")


# ------------------------------------------------------------------------- the release seed convention
@pytest.mark.parametrize("kind, cfg", [("ddpm", 4.0), ("ddpm", 1.0), ("euler-ancestral", 4.0)])
def test_release_seed_convention_replays_dit_pipeline_with_manual_seed(tmp_path, kind, cfg):
    """dtviz sample --seed S --seed-convention release == DiTPipeline(labels, generator=torch.manual_seed(S)):
    diffusers' own __call__ is the oracle, its latents and its stochastic scheduler's step noise (doubled batch
    for guidance > 1) all from the generator the user seeded."""
    scheduler = diffusers.DDPMScheduler() if kind == "ddpm" else diffusers.EulerAncestralDiscreteScheduler()
    folder = tiny_pipeline(tmp_path / kind, scheduler)
    gen = Generator(dtviz.load(folder, device="cpu"))
    steps = 6
    ours = gen.sample(LABELS, SampleSettings(steps=steps, cfg_scale=cfg, seed=SEED, seed_convention="release"))
    pipe = diffusers.DiTPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)

    def call(seed, scale=cfg):
        return pipe(class_labels=LABELS, guidance_scale=scale, num_inference_steps=steps,
                    generator=torch.manual_seed(seed), output_type="np").images

    ref = call(SEED)
    assert ours.shape == ref.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert np.abs(ours - call(SEED + 1)).max() > 1e-3  # the comparison can fail: another seed
    per_sample = gen.sample(LABELS, SampleSettings(steps=steps, cfg_scale=cfg, seed=SEED))
    assert np.abs(ours - per_sample).max() > 1e-3


def test_cli_sample_release_convention_equals_dit_pipeline_seed_0(tmp_path):
    """``dtviz sample PIPELINE --seed 0 --seed-convention release`` writes DiTPipeline's own images for
    generator=torch.manual_seed(0) (uint8 PNGs: equal up to one rounding step)."""
    import csv

    from PIL import Image

    from dtviz.cli.main import main
    from dtviz.sampling.generate import to_uint8

    folder = tiny_pipeline(tmp_path / "ddpm", diffusers.DDPMScheduler())
    out = tmp_path / "out"
    assert main(["sample", folder, "--classes", "3,999", "--per-class", "1", "--steps", "5", "--cfg", "4", "--seed", "0",
                 "--seed-convention", "release", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "index.csv")))
    ours = np.stack([np.asarray(Image.open(out / r["file"])) for r in rows]).astype(int)
    pipe = diffusers.DiTPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(class_labels=[int(r["class_id"]) for r in rows], guidance_scale=4.0, num_inference_steps=5,
               generator=torch.manual_seed(0), output_type="np").images
    assert np.abs(ours - to_uint8(ref).astype(int)).max() <= 1
    other = pipe(class_labels=[int(r["class_id"]) for r in rows], guidance_scale=4.0, num_inference_steps=5,
                 generator=torch.manual_seed(1), output_type="np").images
    assert np.abs(ours - to_uint8(other).astype(int)).max() > 5
