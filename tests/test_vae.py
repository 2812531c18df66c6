"""Latent models through a VAE: lookup order (explicit path, vae/ beside the model, HF cache), decoding,
seeded latent sampling for native and diffusers DiT models, the CLI, the missing-VAE message, and pruning a
diffusers transformer against the weight-zeroing oracle.

Every model here is tiny and random and is saved at test time: an AutoencoderKL with two 8-channel blocks
(8×8 latents -> 16×16 images), a 4-channel native DiT (tests/factories.py) and a diffusers DiTTransformer2DModel.
The HF cache is pointed at an empty temporary folder, so a real cache never changes the outcome.
"""
from __future__ import annotations

import copy
import os
import shutil

import numpy as np
import pytest
import torch

import dtviz
from dtviz.cli.main import main
from dtviz.errors import DtvizInputError
from dtviz.sampling.generate import Generator, SampleSettings, initial_noise
from dtviz.pruning.spec import PruneSpec
from dtviz.pruning.hooks import pruned
from dtviz.sources.vae import decode, find_vae, load_vae
from tests.factories import randomized_dit, save_checkpoint, tiny_config

diffusers = pytest.importorskip("diffusers")

from tests.test_diffusers_source import write_pipeline  # noqa: E402  (after the importorskip)

NUM_CLASSES = 10


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def tiny_vae(seed: int = 0):
    torch.manual_seed(seed)
    return diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 8), layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=16).eval()


@pytest.fixture(scope="module")
def vae_model():
    return tiny_vae()


def save_vae(vae_model, folder) -> str:
    vae_model.save_pretrained(str(folder))
    return str(folder)


def in_cache(vae_model, cache, repo: str, revision: str = "r1") -> str:
    """Lay the VAE out as huggingface_hub does: models--org--name/{refs/main, snapshots/<rev>/}."""
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return save_vae(vae_model, repo_dir / "snapshots" / revision)


@pytest.fixture
def latent_ckpt(tmp_path) -> str:
    """A 4-channel, learned-sigma native DiT checkpoint alone in its folder."""
    model = randomized_dit(tiny_config(NUM_CLASSES, hidden=32, depth=2, in_channels=4, learn_sigma=True), seed=1)
    return save_checkpoint({k: v.clone() for k, v in model.state_dict().items()}, str(tmp_path / "ckpt" / "dit.pt"))


# ----------------------------------------------------------------------------------------- lookup

def test_lookup_order_explicit_beside_cache(latent_ckpt, vae_model, empty_hf_cache, tmp_path):
    assert find_vae(latent_ckpt) is None
    mse = in_cache(vae_model, empty_hf_cache, "stabilityai/sd-vae-ft-mse")
    assert find_vae(latent_ckpt) == mse
    ema = in_cache(vae_model, empty_hf_cache, "stabilityai/sd-vae-ft-ema")
    assert find_vae(latent_ckpt) == ema  # ema first, as DiT's sample.py default
    beside = save_vae(vae_model, os.path.join(os.path.dirname(latent_ckpt), "vae"))
    assert find_vae(latent_ckpt) == beside
    explicit = save_vae(vae_model, tmp_path / "my-vae")
    assert find_vae(latent_ckpt, vae=explicit) == explicit
    with pytest.raises(DtvizInputError, match="AutoencoderKL folder"):
        find_vae(latent_ckpt, vae=str(tmp_path / "nowhere"))


def test_missing_vae_is_one_sentence_up_front_and_at_generation(latent_ckpt, empty_hf_cache):
    source = dtviz.load(latent_ckpt, device="cpu")
    note = source.info.sample_note
    assert not source.info.can_sample and source.info.extra["latent"]
    assert "VAE" in note and "analysis still works" in note and "--vae" in note
    assert os.path.join(os.path.dirname(latent_ckpt), "vae") in note and str(empty_hf_cache) in note
    with pytest.raises(DtvizInputError, match="analysis still works") as err:
        Generator(source)
    assert str(err.value).count(". ") == 0  # one sentence
    assert source.embeddings().shape == (NUM_CLASSES, 32)  # analysis still works


def test_load_vae_errors_are_clear(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "config.json").write_text('{"_class_name": "AutoencoderKL"}')
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DtvizInputError, match="could not load"):
        load_vae(str(folder))
    with pytest.raises(DtvizInputError, match="not one"):
        load_vae(str(tmp_path))


def test_decode_shape_and_range(vae_model, tmp_path):
    vae = load_vae(save_vae(vae_model, tmp_path / "vae"), "cpu")
    assert not vae.training and next(vae.parameters()).dtype == torch.float32
    images = decode(vae, torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 3)
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    with torch.no_grad():  # DiT sample.py: vae.decode(z / 0.18215)
        z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
        ref = (vae_model.decode(z / 0.18215).sample / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(decode(vae, z), ref, atol=1e-6)


# --------------------------------------------------------------------------------- native sampling

def test_native_latent_sampling_is_seeded_and_found_beside(latent_ckpt, vae_model):
    save_vae(vae_model, os.path.join(os.path.dirname(latent_ckpt), "vae"))
    source = dtviz.load(latent_ckpt, device="cpu")
    assert source.info.can_sample and source.info.sample_note == ""
    settings = SampleSettings(steps=3, seed=7)
    a = Generator(source).sample([1, 4], settings)
    b = Generator(source).sample([1, 4], settings)
    assert a.shape == (2, 16, 16, 3) and np.array_equal(a, b)
    assert 0 <= a.min() and a.max() <= 1
    assert not np.array_equal(a, Generator(source).sample([1, 4], SampleSettings(steps=3, seed=8)))


def test_cli_sample_with_explicit_vae_writes_rgb_pngs(latent_ckpt, vae_model, tmp_path, capsys):
    from PIL import Image

    vae_dir = save_vae(vae_model, tmp_path / "elsewhere" / "sd-vae")
    out = tmp_path / "samples"
    assert main(["sample", latent_ckpt, "--classes", "2", "--per-class", "2", "--steps", "2", "--device", "cpu",
                 "--out", str(out / "x")]) == 2
    assert "analysis still works" in capsys.readouterr().err
    assert main(["sample", latent_ckpt, "--classes", "2", "--per-class", "2", "--steps", "2", "--device", "cpu",
                 "--vae", vae_dir, "--out", str(out / "ok")]) == 0
    pngs = sorted(p for p in os.listdir(out / "ok") if p.endswith(".png") and p != "grid.png")
    assert len(pngs) == 2
    image = Image.open(out / "ok" / pngs[0])
    assert image.mode == "RGB" and image.size == (16, 16)


# ------------------------------------------------------------------------------------- diffusers DiT

def tiny_transformer(num_classes: int = NUM_CLASSES, seed: int = 0, out_channels: int | None = None):
    torch.manual_seed(seed)
    model = diffusers.DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, num_layers=2,
                                            sample_size=8, patch_size=2, num_embeds_ada_norm=num_classes,
                                            out_channels=out_channels)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def pipeline_1000(tmp_path_factory, vae_model) -> str:
    """A pipeline with 1000 classes (DiTPipeline hard-codes the null class 1000), learned sigma, and its own vae/."""
    folder = write_pipeline(tmp_path_factory.mktemp("pipe"), tiny_transformer(1000, out_channels=8), id2label=None)
    save_vae(vae_model, os.path.join(folder, "vae"))
    return folder


def test_diffusers_pipeline_needs_a_vae_and_then_samples(tmp_path, vae_model):
    folder = write_pipeline(tmp_path / "pipe", tiny_transformer())
    source = dtviz.load(folder, device="cpu")
    assert not source.info.can_sample and "analysis still works" in source.info.sample_note
    save_vae(vae_model, os.path.join(folder, "vae"))
    source = dtviz.load(folder, device="cpu")
    assert source.info.can_sample and source.info.extra["vae"] == os.path.join(folder, "vae")
    settings = SampleSettings(steps=4, seed=3, sampler="ddpm")
    a = Generator(source).sample([0, 9, 5], settings)
    assert a.shape == (3, 16, 16, 3) and np.array_equal(a, Generator(source).sample([0, 9, 5], settings))


@pytest.mark.parametrize("clip", [True, False])
def test_diffusers_sampling_matches_dit_pipeline(pipeline_1000, monkeypatch, clip, tmp_path):
    """Our DDIM + CFG on the wrapped transformer == diffusers DiTPipeline.__call__ with its DDIMScheduler, same noise."""
    import diffusers.pipelines.dit.pipeline_dit as pipeline_dit

    if not clip:  # facebook/DiT-* ship clip_sample false; DDIMScheduler() defaults to true
        pipeline_1000 = str(shutil.copytree(pipeline_1000, tmp_path / "noclip"))
        diffusers.DDIMScheduler(clip_sample=False).save_pretrained(os.path.join(pipeline_1000, "scheduler"))
    source = dtviz.load(pipeline_1000, device="cpu")
    labels, steps, scale, seed = [3, 999], 5, 4.0, 11
    ours = Generator(source).sample(labels, SampleSettings(steps=steps, cfg_scale=scale, seed=seed))
    noise = initial_noise((4, 8, 8), seed, range(len(labels)), "cpu")
    monkeypatch.setattr(pipeline_dit, "randn_tensor", lambda *a, **k: noise.clone())
    scheduler = diffusers.DDIMScheduler.from_pretrained(os.path.join(pipeline_1000, "scheduler"))
    assert scheduler.config.clip_sample == clip  # the pipeline's own scheduler, clipping x0 or not
    pipe = diffusers.DiTPipeline(transformer=source.transformer, vae=diffusers.AutoencoderKL.from_pretrained(
        os.path.join(pipeline_1000, "vae")), scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(class_labels=labels, guidance_scale=scale, num_inference_steps=steps, output_type="np").images
    assert ours.shape == ref.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(ours, ref, atol=2e-4)


def test_diffusers_scheduler_other_than_linear_is_refused_by_dit_samplers_only(tmp_path, pipeline_1000):
    folder = shutil.copytree(pipeline_1000, tmp_path / "copy")
    diffusers.DDIMScheduler(beta_schedule="scaled_linear").save_pretrained(os.path.join(folder, "scheduler"))
    gen = Generator(dtviz.load(str(folder), device="cpu"))  # its own scheduler samples it (tests/test_release_schedules.py)
    assert type(gen.sampler(5)).__name__ == "PipelineSchedulerSampler"
    with pytest.raises(DtvizInputError, match="beta_schedule"):
        gen.sampler(5, "ddim")


def zero_columns(transformer, keep: np.ndarray):
    """The oracle: column i of every norm1.linear and of proj_out_1 zeroed where keep[i] is False."""
    m = copy.deepcopy(transformer)
    drop = torch.from_numpy(~keep)
    with torch.no_grad():
        for block in m.transformer_blocks:
            block.norm1.linear.weight[:, drop] = 0
        m.proj_out_1.weight[:, drop] = 0
    return m


@torch.no_grad()
@pytest.mark.parametrize("prune_null", [False, True])
def test_diffusers_pruning_hook_matches_weight_zeroing_oracle(prune_null):
    transformer = tiny_transformer(out_channels=8)
    d = transformer.transformer_blocks[0].norm1.emb.class_embedder.embedding_table.weight.shape[1]
    keep = np.ones(d, dtype=bool)
    keep[[0, 5, 11]] = False
    spec = PruneSpec(dims=(0, 5, 11), prune_null=prune_null)
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 3, 7])
    x = torch.randn(3, 4, 8, 8, generator=g)
    xb, yb, tb = torch.cat([x, x]), torch.cat([y, torch.full_like(y, NUM_CLASSES)]), torch.full((6,), 421)

    def run(model):
        return model(xb, timestep=tb, class_labels=yb).sample

    with pruned(transformer, spec, mask=keep):
        hooked = run(transformer)
    baseline, oracle = run(transformer), run(zero_columns(transformer, keep))
    assert torch.equal(hooked[:3], oracle[:3])
    assert torch.equal(hooked[3:], oracle[3:] if prune_null else baseline[3:])
    assert not torch.equal(hooked[:3], baseline[:3])
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in transformer.modules())


def test_diffusers_generator_pruning(tmp_path, vae_model):
    folder = write_pipeline(tmp_path / "pipe", tiny_transformer())
    save_vae(vae_model, os.path.join(folder, "vae"))
    gen = Generator(dtviz.load(folder, device="cpu"))
    settings = SampleSettings(steps=3, seed=2)
    base = gen.sample([1, 2], settings)
    assert np.array_equal(gen.sample([1, 2], settings, prune=PruneSpec(mode="tail", tau=0.0)), base)
    assert not np.array_equal(gen.sample([1, 2], settings, prune=PruneSpec(dims=(0, 1, 2, 3), schedule="last:1")), base)
