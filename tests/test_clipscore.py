"""CLIP score (dtviz.evaluation.clipscore) on tiny random transformers CLIPs saved with save_pretrained: a known answer from
the projection weights, batching and grayscale invariance, offline discovery, and the sweep's CLIP column."""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch

from dtviz.cli.main import main
from dtviz.evaluation.clipscore import ClipScorer, cached_clip_folders, condition_texts, find_clip
from dtviz.errors import DtvizInputError

LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def save_tiny_clip(folder: str, seed: int = 0) -> str:
    """A 2-layer CLIP with a real CLIPTokenizer (byte-level BPE files, letters only) and CLIPImageProcessor at 32²."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    os.makedirs(folder, exist_ok=True)
    vocab = {c: i for i, c in enumerate(LETTERS)}
    vocab.update({c + "</w>": len(LETTERS) + i for i, c in enumerate(LETTERS)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    with open(os.path.join(folder, "vocab.json"), "w") as fh:
        json.dump(vocab, fh)
    with open(os.path.join(folder, "merges.txt"), "w") as fh:
        fh.write("#version: 0.2\n")
    tok = CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"))
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(folder)
    torch.manual_seed(seed)
    eos = vocab["<|endoftext|>"]
    cfg = CLIPConfig(text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, max_position_embeddings=77, bos_token_id=eos - 1,
                                      eos_token_id=eos, pad_token_id=eos),
                     vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                        image_size=32, patch_size=8), projection_dim=16)
    CLIPModel(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    return save_tiny_clip(str(tmp_path_factory.mktemp("clip") / "tiny-clip"))


def _images(n: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, channels), dtype=np.uint8)


def test_known_answer_from_the_projection_weights(clip_folder, tmp_path):
    """With both final layer norms' weights zeroed, the pooled embeddings are the norms' biases whatever the input,
    so the score is 100·max(cos(P_v b_v, P_t b_t), 0), computed here in float64 from the weights alone."""
    from transformers import CLIPModel

    rng = np.random.default_rng(1)
    expected = []
    for i, sign in enumerate((1.0, -1.0)):  # text embedding near +e_v (a positive cosine), then near -e_v (clamped to 0)
        model = CLIPModel.from_pretrained(clip_folder, local_files_only=True)
        p_v = model.visual_projection.weight.detach().double().numpy()
        p_t = model.text_projection.weight.detach().double().numpy()
        b_v = rng.normal(size=32)
        b_t = np.linalg.lstsq(p_t, sign * p_v @ b_v + 0.3 * rng.normal(size=16), rcond=None)[0]
        with torch.no_grad():
            for norm, bias in ((model.vision_model.post_layernorm, b_v), (model.text_model.final_layer_norm, b_t)):
                norm.weight.zero_()
                norm.bias.copy_(torch.from_numpy(bias))
        folder = str(tmp_path / f"fixed{i}")
        model.save_pretrained(folder)
        for name in os.listdir(clip_folder):
            if not name.startswith(("model", "config")):
                os.link(os.path.join(clip_folder, name), os.path.join(folder, name))
        e_v, e_t = p_v @ b_v, p_t @ b_t
        cos = e_v @ e_t / np.linalg.norm(e_v) / np.linalg.norm(e_t)
        expected.append(100 * max(cos, 0.0))
        got = ClipScorer(folder).scores(_images(3), ["a cat", "dog", "photo 7"])
        np.testing.assert_allclose(got, expected[-1], rtol=1e-5, atol=1e-5)
    assert expected[0] > 50 and expected[1] == 0.0


def test_scores_do_not_depend_on_batching_or_gray_channels(clip_folder):
    scorer = ClipScorer(clip_folder)
    texts = ["a photo of a cat", "b", "a very long caption " * 3, "z9"]
    gray = _images(4, channels=1, seed=2)
    whole = scorer.scores(gray, texts, batch_size=4)
    np.testing.assert_allclose(scorer.scores(gray, texts, batch_size=1), whole, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(scorer.scores(np.repeat(gray, 3, -1), texts), whole, rtol=1e-6)
    assert whole.shape == (4,) and np.all((whole >= 0) & (whole <= 100))
    # the raw cosines of this random CLIP: the score is their clamp, image by image
    with torch.no_grad():
        batch = scorer.processor(text=texts, images=list(np.repeat(gray, 3, -1)), return_tensors="pt", padding=True)
        m = scorer.model
        img = m.visual_projection(m.vision_model(pixel_values=batch["pixel_values"]).pooler_output).double()
        txt = m.text_projection(m.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output).double()
    cos = (torch.nn.functional.normalize(img, dim=-1) * torch.nn.functional.normalize(txt, dim=-1)).sum(-1).numpy()
    np.testing.assert_allclose(whole, 100 * np.clip(cos, 0, None), rtol=1e-5, atol=1e-5)


def test_bad_input_is_one_sentence(clip_folder, tmp_path):
    (tmp_path / "notclip").mkdir()
    (tmp_path / "notclip" / "config.json").write_text('{"model_type": "vit"}')
    with pytest.raises(DtvizInputError) as err:
        find_clip(str(tmp_path / "notclip"))
    assert "'notclip' is not one" in str(err.value) and str(tmp_path) not in str(err.value)
    scorer = ClipScorer(clip_folder)
    with pytest.raises(DtvizInputError, match="one text per image"):
        scorer.scores(_images(2), ["a"])
    with pytest.raises(DtvizInputError, match="expects uint8 images"):
        scorer.scores(_images(2).astype(np.float32), ["a", "b"])


def test_found_in_the_hugging_face_cache_offline(clip_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert find_clip() is None
    snap = tmp_path / "hub" / "models--openai--clip-vit-base-patch32" / "snapshots" / ("0" * 40)
    snap.parent.mkdir(parents=True)
    os.symlink(clip_folder, snap)
    assert cached_clip_folders() == [str(snap)] and find_clip() == str(snap)


def test_texts_are_prompts_or_a_photo_of_the_class(tmp_path):
    from t2i_factories import build_sd3, save_pipeline

    import dtviz

    builtin = dtviz.load("builtin")
    assert condition_texts(builtin, [0, 2]) == [f"a photo of a {builtin.class_names[0]}", f"a photo of a {builtin.class_names[2]}"]
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red car\na cat\n")
    sd3 = dtviz.load(save_pipeline(build_sd3(), str(tmp_path / "sd3")), prompts=str(prompts))
    assert condition_texts(sd3, [1, 0]) == ["a cat", "a red car"]


# ---------------------------------------------------------------------------------------- the sweep

def _sweep(out, *extra):
    return main(["sweep", "builtin", "--device", "cpu", "--classes", "0,1", "--per-class", "2", "--seed", "0",
                 "--steps", "4", "--tau", "0,0.5", "--out", str(out), *extra])


def test_sweep_writes_the_clip_column(clip_folder, tmp_path):
    out = tmp_path / "sweep"
    assert _sweep(out, "--metrics", "clip", "--clip", clip_folder) == 0
    with open(out / "table.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["setting"] for r in rows][0] == "baseline" and all(r["clip"] != "" for r in rows)
    assert rows[1]["clip"] == rows[0]["clip"]  # τ = 0 prunes nothing: the baseline's samples and score
    # the column is the mean of the per-sample scores of the written samples against "a photo of a {class}"
    import dtviz
    from PIL import Image

    names = dtviz.load("builtin").class_names
    folder = out / rows[2]["setting"]
    files = sorted(p for p in os.listdir(folder) if p.endswith(".png"))
    assert len(files) == 4
    images = np.stack([np.asarray(Image.open(folder / f).convert("L"))[..., None] for f in files])
    labels = [0, 0, 1, 1]
    expected = ClipScorer(clip_folder).scores(images, [f"a photo of a {names[i]}" for i in labels]).mean()
    assert float(rows[2]["clip"]) == pytest.approx(expected, rel=1e-4, abs=1e-4)
    md = (out / "table.md").read_text(encoding="utf-8")
    assert "CLIP ↑" in md and "100 · max(cos, 0)" in md


def test_sweep_without_a_clip_says_how_to_enable_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    out = tmp_path / "sweep"
    assert _sweep(out, "--metrics", "clip") == 0
    err = capsys.readouterr().err
    assert "Skipped CLIP: no local CLIP; pass --clip FOLDER" in err
    assert "Skipped CLIP" in (out / "table.md").read_text(encoding="utf-8")


def test_torchrun_gathers_clip_scores_not_images(clip_folder, tmp_path):
    """Two processes score their own chunks and rank 0 gathers the scores: the same table as one process."""
    from torchrun import run_dtviz, why_a_rank_failed

    extra = ["--metrics", "clip", "--clip", clip_folder, "--batch-size", "2", "--classes", "0,1,2", "--per-class", "1"]
    args = ["sweep", "builtin", "--device", "cpu", "--seed", "0", "--steps", "4", "--tau", "0.5", *extra]
    one = tmp_path / "one"
    assert main([*args, "--out", str(one)]) == 0
    two = tmp_path / "two"
    proc = run_dtviz([*args, "--out", str(two)])
    assert proc.returncode == 0, why_a_rank_failed(proc.stderr)
    assert (one / "table.csv").read_text() == (two / "table.csv").read_text()
    with open(two / "table.csv", newline="") as fh:
        assert all(r["clip"] != "" for r in csv.DictReader(fh))
