"""Text-to-image pipelines (SD3, Flux, PixArt) as sources: c against the pipeline's own encode_prompt +
time_text_embed, the CLI's JSON, the Hugging Face cache layout, pruning against the zeroed-column oracle."""
from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest
import torch

from t2i_factories import build_flux, build_pixart, build_sd3, save_in_hf_cache, save_pipeline

import dtviz
from dtviz.cli.main import main as cli_main
from dtviz.errors import DtvizInputError
from dtviz.sampling.generate import Generator, SampleSettings
from dtviz.pruning.spec import PruneSpec

PROMPTS = ["a photo of a dog", "a red car at night", "a cat", "an old boat on the sky", "a small green tree"]


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    root = tmp_path_factory.mktemp("t2i")
    built = {"sd3": build_sd3(), "flux": build_flux(guidance=True), "schnell": build_flux(guidance=False),
             "pixart": build_pixart()}
    folders = {name: save_pipeline(pipe, str(root / name)) for name, pipe in built.items()}
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n\n", encoding="utf-8")
    return {"pipes": built, "folders": folders, "prompts": str(prompts), "root": root}


# ------------------------------------------------------------------------------ independent c

@torch.no_grad()
def reference_c(pipe, prompts, t0: float) -> np.ndarray:
    """c through the pipeline's own encode_prompt and the transformer's own time_text_embed, as __call__ feeds it."""
    transformer = pipe.transformer
    if isinstance(pipe, dtviz_pipeline_class("StableDiffusion3Pipeline")):
        _, _, pooled, _ = pipe.encode_prompt(prompt=prompts, prompt_2=None, prompt_3=None,
                                             do_classifier_free_guidance=False, device=torch.device("cpu"))
        timestep = torch.tensor(t0, dtype=torch.float32).expand(len(prompts))
        return transformer.time_text_embed(timestep, pooled).numpy()
    _, pooled, _ = pipe.encode_prompt(prompt=prompts, prompt_2=None, device=torch.device("cpu"))
    timestep = torch.tensor(t0, dtype=torch.float32).expand(len(prompts)).to(torch.float32)
    timestep = (timestep / 1000).to(torch.float32) * 1000  # FluxPipeline passes t/1000, the transformer ×1000
    if transformer.config.guidance_embeds:
        guidance = torch.full([1], 3.5, dtype=torch.float32).expand(len(prompts)).to(torch.float32) * 1000
        return transformer.time_text_embed(timestep, guidance, pooled).numpy()
    return transformer.time_text_embed(timestep, pooled).numpy()


def dtviz_pipeline_class(name):
    import diffusers

    return getattr(diffusers, name)


def scheduler_t0(pipe, kind: str) -> float:
    """The first timestep __call__ would use at its defaults, computed here from the pipeline's own helpers."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

    sched = copy.deepcopy(pipe.scheduler)
    if kind == "sd3":
        ts, _ = retrieve_timesteps(sched, 28, "cpu")
        return float(ts[0])
    vsf = pipe.vae_scale_factor
    side = 2 * (128 * vsf // (vsf * 2))
    mu = calculate_shift((side // 2) ** 2, 256, 4096, 0.5, 1.15)
    ts, _ = retrieve_timesteps(sched, 28, "cpu", sigmas=np.linspace(1.0, 1 / 28, 28), mu=mu)
    return float(ts[0])


@pytest.mark.parametrize("name", ["sd3", "flux", "schnell"])
def test_c_equals_the_pipelines_own_modules(pipes, name):
    src = dtviz.load(pipes["folders"][name], prompts=pipes["prompts"])
    pipe = pipes["pipes"][name]
    assert src.class_names == PROMPTS and src.num_classes == 5 and src.info.extra["rows"] == "prompts"
    t0 = scheduler_t0(pipe, "sd3" if name == "sd3" else "flux")
    assert src.t0 == t0
    ref = reference_c(pipe, PROMPTS, t0)
    np.testing.assert_allclose(src.embeddings(), ref, rtol=0, atol=1e-6)
    # another t, and y + t = c (the parts are the embedder's own sub-modules)
    np.testing.assert_allclose(src.embeddings(t=500.0), reference_c(pipe, PROMPTS, 500.0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(src.embeddings(part="y") + src.embeddings(part="t"), src.embeddings(), atol=1e-6)
    assert np.ptp(src.embeddings(part="t"), axis=0).max() == 0  # the t part is one row for every prompt


def test_flux_guidance_is_in_c_only_for_dev(pipes):
    dev = dtviz.load(pipes["folders"]["flux"], prompts=PROMPTS)
    schnell = dtviz.load(pipes["folders"]["schnell"], prompts=PROMPTS)
    assert "g = 3.5" in dev.info.family_note and "no guidance" in schnell.info.family_note
    assert dev.guidance_input(1) is not None and schnell.guidance_input(1) is None


def test_cli_stats_json_equals_the_independent_computation(pipes, capsys):
    from dtviz.analysis.stats import ConditionStats

    folder = pipes["folders"]["sd3"]
    assert cli_main(["stats", folder, "--prompts", pipes["prompts"], "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    pipe = pipes["pipes"]["sd3"]
    from dtviz.pruning.defaults import default_tau

    fitted = ConditionStats().fit(reference_c(pipe, PROMPTS, scheduler_t0(pipe, "sd3")))
    assert out["tau"] == pytest.approx(default_tau(fitted))  # --tau auto: the source's own τ
    expected = fitted.summary(out["tau"])
    assert out["num_classes"] == 5 and out["rows"] == "prompts" and out["family"] == "sd3" and out["t"] == 1000.0
    for key in ("pr", "npr", "cosine"):
        for sub, value in expected[key].items():
            assert out[key][sub] == pytest.approx(value, rel=1e-5, abs=1e-6), (key, sub)
    assert out["head_dims"] == expected["head_dims"]


def test_cli_refuses_a_bad_prompts_file_in_one_sentence(pipes, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf-8")
    assert cli_main(["stats", pipes["folders"]["flux"], "--prompts", str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "at least one prompt" in err


def test_hf_cache_layout_lists_and_loads_sd3_and_flux(pipes, tmp_path, monkeypatch):
    from dtviz.sources.diffusers_dit import list_cached_pipelines

    cache = tmp_path / "hub"
    save_in_hf_cache(pipes["pipes"]["sd3"], str(cache), "stabilityai/tiny-sd3")
    save_in_hf_cache(pipes["pipes"]["flux"], str(cache), "black-forest-labs/tiny-flux")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert {p["repo_id"] for p in list_cached_pipelines()} == {"stabilityai/tiny-sd3", "black-forest-labs/tiny-flux"}
    for repo, name in (("stabilityai/tiny-sd3", "sd3"), ("black-forest-labs/tiny-flux", "flux")):
        src = dtviz.load(f"hf:{repo}", prompts=PROMPTS)
        assert src.info.name == repo and src.family.key == name
        direct = dtviz.load(pipes["folders"][name], prompts=PROMPTS)
        np.testing.assert_array_equal(src.embeddings(), direct.embeddings())


def test_pixart_loads_with_c_from_the_timestep_alone(pipes):
    src = dtviz.load(pipes["folders"]["pixart"], prompts=PROMPTS)
    E = src.embeddings()
    assert E.shape == (5, src.dim) and (E == E[0]).all()  # the same c for every prompt
    assert "same for every prompt" in src.info.family_note and not src.info.can_sample
    # c is the transformer's own embedded_timestep at t0 = the first DPM-Solver timestep at 20 steps
    pipe = pipes["pipes"]["pixart"]
    sched = copy.deepcopy(pipe.scheduler)
    sched.set_timesteps(20)
    assert src.t0 == float(sched.timesteps[0])
    with torch.no_grad():
        _, ref = pipe.transformer.adaln_single(torch.tensor([src.t0]), {"resolution": None, "aspect_ratio": None},
                                               batch_size=1, hidden_dtype=torch.float32)
    np.testing.assert_allclose(E[0], ref[0].numpy(), rtol=0, atol=1e-6)
    with pytest.raises(DtvizInputError, match="timestep alone"):
        src.embeddings(part="y")


# ------------------------------------------------------------------------------ sampling & pruning

def column_oracle(transformer, keep: np.ndarray):
    """A copy of the transformer with the input columns of every consumer of c zeroed where keep is False."""
    oracle = copy.deepcopy(transformer)
    drop = torch.as_tensor(~keep)
    with torch.no_grad():
        for name, module in oracle.named_modules():
            if name.split(".")[-1] == "linear" and name.split(".")[-2] in ("norm1", "norm1_context", "norm", "norm_out"):
                module.weight[:, drop] = 0
    return oracle


@pytest.mark.parametrize("name", ["sd3", "flux"])
def test_pruned_sampling_equals_the_zeroed_column_oracle(pipes, name):
    src = dtviz.load(pipes["folders"][name], prompts=PROMPTS)
    gen = Generator(src)
    settings = SampleSettings(steps=3, size=16, seed=5)
    spec = PruneSpec(mode="tail", tau=0.1, mask="global", prune_null=True)
    keep = gen.global_mask(spec)
    assert 0 < (~keep).sum() < src.dim
    seen = []
    pruned = gen.sample([0, 3], settings, prune=spec, on_step=lambda i, n: seen.append((i, n)))
    assert seen == [(0, 3), (1, 3), (2, 3)]
    baseline = gen.sample([0, 3], settings)
    pipe = gen.pipeline()
    original = pipe.transformer
    try:
        pipe.transformer = column_oracle(original, keep)
        oracle = gen.sample([0, 3], settings)
    finally:
        pipe.transformer = original
    np.testing.assert_array_equal(pruned, oracle)
    assert np.abs(pruned - baseline).max() > 0
    # unpruned dtviz sampling is the pipeline's own run with the same latents
    latents = gen.initial_latents(pipe, 16, 16, 5, np.arange(2))
    own = pipe(prompt=[PROMPTS[0], PROMPTS[3]], num_inference_steps=3, height=16, width=16, latents=latents,
               output_type="np", guidance_scale=src.defaults["guidance"]).images
    np.testing.assert_array_equal(baseline, own)


def test_sd3_samples_without_t5(pipes, tmp_path):
    folder = save_pipeline(build_sd3(with_t5=False), str(tmp_path / "no_t5"))
    src = dtviz.load(folder, prompts=PROMPTS)
    images = Generator(src).sample([1], SampleSettings(steps=2, size=16))
    assert images.shape == (1, 16, 16, 3) and np.isfinite(images).all()
    assert not os.path.exists(os.path.join(folder, "text_encoder_3"))


# ------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("content, expected", [
    (b"\x00\x01\x02binary", "binary data"),
    (b"\xff\xfe\xfa not utf-8", "UTF-8"),
    (("x" * 1001).encode(), "at most 1000 characters"),
    (("a cat\n" * 10_001).encode(), "at most 10000 prompts"),
    (b"\n\n   \n", "at least one prompt"),
])
def test_bad_prompt_files_are_one_sentence_without_the_path(tmp_path, content, expected):
    from dtviz.sources.prompts import read_prompts

    path = tmp_path / "prompts.txt"
    path.write_bytes(content)
    with pytest.raises(DtvizInputError, match=expected) as info:
        read_prompts(str(path))
    assert str(tmp_path) not in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == content


def test_a_t2i_folder_without_embedder_weights_is_one_sentence(pipes, tmp_path):
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(pipes["folders"]["flux"], folder)
    (folder / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(DtvizInputError, match="expected transformer weights") as info:
        dtviz.load(str(folder), prompts=PROMPTS)
    assert str(tmp_path) not in str(info.value)


def test_shipped_prompt_sets():
    from dtviz.sources.prompts import read_prompts

    imagenet = read_prompts("imagenet-photo")
    assert len(imagenet) == 1000 == len(set(imagenet))
    assert imagenet[0] == "a photo of a tench" and imagenet[207] == "a photo of a golden retriever"
    assert len(read_prompts("varied")) == 50


def test_sana_loads_with_c_from_the_timestep_alone(tmp_path):
    """Sana's c is time_embed's embedded timestep (AdaLayerNormSingle), at the first timestep of its own
    flow DPM-Solver at SanaPipeline's default 20 steps."""
    from diffusers import DPMSolverMultistepScheduler, SanaTransformer2DModel

    torch.manual_seed(0)
    transformer = SanaTransformer2DModel(in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=8,
                                         num_layers=1, num_cross_attention_heads=2, cross_attention_head_dim=8,
                                         cross_attention_dim=16, caption_channels=16, sample_size=8, patch_size=1).eval()
    transformer.save_pretrained(str(tmp_path / "transformer"))
    scheduler = DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True, prediction_type="flow_prediction")
    scheduler.save_pretrained(str(tmp_path / "scheduler"))
    (tmp_path / "model_index.json").write_text(json.dumps({
        "_class_name": "SanaPipeline", "transformer": ["diffusers", "SanaTransformer2DModel"],
        "scheduler": ["diffusers", "DPMSolverMultistepScheduler"]}), encoding="utf-8")
    src = dtviz.load(str(tmp_path), prompts=PROMPTS)
    scheduler.set_timesteps(20)
    assert src.family.key == "sana" and src.t0 == float(scheduler.timesteps[0])
    with torch.no_grad():
        _, ref = transformer.time_embed(torch.tensor([src.t0]), batch_size=1, hidden_dtype=torch.float32)
    E = src.embeddings()
    assert (E == E[0]).all()
    np.testing.assert_allclose(E[0], ref[0].numpy(), rtol=0, atol=1e-6)


def test_parameter_count_from_the_safetensors_headers(pipes):
    src = dtviz.load(pipes["folders"]["flux"], prompts=PROMPTS)
    assert src.info.parameters == sum(p.numel() for p in pipes["pipes"]["flux"].transformer.parameters())


def test_sd3_null_rows_are_pruned_only_when_asked(pipes):
    """SD3's CFG batch is [negative; prompt]: prune_null=False leaves the negative rows' c untouched."""
    src = dtviz.load(pipes["folders"]["sd3"], prompts=PROMPTS)
    gen = Generator(src)
    seen = []
    embed = gen.pipeline().transformer.time_text_embed
    for prune_null in (False, True):
        seen.clear()
        spec = PruneSpec(dims=(0, 1, 2), prune_null=prune_null)
        handle = None
        try:
            from dtviz.pruning.hooks import pruned_output  # the hook Generator installs, then one that records after it

            with pruned_output(embed, spec, mask=gen.global_mask(spec), null_label=-1) as pruner:
                handle = embed.register_forward_hook(lambda m, a, out: seen.append(out.clone()))
                pruner.set_rows([-1, -1, 0, 3])
                gen.pipeline()(prompt=[PROMPTS[0], PROMPTS[3]], num_inference_steps=1, height=16, width=16,
                               output_type="latent", guidance_scale=7.0)
        finally:
            if handle is not None:
                handle.remove()
        c = seen[0]  # (4, d): negative rows first
        assert (c[2:, :3] == 0).all() and (c[:2, :3] != 0).all() != prune_null
        assert (c[:, 3:] != 0).any()


def test_padding_trimmed_pooled_equals_encode_prompt_at_77_tokens(pipes):
    """dtviz pads each CLIP batch to its longest prompt, not 77 tokens; pooled output is read at the EOS of a
    causal encoder, so it must equal encode_prompt's — also for a prompt cut at 77 tokens."""
    prompts = ["a", "a photo of a red car at night with a big old boat", "cat " * 120, "a dog"]
    src = dtviz.load(pipes["folders"]["sd3"], prompts=prompts)
    with torch.no_grad():
        _, _, pooled, _ = pipes["pipes"]["sd3"].encode_prompt(prompt=prompts, prompt_2=None, prompt_3=None,
                                                             do_classifier_free_guidance=False, device=torch.device("cpu"))
    np.testing.assert_allclose(src.pooled().numpy(), pooled.numpy(), rtol=0, atol=1e-6)
    assert src.clip.tokenizer_max_length == 77  # restored after each batch


def test_flux_guidance_is_a_setting(pipes, capsys):
    dev = dtviz.load(pipes["folders"]["flux"], prompts=PROMPTS, guidance=5.0)
    assert "g = 5, set by you" in dev.info.family_note
    pipe = pipes["pipes"]["flux"]
    with torch.no_grad():
        _, pooled, _ = pipe.encode_prompt(prompt=PROMPTS, prompt_2=None, device=torch.device("cpu"))
        ts = (torch.full((5,), dev.t0) / 1000).to(torch.float32) * 1000
        ref = pipe.transformer.time_text_embed(ts, torch.full((5,), 5.0) * 1000, pooled).numpy()
    np.testing.assert_allclose(dev.embeddings(), ref, rtol=0, atol=1e-6)
    assert cli_main(["stats", pipes["folders"]["flux"], "--prompts", pipes["prompts"], "--guidance", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "g = 5, set by you" in out["family_note"]


@pytest.mark.parametrize("schedule, pruned_steps", [("first", [0]), ("last:2", [1, 2]), ("every", [0, 1, 2])])
def test_schedules_count_the_pipelines_steps(pipes, schedule, pruned_steps):
    """What norm_out.linear receives (SiLU(c)) at each of Flux's 3 steps: zero in the pruned dims only at the
    scheduled steps."""
    src = dtviz.load(pipes["folders"]["flux"], prompts=PROMPTS)
    gen = Generator(src)
    seen = []
    linear = gen.pipeline().transformer.norm_out.linear
    handle = linear.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    try:
        gen.sample([1], SampleSettings(steps=3, size=16), prune=PruneSpec(dims=(0, 1), schedule=schedule))
    finally:
        handle.remove()
    assert len(seen) == 3
    assert [i for i, x in enumerate(seen) if (x[:, :2] == 0).all()] == pruned_steps


def test_flux_without_t5_offers_analysis_only(pipes, tmp_path):
    import shutil

    folder = tmp_path / "no_t5"
    shutil.copytree(pipes["folders"]["flux"], folder)
    shutil.rmtree(folder / "text_encoder_2")
    src = dtviz.load(str(folder), prompts=PROMPTS)
    assert src.embeddings().shape == (5, src.dim) and not src.info.can_sample
    with pytest.raises(DtvizInputError, match="text_encoder_2/") as info:
        Generator(src)
    assert str(tmp_path) not in str(info.value)


@pytest.mark.parametrize("name", ["sd3", "flux"])
def test_t_bias_name_absorbs_a_shift_of_the_text_part(pipes, name):
    """dtviz.analysis.label_split: −a on the named timestep bias and +a on the text projection's bias leave c as it
    was (the pipeline's own time_text_embed); PixArt has no text part in c, so no name."""
    src = dtviz.load(pipes["folders"][name], prompts=PROMPTS)
    pipe = copy.deepcopy(pipes["pipes"][name])
    params = dict(pipe.transformer.named_parameters())
    a = torch.linspace(-2, 2, params[src.t_bias_name].shape[0])
    with torch.no_grad():
        params[src.t_bias_name].sub_(a)
        params["time_text_embed.text_embedder.linear_2.bias"].add_(a)
    np.testing.assert_allclose(reference_c(pipe, PROMPTS, 500.0), reference_c(pipes["pipes"][name], PROMPTS, 500.0),
                               rtol=0, atol=1e-5)
    assert dtviz.load(pipes["folders"]["pixart"], prompts=PROMPTS).t_bias_name is None
