"""VA-VAE (dtviz.sources.vavae): LightningDiT's tokenizer checkpoint in LDM layout + latents_stats.pt, decoded as its
inference.py does (``samples * std / latent_multiplier + mean``, no 0.18215), found as vae/ beside a 32-channel
LightningDiT or given with --vae; the errors for a missing or mismatched stats file or VAE; nothing written.

The LDM checkpoints are built here from a tiny random diffusers AutoencoderKL through ``to_ldm``, an inverse of
the key mapping written out independently of diffusers' converter (so a wrong conversion fails), with the extra
keys a VA-VAE training checkpoint holds. Parity with hustvl/LightningDiT's own tokenizer code was measured
outside the repo (it needs omegaconf and a GPU); these tests pin the same behaviour with known answers.
"""
from __future__ import annotations

import hashlib
import json
import os
import re

import numpy as np
import pytest
import torch

import dtviz
from dtviz.cli.main import main
from dtviz.errors import DtvizInputError
from dtviz.sampling.generate import Generator, SampleSettings
from dtviz.sources.vae import decode, find_vae, latent_channel_note, load_vae
from tests.factories import randomized_lightningdit, save_checkpoint, tiny_lightningdit_config

diffusers = pytest.importorskip("diffusers")

NUM_CLASSES = 10


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def tiny_autoencoder(channels: int = 32, seed: int = 0):
    """Two levels (32, 64 channels), attention at the lower resolution as VA-VAE's attn_resolutions [16],
    GroupNorm(32) as LDM's Normalize; the norms random too (ones / zeros would hide a swapped norm)."""
    torch.manual_seed(seed)
    ae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
        up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(32, 64), layers_per_block=1,
        latent_channels=channels, norm_num_groups=32, sample_size=16)
    with torch.no_grad():
        for name, p in ae.named_parameters():
            if "norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
    return ae.eval()


LDM_NAMES = [  # diffusers -> LDM (taming / latent-diffusion model.py), independent of diffusers' converter
    (r"conv_norm_out\.", "norm_out."), (r"mid_block\.resnets\.0\.", "mid.block_1."), (r"mid_block\.resnets\.1\.", "mid.block_2."),
    (r"mid_block\.attentions\.0\.", "mid.attn_1."), (r"down_blocks\.(\d+)\.resnets\.", r"down.\1.block."),
    (r"down_blocks\.(\d+)\.attentions\.", r"down.\1.attn."), (r"down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.downsample."),
    (r"\.conv_shortcut\.", ".nin_shortcut."), (r"\.group_norm\.", ".norm."), (r"\.to_q\.", ".q."), (r"\.to_k\.", ".k."),
    (r"\.to_v\.", ".v."), (r"\.to_out\.0\.", ".proj_out."),
]


def to_ldm(state: dict, levels: int = 2) -> dict:
    out = {}
    for key, value in state.items():
        m = re.match(r"decoder\.up_blocks\.(\d+)\.(resnets|attentions|upsamplers\.0)\.(.*)", key)
        if m:  # LDM numbers up levels by resolution (0 = full size); diffusers' up_blocks start at the lowest
            part = {"resnets": "block", "attentions": "attn", "upsamplers.0": "upsample"}[m.group(2)]
            key = f"decoder.up.{levels - 1 - int(m.group(1))}.{part}.{m.group(3)}"
        for pattern, repl in LDM_NAMES:
            key = re.sub(pattern, repl, key)
        if re.search(r"\.(attn\.\d+|attn_1)\.(q|k|v|proj_out)\.weight$", key):
            value = value[:, :, None, None]  # LDM's AttnBlock uses 1x1 convs
        out[key] = value.clone()
    return out


def vavae_folder(folder, ae, stats_channels: int | None = None, multiplier: float | None = None, fmt: str = "pt",
                 seed: int = 0) -> str:
    """A VA-VAE folder as hustvl/vavae-imagenet256-f16d32-dinov2 lays it out: a training checkpoint
    ({"state_dict": LDM keys + loss.* + foundation_model.* + linear_proj}) and latents_stats.pt."""
    os.makedirs(folder, exist_ok=True)
    ldm = to_ldm(ae.state_dict())
    if fmt == "pt":
        g = torch.Generator().manual_seed(seed)
        extra = {"loss.discriminator.main.0.weight": torch.randn(8, 3, 4, 4, generator=g),
                 "foundation_model.model.blocks.0.attn.qkv.weight": torch.randn(6, 2, generator=g),
                 "linear_proj.weight": torch.randn(4, ae.config.latent_channels, 1, 1, generator=g)}
        torch.save({"state_dict": {**ldm, **extra}}, os.path.join(folder, "vavae-tiny.pt"))
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in ldm.items()}, os.path.join(folder, "vavae-tiny.safetensors"))
    c = stats_channels or ae.config.latent_channels
    g = torch.Generator().manual_seed(seed + 1)
    torch.save({"mean": torch.randn(1, c, 1, 1, generator=g), "std": 0.5 + torch.rand(1, c, 1, 1, generator=g)},
               os.path.join(folder, "latents_stats.pt"))
    if multiplier is not None:
        with open(os.path.join(folder, "vavae.json"), "w") as fh:
            json.dump({"latent_multiplier": multiplier}, fh)
    return str(folder)


def hashes(*folders) -> dict:
    return {os.path.join(root, n): hashlib.sha256(open(os.path.join(root, n), "rb").read()).hexdigest()
            for folder in folders for root, _, names in os.walk(folder) for n in names}


# ------------------------------------------------------------------------------------------ decoding

@pytest.mark.parametrize("fmt,multiplier", [("pt", None), ("safetensors", 0.5)])
def test_decodes_like_the_autoencoder_it_came_from(tmp_path, fmt, multiplier):
    ae = tiny_autoencoder()
    folder = vavae_folder(tmp_path / "vae", ae, multiplier=multiplier, fmt=fmt)
    before = hashes(folder)
    vae = load_vae(folder, "cpu")
    assert not vae.training and next(vae.parameters()).dtype == torch.float32
    samples = torch.randn(2, 32, 8, 8, generator=torch.Generator().manual_seed(3)) * 2
    stats = torch.load(os.path.join(folder, "latents_stats.pt"), weights_only=True)
    with torch.no_grad():  # LightningDiT inference.py, by hand: (samples * std) / latent_multiplier + mean; no 0.18215
        x = ae.decode(samples * stats["std"] / (multiplier or 1.0) + stats["mean"]).sample
    expected = (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    images = decode(vae, samples)
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.float32
    assert 0.01 < expected.std() and ((expected > 0) & (expected < 1)).mean() > 0.5  # not all clamped
    np.testing.assert_allclose(images, expected, atol=1e-5)
    assert hashes(folder) == before


def test_stats_of_shape_c_and_explicit_folder(tmp_path):
    ae = tiny_autoencoder(channels=32, seed=1)
    folder = vavae_folder(tmp_path / "mine", ae)
    stats = torch.load(os.path.join(folder, "latents_stats.pt"), weights_only=True)
    torch.save({k: v.flatten() for k, v in stats.items()}, os.path.join(folder, "latents_stats.pt"))  # (C,)
    assert find_vae(str(tmp_path / "ckpt.pt"), vae=folder) == folder
    assert latent_channel_note(folder, 32) == ""
    z = torch.randn(1, 32, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = ae.decode(z * stats["std"] + stats["mean"]).sample
    np.testing.assert_allclose(decode(load_vae(folder), z), (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy(), atol=1e-5)


# ---------------------------------------------------------------------------------------- end to end

@pytest.fixture
def ldit_ckpt(tmp_path) -> str:
    """A 32-channel LightningDiT (8x8 latents), saved as train.py does, alone in its folder."""
    model = randomized_lightningdit(tiny_lightningdit_config(NUM_CLASSES, hidden=32, depth=2, in_channels=32), seed=2)
    return save_checkpoint({k: v.clone() for k, v in model.state_dict().items()}, str(tmp_path / "ckpt" / "ldit.pt"),
                           "lightning")


def test_vae_folder_beside_checkpoint_samples_images(ldit_ckpt, tmp_path):
    beside = vavae_folder(os.path.join(os.path.dirname(ldit_ckpt), "vae"), tiny_autoencoder())
    before = hashes(os.path.dirname(ldit_ckpt))
    source = dtviz.load(ldit_ckpt, device="cpu")
    assert source.family.key == "lightningdit" and source.info.can_sample and source.info.sample_note == ""
    assert source.info.extra["vae"] == beside
    gen = Generator(source)
    labels, settings = [0, 3, 9], SampleSettings(steps=3, seed=4)
    a = gen.sample(labels, settings)
    assert a.shape == (3, 16, 16, 3) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1 and a.std() > 0.01
    assert np.array_equal(a, Generator(dtviz.load(ldit_ckpt, device="cpu")).sample(labels, settings))
    assert not np.array_equal(a, gen.sample(labels, SampleSettings(steps=3, seed=5)))
    out = tmp_path / "out"
    assert main(["sample", ldit_ckpt, "--vae", beside, "--classes", "2", "--per-class", "2", "--steps", "2",
                 "--device", "cpu", "--out", str(out)]) == 0
    assert len([p for p in os.listdir(out) if p.endswith(".png") and p != "grid.png"]) == 2
    assert hashes(os.path.dirname(ldit_ckpt)) == before


def one_sentence_refusal(path, *fragments):
    """Loading ``path`` offers no sampling and says why in one sentence, as Generator does; nothing is written."""
    before = hashes(os.path.dirname(path))
    source = dtviz.load(path, device="cpu")
    note = source.info.sample_note
    assert not source.info.can_sample and source.info.extra["latent"]
    assert all(f in note for f in fragments) and "analysis still works" in note, note
    assert "\n" not in note and note.count(". ") == 0 and note.endswith(".")
    with pytest.raises(DtvizInputError) as err:
        Generator(source)
    assert all(f in str(err.value) for f in fragments) and str(err.value).count(". ") == 0
    assert hashes(os.path.dirname(path)) == before
    return source


def test_hf_cache_serves_each_model_the_vae_that_fits(ldit_ckpt, tmp_path):
    """sd-vae-ft-ema (4 channels) comes first in the cache order, but a 32-channel LightningDiT gets the VA-VAE."""
    cache = tmp_path / "hf-cache"
    for repo, make in (("stabilityai/sd-vae-ft-ema", lambda d: tiny_autoencoder(channels=4).save_pretrained(str(d))),
                       ("hustvl/vavae-imagenet256-f16d32-dinov2", lambda d: vavae_folder(d, tiny_autoencoder()))):
        repo_dir = cache / ("models--" + repo.replace("/", "--"))
        (repo_dir / "refs").mkdir(parents=True)
        (repo_dir / "refs" / "main").write_text("r1")
        make(repo_dir / "snapshots" / "r1")
    sd, vavae = (str(cache / f"models--{r}" / "snapshots" / "r1") for r in
                 ("stabilityai--sd-vae-ft-ema", "hustvl--vavae-imagenet256-f16d32-dinov2"))
    assert find_vae(ldit_ckpt) == sd and find_vae(ldit_ckpt, latent_channels=4) == sd
    assert find_vae(ldit_ckpt, latent_channels=32) == vavae
    source = dtviz.load(ldit_ckpt, device="cpu")
    assert source.info.can_sample and source.info.extra["vae"] == vavae
    assert Generator(source).sample([1], SampleSettings(steps=2)).shape == (1, 16, 16, 3)


def test_missing_stats_wrong_stats_and_wrong_vae_are_one_sentence(ldit_ckpt, tmp_path):
    beside = os.path.join(os.path.dirname(ldit_ckpt), "vae")
    vavae_folder(beside, tiny_autoencoder())
    os.remove(os.path.join(beside, "latents_stats.pt"))
    one_sentence_refusal(ldit_ckpt, "latents_stats.pt", "is missing", beside)

    vavae_folder(beside, tiny_autoencoder(), stats_channels=16)
    source = one_sentence_refusal(ldit_ckpt, "32 latent channels", "latents_stats.pt", "has 16")
    with pytest.raises(DtvizInputError, match="match the VA-VAE's 32 latent channels, but it has 16"):
        load_vae(beside)

    sixteen = vavae_folder(tmp_path / "vae16", tiny_autoencoder(channels=16))
    with pytest.raises(DtvizInputError, match="expected a VAE with 32 latent channels.*VA-VAE at .* has 16"):
        Generator(source, vae=sixteen)
    for name in ("vavae-tiny.pt", "latents_stats.pt"):
        os.replace(os.path.join(sixteen, name), os.path.join(beside, name))
    one_sentence_refusal(ldit_ckpt, "32 latent channels", "the VA-VAE at", "has 16")


def test_unreadable_or_ambiguous_checkpoints(tmp_path):
    folder = vavae_folder(tmp_path / "vae", tiny_autoencoder())
    with open(os.path.join(folder, "other.ckpt"), "wb") as fh:
        fh.write(b"PK\x03\x04 not a zip")
    with pytest.raises(DtvizInputError, match=r"one VA-VAE checkpoint .* found 2 \(other.ckpt, vavae-tiny.pt\)"):
        load_vae(folder)
    os.remove(os.path.join(folder, "vavae-tiny.pt"))
    with pytest.raises(DtvizInputError, match="expected a PyTorch checkpoint, but .*other.ckpt.* damaged"):
        load_vae(folder)
    torch.save({"state_dict": {"encoder.conv_in.weight": torch.zeros(32, 3, 3, 3)}}, os.path.join(folder, "other.ckpt"))
    with pytest.raises(DtvizInputError, match=r"expected VA-VAE weights \(decoder\.\* keys"):
        load_vae(folder)
    torch.save({"mean": torch.zeros(32)}, os.path.join(folder, "latents_stats.pt"))
    with pytest.raises(DtvizInputError, match="'mean' and 'std' tensors of shape"):
        load_vae(folder)
