"""CLIP score of generated samples against their condition's text, from a local CLIP (the paper's CLIP↑ column).

CLIP score (Hessel et al. 2021, as torchmetrics' ``CLIPScore`` and the paper's Tables 2, 3, 6 report it):
100 · max(cos(E_image(x), E_text(text)), 0) per sample, averaged over the samples. The text is the prompt for a
text-to-image source and "a photo of a {class name}" for class-conditional ones.

The network is Hugging Face transformers' ``CLIPModel`` with its ``CLIPProcessor`` (tokenizer + the image
preprocessing it was trained with), read from a folder saved by ``save_pretrained`` (``--clip PATH``) or from
the Hugging Face cache (openai/clip-vit-large-patch14, -base-patch16, -base-patch32, in that order). Nothing is
downloaded (``local_files_only``); without a CLIP the sweep skips the column in one sentence.
"""
from __future__ import annotations

import json
import os

import numpy as np

from dtviz.errors import DtvizInputError

CLIP_REPOS = ("openai/clip-vit-large-patch14", "openai/clip-vit-base-patch16", "openai/clip-vit-base-patch32")
CLASS_TEMPLATE = "a photo of a {}"


# ----------------------------------------------------------------------------------------- weights

def is_clip_folder(path: str) -> bool:
    """True when ``path`` holds a transformers CLIP (config.json with model_type "clip")."""
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as fh:
            return json.load(fh).get("model_type") == "clip"
    except (OSError, ValueError, AttributeError):
        return False


def cached_clip_folders() -> list[str]:
    """Snapshots of CLIP_REPOS in the Hugging Face cache, in CLIP_REPOS order (newest snapshot first)."""
    from dtviz.sources.hfcache import hub_cache_dir

    found = []
    for repo in CLIP_REPOS:
        snaps = os.path.join(hub_cache_dir(), "models--" + repo.replace("/", "--"), "snapshots")
        if os.path.isdir(snaps):
            revs = sorted(os.listdir(snaps), key=lambda r: os.path.getmtime(os.path.join(snaps, r)), reverse=True)
            found += [os.path.join(snaps, r) for r in revs if is_clip_folder(os.path.join(snaps, r))]
    return found


def find_clip(path: str | None = None) -> str | None:
    """The given folder (must be a transformers CLIP), else the first cached CLIP, else None."""
    if path:
        if not is_clip_folder(path):
            raise DtvizInputError("--clip expects a folder saved by transformers' CLIPModel.save_pretrained (config.json "
                                  f"with model_type \"clip\", weights, tokenizer); {os.path.basename(os.path.normpath(path))!r} is not one.")
        return path
    return next(iter(cached_clip_folders()), None)


def skip_sentence() -> str:
    return ("Skipped CLIP: no local CLIP; pass --clip FOLDER (transformers' CLIPModel.save_pretrained layout) or put "
            f"{CLIP_REPOS[0]} in the Hugging Face cache (nothing is downloaded).")


class ClipScorer:
    """A CLIPModel and its processor, loaded offline from ``path`` onto ``device``, in eval mode."""

    def __init__(self, path: str, device: str = "cpu"):
        from transformers import CLIPModel, CLIPProcessor

        name = os.path.basename(os.path.normpath(path))
        try:
            self.model = CLIPModel.from_pretrained(path, local_files_only=True).to(device).eval()
            self.processor = CLIPProcessor.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as err:
            raise DtvizInputError(f"--clip expects a complete transformers CLIP folder (weights, tokenizer, preprocessor); "
                                  f"{name!r} could not be read ({str(err).splitlines()[0][:160]}).") from None
        self.name = name
        self.device = device

    def scores(self, images: np.ndarray, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """uint8 (N, H, W, C) images, N texts -> (N,) float64 CLIP scores, 100 · max(cos, 0)."""
        import torch

        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise DtvizInputError(f"CLIP score expects uint8 images (N, H, W, 1 or 3); got {images.dtype} {images.shape}.")
        if len(texts) != len(images):
            raise DtvizInputError(f"CLIP score expects one text per image; got {len(texts)} texts for {len(images)} images.")
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        out = []
        with torch.no_grad():
            for s in range(0, len(images), batch_size):
                batch = self.processor(text=list(texts[s:s + batch_size]), images=list(images[s:s + batch_size]),
                                       return_tensors="pt", padding=True, truncation=True)
                batch = {k: v.to(self.device) for k, v in batch.items()}
                # the projected embeddings, spelled out: get_*_features return a tensor in transformers 4, an output object in 5
                img = self.model.visual_projection(self.model.vision_model(pixel_values=batch["pixel_values"]).pooler_output)
                txt = self.model.text_projection(self.model.text_model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output)
                cos = torch.nn.functional.cosine_similarity(img.double(), txt.double(), dim=-1)
                out.append((100 * cos.clamp(min=0)).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)


# ------------------------------------------------------------------------------------------ texts

def condition_texts(source, labels) -> list[str]:
    """The text each sample is scored against: its prompt (prompt sources) or "a photo of a {class name}"."""
    from dtviz.sources.base import row_noun

    prompts = row_noun(source)[0] == "prompt"
    return [source.class_label(int(i)) if prompts else CLASS_TEMPLATE.format(source.class_label(int(i))) for i in labels]
