"""diffusers DiTPipeline sources: loading through dtviz.load, parity of c with diffusers' own modules and
with an independent re-implementation of its formula, the Hugging Face cache, and bad input.

The pipeline is built here: a tiny DiTTransformer2DModel with random weights saved with save_pretrained,
next to a hand-written model_index.json (the VAE is never loaded, so none is saved).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch

import dtviz
from tests.doc_pins import assert_documented
from dtviz.errors import DtvizInputError
from dtviz.models.dit import timestep_features
from dtviz.sources.diffusers_dit import DiffusersSource, list_cached_pipelines

diffusers = pytest.importorskip("diffusers")

NUM_CLASSES = 10
DIM = 16  # num_attention_heads * attention_head_dim
ID2LABEL = {str(i): f"animal {i}" for i in range(NUM_CLASSES)}
ID2LABEL["3"] = "tench, Tinca tinca"  # synonyms stay one name, as in the ImageNet pipelines
WEIGHTS = os.path.join("transformer", "diffusion_pytorch_model.safetensors")


def tiny_transformer(seed: int = 0):
    """Random weights everywhere: the default init zeroes adaLN and would hide mistakes."""
    torch.manual_seed(seed)
    model = diffusers.DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, num_layers=2,
                                            sample_size=8, patch_size=2, num_embeds_ada_norm=NUM_CLASSES)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return model.eval()


def write_pipeline(folder, model, id2label=ID2LABEL) -> str:
    model.save_pretrained(os.path.join(folder, "transformer"))
    diffusers.DDIMScheduler().save_pretrained(os.path.join(folder, "scheduler"))
    index = {"_class_name": "DiTPipeline", "_diffusers_version": diffusers.__version__,
             "scheduler": ["diffusers", "DDIMScheduler"], "transformer": ["diffusers", "DiTTransformer2DModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    if id2label is not None:
        index["id2label"] = id2label
    with open(os.path.join(folder, "model_index.json"), "w") as fh:
        json.dump(index, fh)
    return str(folder)


@pytest.fixture(scope="module")
def model():
    return tiny_transformer()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, model) -> str:
    return write_pipeline(tmp_path_factory.mktemp("dit-pipeline"), model)


@pytest.fixture(scope="module")
def source(pipeline):
    return dtviz.load(pipeline, device="cpu")


def assert_same_c(a, b):
    """Equal up to float32 rounding: the CPU matmul kernel, and so the last bit, depends on batch shape and even
    on the weights' memory alignment, which differs between two loads of the same file."""
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-5)


def broken_copy(pipeline, tmp_path) -> str:
    return shutil.copytree(pipeline, tmp_path / "copy")


# ----------------------------------------------------------------------------- reference formula
def diffusers_timestep_features(t: float, dim: int = 256) -> torch.Tensor:
    """get_timestep_embedding(flip_sin_to_cos=True, downscale_freq_shift=1), written out independently.

    float32 like diffusers: at t = 999 the phase t·f alone carries ~1e-4 of float32 rounding.
    """
    half = dim // 2
    exponent = -math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1)
    args = torch.tensor([float(t)]) * torch.exp(exponent)
    return torch.cat([torch.cos(args), torch.sin(args)])[None]


def reference_c(model, t: float, features=diffusers_timestep_features) -> np.ndarray:
    """table[y] + linear_2(SiLU(linear_1(φ(t)))) from block 0's raw weights, null row dropped."""
    emb = model.transformer_blocks[0].norm1.emb
    w1, b1 = emb.timestep_embedder.linear_1.weight, emb.timestep_embedder.linear_1.bias
    w2, b2 = emb.timestep_embedder.linear_2.weight, emb.timestep_embedder.linear_2.bias
    with torch.no_grad():
        t_emb = torch.nn.functional.silu(features(t) @ w1.T + b1) @ w2.T + b2
        return (emb.class_embedder.embedding_table.weight[:NUM_CLASSES] + t_emb).numpy()


# ------------------------------------------------------------------------------------- loading
def test_loads_through_dispatch_with_model_card(source, model):
    assert isinstance(source, DiffusersSource)
    assert source.family.key == "diffusers"
    assert (source.num_classes, source.dim) == (NUM_CLASSES, DIM)
    assert source.t0 == 980  # DDIMScheduler (leading) at DiTPipeline's default 50 steps: 980, 960, …, 0
    assert source.info.parameters == sum(p.numel() for p in model.parameters())
    # no vae/ in this pipeline: sampling waits for a VAE (tests/test_vae.py), unless the local HF cache has one
    assert source.info.can_sample == (source.info.extra["vae"] is not None)
    assert source.info.can_sample or "VAE" in source.info.sample_note
    assert "CombinedTimestepLabelEmbeddings" in source.info.family_note
    assert source.info.extra["blocks_share_embedder"] is False  # random blocks: the note must say c is block 0's
    assert "block 0" in source.info.family_note
    assert source.class_names == [ID2LABEL[str(i)] for i in range(NUM_CLASSES)]
    assert source.class_names[3] == "tench, Tinca tinca"
    assert source.transformer.training is False and source.device.type == "cpu"


def test_class_names_fall_back_without_id2label(tmp_path, model):
    src = dtviz.load(write_pipeline(tmp_path, model, id2label={"1": "only one"}), device="cpu")
    assert src.class_names[:3] == ["class 0", "only one", "class 2"]


def test_legacy_transformer2dmodel_config_loads(pipeline, tmp_path, source):
    """facebook/DiT-XL-2-* ship _class_name Transformer2DModel (norm_type ada_norm_zero)."""
    folder = broken_copy(pipeline, tmp_path)
    config_path = folder / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["_class_name"] = "Transformer2DModel"
    config_path.write_text(json.dumps(config))
    assert_same_c(dtviz.load(str(folder), device="cpu").embeddings(), source.embeddings())


def test_pytorch_bin_weights_load_and_truncation_is_caught(tmp_path, model, source):
    folder = write_pipeline(tmp_path, model)
    os.remove(os.path.join(folder, WEIGHTS))
    model.save_pretrained(os.path.join(folder, "transformer"), safe_serialization=False)
    assert_same_c(dtviz.load(folder, device="cpu").embeddings(), source.embeddings())
    weights = os.path.join(folder, "transformer", "diffusion_pytorch_model.bin")
    data = open(weights, "rb").read()
    open(weights, "wb").write(data[: len(data) // 2])
    with pytest.raises(DtvizInputError, match="damaged or truncated"):
        dtviz.load(folder, device="cpu")


def test_blocks_sharing_one_embedder_are_reported(tmp_path):
    model = tiny_transformer(seed=1)
    model.transformer_blocks[1].norm1.emb.load_state_dict(model.transformer_blocks[0].norm1.emb.state_dict())
    src = dtviz.load(write_pipeline(tmp_path, model), device="cpu")
    assert src.info.extra["blocks_share_embedder"] is True and "block 0" not in src.info.family_note


# -------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("t", [999, 500, 1])
def test_c_matches_diffusers_module_and_reference_formula(source, model, t):
    c = source.embeddings(t=t)
    assert c.dtype == np.float32 and c.shape == (NUM_CLASSES, DIM)
    emb = model.transformer_blocks[0].norm1.emb
    with torch.no_grad():
        direct = emb(torch.full((NUM_CLASSES,), t), torch.arange(NUM_CLASSES), hidden_dtype=torch.float32).numpy()
    assert_same_c(c, direct)
    np.testing.assert_allclose(c, reference_c(model, t), rtol=1e-5, atol=1e-5)


def test_c_differs_from_native_dit_formula(source, model):
    """Same weights, DiT's frequencies (÷half instead of ÷(half−1)): a clearly different c at t0."""
    native = reference_c(model, 999, features=lambda t: timestep_features(torch.tensor([float(t)])))
    assert np.abs(source.embeddings() - native).max() > 1e-2


def test_parts_default_t0_and_null_row(source, model):
    table = model.transformer_blocks[0].norm1.emb.class_embedder.embedding_table.weight.detach().numpy()
    assert table.shape[0] == NUM_CLASSES + 1
    y, t_part, c = (source.embeddings(part=p) for p in ("y", "t", "y+t"))
    np.testing.assert_array_equal(y, table[:NUM_CLASSES])
    assert not any(np.allclose(row, table[NUM_CLASSES]) for row in y)
    np.testing.assert_array_equal(t_part, np.repeat(t_part[:1], NUM_CLASSES, axis=0))
    np.testing.assert_array_equal(c, y + t_part)
    np.testing.assert_array_equal(c, source.embeddings(t=980))
    assert np.abs(c - source.embeddings(t=0)).max() > 1e-3
    np.testing.assert_array_equal(source.embeddings(classes=[7, 2], batch_size=1), c[[7, 2]])
    with pytest.raises(DtvizInputError, match="null class"):
        source.embeddings(classes=[NUM_CLASSES])
    with pytest.raises(DtvizInputError, match="t must lie in"):
        source.embeddings(t=1000)


def test_loading_never_writes_into_the_folder(pipeline):
    def snapshot():
        return {os.path.relpath(os.path.join(root, n), pipeline): hashlib.sha256(open(os.path.join(root, n), "rb").read()).hexdigest()
                for root, _, names in os.walk(pipeline) for n in names}

    before = snapshot()
    dtviz.load(pipeline, device="cpu").embeddings()
    assert snapshot() == before


# ----------------------------------------------------------------------------- Hugging Face cache
def lay_out_cache(cache, pipeline, repo="org--dit-tiny", revision="abc", mtime=None) -> str:
    snap = cache / f"models--{repo}" / "snapshots" / revision
    shutil.copytree(pipeline, snap)
    if mtime is not None:
        os.utime(snap, (mtime, mtime))
    return str(snap)


def test_hf_cache_listing_and_loading(pipeline, source, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    lay_out_cache(cache, pipeline, revision="old", mtime=1_000_000)
    newest = lay_out_cache(cache, pipeline, revision="new", mtime=2_000_000)
    other = cache / "models--org--sd" / "snapshots" / "x"
    other.mkdir(parents=True)
    (other / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (cache / "datasets--org--data" / "snapshots" / "y").mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))

    assert list_cached_pipelines() == [{"repo_id": "org/dit-tiny", "revision": "new", "path": newest},
                                       {"repo_id": "org/dit-tiny", "revision": "old", "path": str(cache / "models--org--dit-tiny" / "snapshots" / "old")}]
    src = dtviz.load("hf:org/dit-tiny", device="cpu")
    assert isinstance(src, DiffusersSource) and src.info.name == "org/dit-tiny" and src.info.extra["revision"] == "new"
    assert_same_c(src.embeddings(), source.embeddings())

    # refs/main names the revision huggingface_hub itself would open, so it wins over a newer snapshot
    (cache / "models--org--dit-tiny" / "refs").mkdir()
    (cache / "models--org--dit-tiny" / "refs" / "main").write_text("old")
    assert dtviz.load("hf:org/dit-tiny", device="cpu").info.extra["revision"] == "old"

    with pytest.raises(DtvizInputError, match=r"org/missing.*not there.*cached DiT pipelines: org/dit-tiny"):
        dtviz.load("hf:org/missing")
    with pytest.raises(DtvizInputError, match="org/sd.*not there"):
        dtviz.load("hf:org/sd")
    with pytest.raises(DtvizInputError, match="repo id"):
        dtviz.load("hf:no-slash")


def test_hf_cache_location_follows_hf_home(pipeline, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert list_cached_pipelines() == []
    snap = lay_out_cache(tmp_path / "home" / "hub", pipeline)
    assert list_cached_pipelines() == [{"repo_id": "org/dit-tiny", "revision": "abc", "path": snap}]
    with pytest.raises(DtvizInputError, match="cached DiT pipelines: org/dit-tiny"):
        dtviz.load("hf:org/other")


# ------------------------------------------------------------------------------------ bad input
def _no_transformer(folder):
    shutil.rmtree(folder / "transformer")


def _no_config(folder):
    os.remove(folder / "transformer" / "config.json")


def _config_not_json(folder):
    (folder / "transformer" / "config.json").write_text("{ not json")


def _config_not_dit(folder):
    (folder / "transformer" / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))


def _config_pixart(folder):
    config = json.loads((folder / "transformer" / "config.json").read_text())
    config.update(_class_name="Transformer2DModel", norm_type="ada_norm_single")
    (folder / "transformer" / "config.json").write_text(json.dumps(config))


def _config_other_shape(folder):
    config = json.loads((folder / "transformer" / "config.json").read_text())
    config["num_embeds_ada_norm"] = 20
    (folder / "transformer" / "config.json").write_text(json.dumps(config))


def _no_weights(folder):
    os.remove(folder / WEIGHTS)


def _truncated_weights(folder):
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(data[: len(data) // 2])


def _garbage_weights(folder):
    (folder / WEIGHTS).write_bytes(np.random.default_rng(0).bytes(4096))


def _embedder_missing(folder):
    from safetensors.torch import load_file, save_file

    state = {k: v for k, v in load_file(folder / WEIGHTS).items() if "norm1.emb.class_embedder" not in k}
    save_file(state, folder / WEIGHTS)


def _nan_label_table(folder):
    from safetensors.torch import load_file, save_file

    state = load_file(folder / WEIGHTS)
    state["transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight"][2, 3] = float("nan")
    save_file(state, folder / WEIGHTS)


def _index_not_json(folder):
    (folder / "model_index.json").write_text('{"_class_name": "DiTPipeline",')


def _id2label_list(folder):
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "DiTPipeline", "id2label": ["a", "b"]}))


DAMAGES = [
    (_no_transformer, r"transformer/ subfolder.*DiTPipeline"),
    (_no_config, r"transformer config .*config\.json.*does not exist"),
    (_config_not_json, r"config\.json.*valid JSON"),
    (_config_not_dit, r"DiT transformer.*UNet2DConditionModel"),
    (_config_pixart, r"DiT transformer.*ada_norm_single"),
    (_config_other_shape, r"could not load.*damaged or belong to another config"),
    (_no_weights, r"diffusion_pytorch_model\.safetensors or diffusion_pytorch_model\.bin.*found only config\.json"),
    (_truncated_weights, r"safetensors.*truncated"),
    (_garbage_weights, r"safetensors.*(invalid header|truncated)"),
    (_embedder_missing, r"embedder weights.*class_embedder.*missing"),
    (_nan_label_table, r"embedding_table.*1 NaN"),
    (_index_not_json, r"model_index\.json.*valid JSON"),
    (_id2label_list, r"id2label.*list"),
]


def test_the_damaged_folders_are_counted_in_the_docs():
    assert_documented("docs/reliability.md", f"{len(DAMAGES)} diffusers-folder cases")


@pytest.mark.parametrize("damage, expected", DAMAGES)
def test_bad_pipeline_folders_raise_one_clear_error(pipeline, tmp_path, damage, expected):
    folder = broken_copy(pipeline, tmp_path)
    damage(folder)
    with pytest.raises(DtvizInputError, match=expected):
        dtviz.load(str(folder), device="cpu")


def test_t_bias_name_is_the_bias_that_absorbs_a_shift_of_the_label_table(source, model):
    """dtviz.analysis.label_split: −a on the named bias and +a on every class row (null too) leave c as it was."""
    import copy

    shifted = copy.deepcopy(model)
    state = shifted.state_dict()
    a = torch.linspace(-2, 2, state[source.t_bias_name].shape[0])
    table = "transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight"
    with torch.no_grad():
        dict(shifted.named_parameters())[source.t_bias_name].sub_(a)
        dict(shifted.named_parameters())[table].add_(a)
    for t in (999.0, 500.0):
        assert_same_c(reference_c(shifted, t), reference_c(model, t))
