"""LightningDiT (dtviz.models.lightningdit): strict loading of its real key names through dtviz.load, config read off
shapes for every released option, one block against a float64 formula written out here, the pruning hooks against
the weight-zeroing oracle under LightningDiT's own sampler (timestep shift, CFG interval, 3 guided channels),
seeded end-to-end sampling, the timestep shift itself, and the VAE latent-channel check.

Parity with the released hustvl/LightningDiT code itself was measured outside the repo (it needs timm, einops and
fairscale, which dtviz does not depend on); these tests pin the same behaviour with known answers.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import dtviz
from dtviz.errors import DtvizInputError
from dtviz.sampling.generate import SAMPLER_DEFAULTS, Generator, SampleSettings
from dtviz.models.lightningdit import LIGHTNINGDIT_CONFIGS, LightningDiT, LightningDiTConfig, config_from_state_dict
from dtviz.pruning.spec import PruneSpec
from dtviz.pruning.hooks import adaln_modules, pruned
from dtviz.sampling.samplers import EulerFlowSampler, guided_denoiser
from tests.factories import randomized_lightningdit, save_checkpoint, save_model_folder, tiny_lightningdit_config
from tests.test_pruning import NUM_CLASSES, Oracle, class_mean_mask

OPTIONS = {  # the released configs use the first; the others are the switches models/lightningdit.py offers
    "released": {},
    "plain": dict(use_swiglu=False, use_rope=False, use_rmsnorm=False),
    "qknorm-rms": dict(use_qknorm=True),
    "qknorm-layernorm-wo-shift": dict(use_qknorm=True, use_rmsnorm=False, wo_shift=True),
    "learn-sigma-patch1": dict(learn_sigma=True, patch=1),
}


def tiny(in_channels: int = 4, seed: int = 0, **options) -> LightningDiT:
    return randomized_lightningdit(tiny_lightningdit_config(NUM_CLASSES, hidden=32, depth=2, in_channels=in_channels,
                                                            **options), seed=seed)


def batch(in_channels: int, n: int = 3, seed: int = 1):
    """A CFG batch [cond; null] with t in [0, 1], as guided_denoiser builds it."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, in_channels, 8, 8, generator=g)
    y = torch.tensor([0, 4, 9, 2][:n])
    t = torch.rand(n, generator=g)
    return torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, NUM_CLASSES)])


def state_of(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------- loading

@pytest.mark.parametrize("wrapper", ["lightning", "safetensors"])
def test_strict_load_through_dtviz_load(tmp_path, wrapper):
    model = tiny(in_channels=3)
    path = save_checkpoint(state_of(model), str(tmp_path / f"ldit.{'safetensors' if wrapper == 'safetensors' else 'pt'}"),
                           wrapper)
    source = dtviz.load(path, device="cpu")
    assert source.family.key == "lightningdit" and source.t0 == 0.0
    assert source.info.can_sample and source.info.sample_note == ""
    built = source.build_model()  # load_state_dict(strict=True) inside; the "lightning" wrapper's ema is taken
    assert type(built) is LightningDiT and not built.training
    assert built.config.to_dict() == model.config.to_dict()
    assert (built.config.in_channels, built.config.input_size, built.config.learn_sigma) == (3, 8, False)
    assert built.y_embedder.embedding_table.weight.shape[0] == NUM_CLASSES + 1
    assert [name for name, _ in adaln_modules(built)] == ["blocks.0.adaLN_modulation", "blocks.1.adaLN_modulation",
                                                          "final_layer.adaLN_modulation"]
    x, t, y = batch(3)
    with torch.no_grad():
        out = built(x, t, y)
        assert isinstance(out, torch.Tensor) and torch.equal(out, model(x, t, y))


@pytest.mark.parametrize("name", list(OPTIONS))
def test_config_from_state_dict_for_every_option(name):
    options = dict(OPTIONS[name])
    patch = options.pop("patch", 2)
    learn_sigma = options.pop("learn_sigma", False)
    model = randomized_lightningdit(tiny_lightningdit_config(NUM_CLASSES, 32, 2, in_channels=4, learn_sigma=learn_sigma,
                                                             patch=patch, **options))
    state = state_of(model)
    cfg = config_from_state_dict(state)
    heads_visible = cfg.use_rope or cfg.use_qknorm  # the head width shows only in RoPE tables / qk-norm weights
    expected = dict(model.config.to_dict(), num_heads=4 if heads_visible else 1)
    assert cfg.to_dict() == expected
    cfg.num_heads = 4
    rebuilt = LightningDiT(cfg)
    rebuilt.load_state_dict(state, strict=True)
    x, t, y = batch(4)
    with torch.no_grad():
        out = rebuilt.eval()(x, t, y)
        assert out.shape == x.shape  # learn_sigma: the sigma half is dropped, as released
        assert torch.equal(out, model(x, t, y))


def test_released_xl_shapes():
    """LightningDiT-XL/1 on VA-VAE f16d32 (the released models): the shapes of its keys."""
    model = LightningDiT(LightningDiTConfig(depth=1))  # one of its 28 blocks: every block has the same shapes
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["x_embedder.proj.weight"] == (1152, 32, 1, 1) and shapes["pos_embed"] == (1, 256, 1152)
    assert shapes["feat_rope.freqs_cos"] == shapes["feat_rope.freqs_sin"] == (256, 72)
    assert shapes["blocks.0.mlp.w12.weight"] == (6144, 1152) and shapes["blocks.0.mlp.w3.weight"] == (1152, 3072)
    assert shapes["blocks.0.norm1.weight"] == (1152,) and shapes["final_layer.norm_final.weight"] == (1152,)
    assert shapes["blocks.0.adaLN_modulation.1.weight"] == (6 * 1152, 1152) and shapes["final_layer.linear.weight"] == (32, 1152)
    assert not any("q_norm" in k or "fc1" in k for k in shapes)
    assert config_from_state_dict(model.state_dict()) == LightningDiTConfig(depth=1)
    assert LIGHTNINGDIT_CONFIGS["LightningDiT-XL/1"] == dict(depth=28, hidden_size=1152, patch_size=1, num_heads=16)
    assert len(LIGHTNINGDIT_CONFIGS) == 9


# --------------------------------------------------------------------------------- known-answer block

def reference_block(block, x: np.ndarray, c: np.ndarray, grid: int, heads: int) -> np.ndarray:
    """One LightningDiT block in float64 numpy from the paper's pieces, not from the module's code:
    RMSNorm v/√(mean v² + 1e-6)·w, adaLN shift/scale/gate, 2-D RoPE as complex rotation of consecutive pairs
    (first half of a head by the token's row, second half by its column, θ_k = 10000^(−2k/half)), softmax
    attention, SwiGLU w3(SiLU(a)·b)."""
    w = {k: v.detach().double().numpy() for k, v in block.state_dict().items()}
    B, T, D = x.shape
    hd = D // heads

    def lin(v, name):
        return v @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    def rms(v, weight):
        return v / np.sqrt((v ** 2).mean(-1, keepdims=True) + 1e-6) * weight

    silu = lambda v: v / (1 + np.exp(-v))  # noqa: E731
    mod = lin(silu(c), "adaLN_modulation.1")[:, None, :]  # (B, 1, 6D) or (B, 1, 4D)
    if block.wo_shift:
        scale1, gate1, scale2, gate2 = np.split(mod, 4, axis=-1)
        shift1 = shift2 = 0.0
    else:
        shift1, scale1, gate1, shift2, scale2, gate2 = np.split(mod, 6, axis=-1)

    half = hd // 2
    theta = 10000.0 ** (-np.arange(0, half, 2) / half)  # (half/2,)
    rows, cols = np.divmod(np.arange(T), grid)
    angles = np.concatenate([rows[:, None] * theta, cols[:, None] * theta], axis=1)  # (T, hd/2): one per pair
    rot = np.exp(1j * angles)

    def rope(v):  # (B, H, T, hd)
        z = (v[..., 0::2] + 1j * v[..., 1::2]) * rot
        return np.stack([z.real, z.imag], axis=-1).reshape(v.shape)

    h = rms(x, w["norm1.weight"]) * (1 + scale1) + shift1
    q, k, v = lin(h, "attn.qkv").reshape(B, T, 3, heads, hd).transpose(2, 0, 3, 1, 4)
    if "attn.q_norm.weight" in w:
        q, k = rms(q, w["attn.q_norm.weight"]), rms(k, w["attn.k_norm.weight"])
    q, k = rope(q), rope(k)
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    attn = (p / p.sum(-1, keepdims=True)) @ v  # (B, H, T, hd)
    x = x + gate1 * lin(attn.transpose(0, 2, 1, 3).reshape(B, T, D), "attn.proj")
    h = rms(x, w["norm2.weight"]) * (1 + scale2) + shift2
    a, b = np.split(lin(h, "mlp.w12"), 2, axis=-1)
    return x + gate2 * lin(silu(a) * b, "mlp.w3")


@pytest.mark.parametrize("name", ["released", "qknorm-rms", "wo-shift"])
def test_block_matches_float64_reference(name):
    options = {"released": {}, "qknorm-rms": dict(use_qknorm=True), "wo-shift": dict(wo_shift=True)}[name]
    model = tiny(**options)
    g = torch.Generator().manual_seed(4)
    x, c = torch.randn(2, 16, 32, generator=g), torch.randn(2, 32, generator=g)  # 16 tokens: the 4×4 grid
    ref = reference_block(model.blocks[1], x.double().numpy(), c.double().numpy(), grid=4, heads=4)
    with torch.no_grad():
        ours32 = model.blocks[1](x, c, model.feat_rope).numpy()
        m64 = model.double()
        ours64 = m64.blocks[1](x.double(), c.double(), m64.feat_rope).numpy()
    assert np.abs(ref).max() > 1  # a real signal, not a vanishing one
    np.testing.assert_allclose(ours64, ref, rtol=0, atol=1e-6)  # the RoPE tables are float32 buffers, as released
    np.testing.assert_allclose(ours32, ref, rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------------------ pruning

def ldit_sampler(steps: int = 6) -> EulerFlowSampler:
    d = SAMPLER_DEFAULTS["lightningdit"]
    return EulerFlowSampler(steps=steps, t_start=0.0, t_end=1.0, timestep_shift=d["timestep_shift"])


def ldit_denoiser(model):
    d = SAMPLER_DEFAULTS["lightningdit"]
    return guided_denoiser(model, NUM_CLASSES, d["cfg_scale"], d["guided_channels"], d["interval"])


@pytest.fixture(scope="module")
def model():
    return tiny(in_channels=4, seed=3)


@torch.no_grad()
@pytest.mark.parametrize("mask_kind", ["global", "per-sample"])
@pytest.mark.parametrize("selection", [dict(mode="tail", tau=0.3), dict(mode="head", k=5)], ids=["tail-tau", "head-k"])
@pytest.mark.parametrize("prune_null", [False, True], ids=["null-kept", "null-pruned"])
def test_forward_matches_weight_zeroing_oracle(model, mask_kind, selection, prune_null):
    spec = PruneSpec(mask=mask_kind, prune_null=prune_null, **selection)
    mask = class_mean_mask(model, spec, 0.0) if mask_kind == "global" else None
    assert mask is None or 0 < (~mask).sum() < len(mask)
    x, t, y = batch(4)
    with pruned(model, spec, mask=mask):
        hooked = model(x, t, y)
    assert torch.equal(hooked, Oracle(model, spec, mask)(x, t, y))
    assert not torch.equal(hooked, model(x, t, y))
    if not prune_null:
        assert torch.equal(hooked[3:], model(x, t, y)[3:])  # null rows untouched


@torch.no_grad()
@pytest.mark.parametrize("schedule,expected_steps", [("every", [0, 1, 2, 3, 4, 5]), ("first", [0]), ("last:2", [4, 5])])
@pytest.mark.parametrize("mask_kind", ["global", "per-sample"])
def test_sampling_schedules_match_oracle(model, schedule, expected_steps, mask_kind):
    """LightningDiT's sampler: shifted grid, CFG 6.7 on 3 of 4 channels, unguided below t = 0.125 (here steps 0–1)."""
    assert [t >= SAMPLER_DEFAULTS["lightningdit"]["interval"][0] for t in ldit_sampler().timesteps()] == [False] * 2 + [True] * 4
    spec = PruneSpec(mode="tail", tau=0.3, mask=mask_kind, schedule=schedule)
    mask = class_mean_mask(model, spec, 0.0) if mask_kind == "global" else None
    labels = torch.tensor([1, 4, 8])
    noise = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with pruned(model, spec, mask=mask, null_class=NUM_CLASSES) as pruner:
        hooked = ldit_sampler().sample(ldit_denoiser(model), noise, labels, on_step=pruner.on_step)
    oracle = Oracle(model, spec, mask)
    expected = ldit_sampler().sample(ldit_denoiser(oracle), noise, labels, on_step=oracle.on_step)
    assert torch.equal(hooked, expected)
    assert not torch.equal(hooked, ldit_sampler().sample(ldit_denoiser(model), noise, labels))
    assert pruner.pruned_steps == expected_steps


# ------------------------------------------------------------------------------------------ sampling

def test_timestep_shift_grid():
    for steps in (1, 6, 249):  # off: the plain grid, exactly as before the option existed
        assert EulerFlowSampler(steps=steps).grid().tolist() == torch.linspace(0, 1, steps + 1).tolist()
    s, u = 0.3, np.linspace(0, 1, 250)
    shifted = EulerFlowSampler(steps=249, timestep_shift=s).grid()
    np.testing.assert_allclose(shifted.numpy(), s * u / (1 + (s - 1) * u), rtol=0, atol=1e-6)
    # float32, element by element, as transport/integrators.py ode computes it: bit-identical
    t32 = torch.linspace(0, 1, 250)
    assert torch.equal(shifted, torch.stack([s * t / (1 + (s - 1) * t) for t in t32]))
    assert shifted[0] == 0 and shifted[-1] == 1 and bool((shifted.diff() > 0).all())
    assert float(shifted[125]) < 0.5  # s < 1 spends more steps near the noise
    # the other time direction (REPA, 1 = noise) shifts the share of the way from noise alike
    mirrored = EulerFlowSampler(steps=249, t_start=1.0, t_end=0.0, timestep_shift=s).grid()
    np.testing.assert_allclose(mirrored.numpy(), 1 - shifted.numpy(), atol=1e-6)


def test_timestep_shift_sample_steps_on_the_grid():
    sampler = EulerFlowSampler(steps=5, timestep_shift=0.3)
    grid, calls = sampler.grid(), []
    x0 = torch.randn(2, 1, 2, 2, generator=torch.Generator().manual_seed(0))

    def velocity(x, t, y):  # dx/dt = −x: Euler multiplies by (1 − Δt) per step
        calls.append(float(t[0]))
        return -x

    out = sampler.sample(velocity, x0, torch.zeros(2, dtype=torch.long))
    assert calls == sampler.timesteps() == grid[:-1].tolist()
    expected = x0.double() * float(torch.prod(1 - grid.diff().double()))
    np.testing.assert_allclose(out.double().numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)


def test_generator_is_seeded_and_tau_zero_is_the_baseline(tmp_path):
    source = dtviz.load(save_model_folder(tmp_path / "m", tiny(in_channels=3, seed=5), "lightningdit", {"steps": 6}), device="cpu")
    gen = Generator(source)
    assert type(gen.model) is LightningDiT
    assert gen.sampler().timesteps() == ldit_sampler().timesteps()  # the shift reaches the sampler
    labels, settings = [0, 3, 7], SampleSettings(seed=5)
    a = gen.sample(labels, settings)
    assert a.shape == (3, 8, 8, 3) and np.array_equal(a, Generator(source).sample(labels, settings))
    assert not np.array_equal(a, gen.sample(labels, SampleSettings(seed=6)))
    for mask_kind in ("global", "per-sample"):
        assert np.array_equal(gen.sample(labels, settings, prune=PruneSpec(tau=0.0, mask=mask_kind)), a)
    assert not np.array_equal(gen.sample(labels, settings, prune=PruneSpec(mode="head", k=4)), a)


# --------------------------------------------------------------------------------------------- VAE

def test_vae_with_other_latent_channels_is_refused(tmp_path, monkeypatch):
    """The check reads the VAE folder's config.json before any weights are loaded, so config.json and an empty
    weights file are VAE folder enough here (tests/test_vae.py decodes with a real AutoencoderKL)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))

    def vae(channels: int, folder) -> str:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "config.json"), "w") as fh:
            json.dump({"_class_name": "AutoencoderKL", "latent_channels": channels}, fh)
        open(os.path.join(folder, "diffusion_pytorch_model.safetensors"), "wb").close()
        return str(folder)

    folder = save_model_folder(tmp_path / "latent", tiny(in_channels=8), "lightningdit", {"steps": 2})
    beside = vae(4, os.path.join(folder, "vae"))
    source = dtviz.load(folder, device="cpu")
    assert not source.info.can_sample and source.info.extra["latent"]
    note = source.info.sample_note
    assert "expected a VAE with 8 latent channels" in note and "has 4" in note and "\n" not in note
    with pytest.raises(DtvizInputError, match="8 latent channels.*has 4"):
        Generator(source)
    with pytest.raises(DtvizInputError, match="8 latent channels.*has 4"):
        Generator(source, vae=vae(4, tmp_path / "explicit"))
    vae(8, beside)  # the same folder declaring the model's channel count: sampling is offered
    assert dtviz.load(folder, device="cpu").info.can_sample
