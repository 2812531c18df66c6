"""MDTv2 (dtviz.models.mdt): strict loading through dtviz.load, known answers, pruning oracle, seeded sampling.

Numerics against sail-sg/MDT itself were checked outside the repo (its models.py needs timm); here the
pieces are pinned by independent formulas: the power-cosine CFG schedule in float64, the BEiT
relative-position index by loops, and the long-skip wiring read off hooks.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import dtviz
from dtviz.sampling.generate import SAMPLER_DEFAULTS, Generator, SampleSettings, initial_noise, noise_generators
from dtviz.models.mdt import MDT_CONFIGS, MDTConfig, MDTv2, config_from_state_dict, relative_position_index
from dtviz.pruning.spec import PruneSpec
from dtviz.pruning.hooks import pruned
from dtviz.sampling.samplers import DDIMSampler, DDPMSampler, guided_denoiser, power_cosine_scale
from tests.factories import family_state, randomized_mdt, save_checkpoint, save_model_folder, tiny_mdt_config
from tests.test_pruning import NUM_CLASSES, Oracle, class_mean_mask

MDT_CFG, MDT_POW = 3.8, 4.0  # MDT scripts/image_sample.py defaults


@pytest.fixture(scope="module")
def model():
    """Pixel-space (3 channels), learned sigma: 6 output channels of which CFG guides 3, as MDT does."""
    return randomized_mdt(tiny_mdt_config(NUM_CLASSES, hidden=32, depth=1, in_channels=3), seed=3)


def batch(seed: int = 0, n: int = 4, channels: int = 3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, channels, 8, 8, generator=g), torch.randint(0, 1000, (n,), generator=g),
            torch.randint(0, NUM_CLASSES, (n,), generator=g))


# ------------------------------------------------------------------------------------------ loading

@pytest.mark.parametrize("wrapper", ["train", "safetensors"])
def test_strict_load_through_dtviz_load(tmp_path, wrapper):
    cfg = tiny_mdt_config(NUM_CLASSES, hidden=32, depth=2, in_channels=3)
    original = randomized_mdt(cfg, seed=1)
    state = original.state_dict()
    path = save_checkpoint(state, str(tmp_path / ("m.safetensors" if wrapper == "safetensors" else "m.pt")), wrapper)
    src = dtviz.load(path, device="cpu")
    assert src.family.key == "mdt" and src.info.can_sample, src.info.sample_note
    built = src.build_model()  # load_state_dict(strict=True) inside
    assert isinstance(built, MDTv2) and built.config == cfg
    assert (len(built.en_inblocks), len(built.en_outblocks), len(built.de_blocks)) == (2, 2, 1)
    loaded = built.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())  # the ema weights, not the noisy 'model'
    assert loaded["de_blocks.0.attn.rel_pos_bias.relative_position_index"].dtype == torch.int64
    x, t, y = batch()
    with torch.no_grad():
        assert torch.equal(built(x, t, y), original(x, t, y))


def test_factory_state_is_a_real_mdt():
    state = family_state("mdt", num_classes=10, hidden=32, depth=2)
    model = MDTv2(config_from_state_dict(state))
    model.load_state_dict(state, strict=True)
    assert any(k.startswith("sideblocks.0.") for k in state) and "mask_token" in state


@pytest.mark.parametrize("name", list(MDT_CONFIGS))
def test_published_layouts_read_back(name):
    """Each published size's block counts and heads survive config_from_state_dict (narrow width, same layout)."""
    layout = dict(MDT_CONFIGS[name], hidden_size=4 * MDT_CONFIGS[name]["num_heads"], input_size=4)
    cfg = MDTConfig(num_classes=3, **layout)
    assert config_from_state_dict(MDTv2(cfg).state_dict()) == cfg
    assert 2 * cfg.half_depth + cfg.decode_layer == cfg.depth  # every published depth splits evenly


# ------------------------------------------------------------------------------------ known answers

def test_power_cosine_schedule_known_answer():
    t = torch.tensor([0, 1, 250, 500, 750, 998, 999])
    for cfg_scale, pow_ in [(MDT_CFG, MDT_POW), (4.0, 0.01), (2.0, 1.0)]:
        expected = [(cfg_scale - 1) * (1 - math.cos(math.pi * (1 - v / 1000) ** pow_)) / 2 + 1 for v in t.tolist()]
        np.testing.assert_allclose(power_cosine_scale(cfg_scale, t, pow_).double().numpy(), expected, rtol=0, atol=2e-6)
    assert power_cosine_scale(2.0, torch.tensor([500]), 1.0).item() == pytest.approx(1.5)  # cos(π/2) = 0: halfway
    s = power_cosine_scale(MDT_CFG, torch.tensor([999, 0]), MDT_POW)
    assert s[0].item() == 1.0 and s[1].item() == pytest.approx(MDT_CFG)  # no guidance at the noise end


@torch.no_grad()
def test_guided_denoiser_applies_schedule_on_guided_channels_only(model):
    x, t, y = batch(1)
    t[0], t[1] = 999, 0
    cond, uncond = model(x, t, y).double(), model(x, t, torch.full_like(y, NUM_CLASSES)).double()
    s = torch.tensor([(MDT_CFG - 1) * (1 - math.cos(math.pi * (1 - v / 1000) ** MDT_POW)) / 2 + 1
                      for v in t.tolist()], dtype=torch.float64).view(-1, 1, 1, 1)
    out = guided_denoiser(model, NUM_CLASSES, MDT_CFG, 3, scale_pow=MDT_POW)(x, t, y)
    assert (out[:, :3].double() - (uncond[:, :3] + s * (cond[:, :3] - uncond[:, :3]))).abs().max() < 1e-4
    assert (out[:, 3:].double() - cond[:, 3:]).abs().max() < 1e-5  # the variance channels: the cond rows'
    # the default (no scale_pow) is the constant scale, computed exactly as before
    plain = guided_denoiser(model, NUM_CLASSES, MDT_CFG, 3)(x, t, y)
    c32, u32 = cond.float(), uncond.float()
    assert torch.equal(plain, torch.cat([u32[:, :3] + MDT_CFG * (c32[:, :3] - u32[:, :3]), c32[:, 3:]], dim=1))
    assert not torch.allclose(plain, out)


def test_relative_position_index_by_loops():
    g = 3
    index = relative_position_index(g)
    for i in range(g * g):
        for j in range(g * g):
            dh, dw = i // g - j // g, i % g - j % g
            assert index[i, j] == (dh + g - 1) * (2 * g - 1) + (dw + g - 1)
    assert index.dtype == torch.int64 and int(index.max()) == (2 * g - 1) ** 2 - 1


@torch.no_grad()
def test_attention_adds_relative_position_bias(model):
    """softmax(q·kᵀ/√d + B[index])·v in float64, written out (MDT's Attention.forward)."""
    attn = model.en_inblocks[0].attn
    x = torch.randn(2, 16, 32, generator=torch.Generator().manual_seed(4))  # (B, T, D): the 4×4 token grid
    B, T, D, H = *x.shape, attn.num_heads
    w, b = attn.qkv.weight.double(), attn.qkv.bias.double()
    q, k, v = (x.double() @ w.T + b).reshape(B, T, 3, H, D // H).permute(2, 0, 3, 1, 4)
    table = attn.rel_pos_bias.relative_position_bias_table.double()
    bias = table[relative_position_index(4).view(-1)].view(T, T, H).permute(2, 0, 1)
    mixed = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D // H) + bias, dim=-1) @ v
    ref = mixed.transpose(1, 2).reshape(B, T, D) @ attn.proj.weight.double().T + attn.proj.bias.double()
    assert (attn(x).double() - ref).abs().max() < 1e-5


@torch.no_grad()
def test_long_skips_pair_last_in_first_out(model):
    """en_outblocks[j] gets en_inblocks[n-1-j]'s output; every de_block the patch embedding; decoder_pos_embed added."""
    m = randomized_mdt(tiny_mdt_config(NUM_CLASSES, hidden=32, depth=3, in_channels=3), seed=5)
    seen: dict = {}

    def keep(name):
        def hook(module, args, kwargs, output=None):
            seen[name] = (args, output)
        return hook

    handles = [b.register_forward_hook(keep(f"in{i}"), with_kwargs=True) for i, b in enumerate(m.en_inblocks)]
    handles += [b.register_forward_hook(keep(f"out{i}"), with_kwargs=True) for i, b in enumerate(m.en_outblocks)]
    handles += [b.register_forward_pre_hook(keep(f"de{i}"), with_kwargs=True) for i, b in enumerate(m.de_blocks)]
    handles += [m.en_outblocks[0].skip_linear.register_forward_pre_hook(keep("skip_linear"), with_kwargs=True)]
    x, t, y = batch(2)
    m(x, t, y)
    for h in handles:
        h.remove()
    n = len(m.en_inblocks)
    for j in range(n):
        assert seen[f"out{j}"][0][2] is seen[f"in{n - 1 - j}"][1]
    first_in = seen["out0"][0][0]
    assert torch.equal(seen["skip_linear"][0][0], torch.cat([first_in, seen[f"in{n - 1}"][1]], dim=-1))
    assert torch.equal(seen["de0"][0][0], seen[f"out{n - 1}"][1] + m.decoder_pos_embed)
    assert torch.equal(seen["de0"][0][2], m.x_embedder(x) + m.pos_embed)


# --------------------------------------------------------------------------------------- pruning

@torch.no_grad()
@pytest.mark.parametrize("mask_kind", ["global", "per-sample"])
@pytest.mark.parametrize("prune_null", [False, True])
@pytest.mark.parametrize("selection", [dict(mode="tail", tau=0.3), dict(mode="head", k=3), dict(dims=(0, 7, 31))],
                         ids=lambda s: "-".join(map(str, s.values())))
def test_forward_matches_weight_zeroing_oracle(model, mask_kind, prune_null, selection):
    spec = PruneSpec(mask=mask_kind, prune_null=prune_null, **selection)
    mask = class_mean_mask(model, spec, 999.0) if mask_kind == "global" else None
    assert mask is None or 0 < (~mask).sum() < len(mask)
    x, t, y = batch(3)
    xb, tb, yb = torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, NUM_CLASSES)])
    with pruned(model, spec, mask=mask) as pruner:
        hooked = model(xb, tb, yb)
    assert torch.equal(hooked, Oracle(model, spec, mask)(xb, tb, yb))
    assert not torch.equal(hooked, model(xb, tb, yb))
    if not prune_null:
        assert torch.equal(hooked[4:], model(xb, tb, yb)[4:])
    assert pruner.pruned_steps == []


SAMPLERS = {"ddpm": lambda: DDPMSampler(steps=6, learned_sigma=True), "ddim": lambda: DDIMSampler(steps=6)}


@torch.no_grad()
@pytest.mark.parametrize("schedule,expected_steps", [("every", [0, 1, 2, 3, 4, 5]), ("first", [0]), ("last:2", [4, 5])])
@pytest.mark.parametrize("mask_kind,prune_null", [("global", False), ("per-sample", True)])
@pytest.mark.parametrize("sampler_name", list(SAMPLERS))
def test_sampling_schedules_match_oracle(model, schedule, expected_steps, mask_kind, prune_null, sampler_name):
    """MDT's own CFG (power-cosine, 3 guided channels); hooks vs zeroed adaLN columns, bit-exact, shared noise."""
    spec = PruneSpec(mode="tail", tau=0.3, mask=mask_kind, schedule=schedule, prune_null=prune_null)
    mask = class_mean_mask(model, spec, 999.0) if mask_kind == "global" else None
    labels = torch.tensor([1, 4, 8])
    noise = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))

    def run(net, on_step=None):
        denoise = guided_denoiser(net, NUM_CLASSES, MDT_CFG, 3, scale_pow=MDT_POW)
        return SAMPLERS[sampler_name]().sample(denoise, noise, labels, on_step=on_step,
                                               generator=noise_generators(0, range(3)))

    with pruned(model, spec, mask=mask, null_class=NUM_CLASSES) as pruner:
        hooked = run(model, pruner.on_step)
    oracle = Oracle(model, spec, mask)
    expected = run(oracle, oracle.on_step)
    assert torch.isfinite(hooked).all()
    assert torch.equal(hooked, expected)
    assert not torch.equal(hooked, run(model))
    assert pruner.pruned_steps == expected_steps


# -------------------------------------------------------------------------------------- end to end

def save_mdt_folder(path: str, seed: int = 0) -> tuple[str, MDTv2]:
    """A dtviz model folder (config.json + model.safetensors) with a tiny pixel-space MDTv2."""
    m = randomized_mdt(tiny_mdt_config(NUM_CLASSES, hidden=32, depth=1, in_channels=3), seed=seed)
    return save_model_folder(path, m, "mdt", {"steps": 4}), m


@torch.no_grad()
def test_generator_is_seeded_faithful_and_tau_zero_is_the_baseline(tmp_path):
    path, m = save_mdt_folder(str(tmp_path / "mdt"))
    gen = Generator(dtviz.load(path, device="cpu"))
    assert SAMPLER_DEFAULTS["mdt"] == dict(name="ddpm", steps=250, cfg_scale=3.8, guided_channels=3, scale_pow=4.0)
    sampler = gen.sampler()
    assert isinstance(sampler, DDPMSampler) and sampler.steps == 4 and sampler.learned_sigma
    labels, settings = [1, 4, 9], SampleSettings(seed=2)
    first = gen.sample(labels, settings)
    assert first.shape == (3, 8, 8, 3) and np.isfinite(first).all()
    assert np.array_equal(first, gen.sample(labels, settings))
    for mask in ("global", "per-sample"):
        assert np.array_equal(first, gen.sample(labels, settings, prune=PruneSpec(mode="tail", tau=0.0, mask=mask)))
    assert not np.array_equal(first, gen.sample(labels, settings, prune=PruneSpec(mode="tail", tau=0.3)))

    # The same run by hand: MDT's schedule is what the Generator applies (constant CFG would differ).
    def by_hand(scale_pow):
        noise = initial_noise((3, 8, 8), 2, range(3), "cpu")
        x = DDPMSampler(steps=4).sample(guided_denoiser(m, NUM_CLASSES, MDT_CFG, 3, scale_pow=scale_pow), noise,
                                        torch.tensor(labels), generator=noise_generators(2, range(3)))
        return ((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()

    assert np.array_equal(first, by_hand(MDT_POW))
    assert not np.array_equal(first, by_hand(None))
