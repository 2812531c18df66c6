"""Quality read-outs for pruned samples, without FID: pixel drift from the baseline, and class accuracy.

    MSE        = mean over samples and pixels of (pruned − baseline)², images in [0, 1]
    PSNR       = 10 · log10(1 / MSE) dB (inf when the images are identical)
    class acc. = share of samples the built-in GlyphClassifier names as their own class — the CPU
                 stand-in for FID/IS/CLIP; only for models that ship a classifier (the built-in one)
    template acc. = share of samples whose nearest class by template matching (dtviz.builtin.templates:
                 correlation with ink-normalised canonical renders, no learned weights) is their own —
                 a second, independent read-out for glyph models (config.json lists their code points)

Baseline and pruned samples share their noise (dtviz.sampling.generate), so the drift is due to pruning alone.
Per-sample forms are given so a distributed sweep can gather them and reduce in one fixed order.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import torch

from dtviz.errors import DtvizInputError
from dtviz.pruning.spec import PruneSpec, spec_removed_dims, spec_removed_dims_t0
from dtviz.sampling.generate import Generator, SampleSettings, chain_steps
from dtviz.sampling.queue import CancelToken


# ------------------------------------------------------------------------------------------ drift

def per_sample_mse(baseline: np.ndarray, pruned: np.ndarray) -> np.ndarray:
    """(N,) float64 mean squared pixel difference of each sample; images (N, H, W, C) in [0, 1]."""
    a, b = np.asarray(baseline, dtype=np.float64), np.asarray(pruned, dtype=np.float64)
    if a.shape != b.shape:
        raise DtvizInputError(f"baseline and pruned images must have the same shape; got {a.shape} and {b.shape}.")
    return ((a - b) ** 2).reshape(len(a), -1).mean(1)


def psnr(mse: float) -> float:
    """10 · log10(1 / MSE) for images in [0, 1]; inf for MSE = 0."""
    return float("inf") if mse <= 0 else float(10 * np.log10(1.0 / mse))


def drift_summary(sample_mse: np.ndarray) -> dict:
    """{"mse", "psnr"} from per-sample MSEs (all samples have the same size, so their mean is the MSE)."""
    mse = float(np.mean(sample_mse)) if len(sample_mse) else float("nan")
    return {"mse": mse, "psnr": psnr(mse) if len(sample_mse) else float("nan")}


def pixel_drift(baseline: np.ndarray, pruned: np.ndarray) -> dict:
    """{"mse", "psnr"} of pruned against baseline, images (N, H, W, C) in [0, 1]."""
    return drift_summary(per_sample_mse(baseline, pruned))


# ------------------------------------------------------------------------------------- classifier

def classifier_path(source) -> str | None:
    """The classifier file a dtviz model folder declares in config.json ("classifier": {"file": …}),
    if it exists; None for every other source."""
    sidecar = getattr(source, "sidecar", None) or {}
    entry = sidecar.get("classifier")
    weights = getattr(source, "weights_path", None)
    if not isinstance(entry, dict) or not entry.get("file") or not weights:
        return None
    here = os.path.dirname(os.path.abspath(weights))
    for folder in (here, os.path.dirname(here)):  # find_sidecar looks beside the weights or one up
        path = os.path.join(folder, entry["file"])
        if os.path.isfile(path):
            return path
    return None


def _image_size(flat_features: int, width: int) -> int:
    """GlyphClassifier's first head Linear takes 4·width·(size/4)² features: recover size."""
    return 4 * int(round((flat_features / (4 * width)) ** 0.5))


@functools.lru_cache(maxsize=4)
def _load_classifier(path: str, mtime: float):
    from safetensors.torch import load_file

    from dtviz.builtin.classifier import GlyphClassifier

    state = load_file(path)
    num_classes = state["head.4.weight"].shape[0]
    width = state["features.0.weight"].shape[0]
    size = _image_size(state["head.2.weight"].shape[1], width)
    clf = GlyphClassifier(num_classes, width=width, size=size)
    clf.load_state_dict(state)
    return clf.eval()


def load_classifier(path: str | None = None):
    """The GlyphClassifier in ``path`` (default: assets/builtin/classifier.safetensors), on the CPU, cached."""
    if path is None:
        from dtviz.sources.loading import BUILTIN_DIR

        path = os.path.join(BUILTIN_DIR, "classifier.safetensors")
    if not os.path.isfile(path):
        raise DtvizInputError(f"expected a classifier file at {path!r}, but it does not exist.")
    return _load_classifier(os.path.abspath(path), os.path.getmtime(path))


def classifier_for(source):
    """The source's classifier (only models that ship one, i.e. the built-in model), else None."""
    path = classifier_path(source)
    return load_classifier(path) if path else None


def correct_per_sample(images: np.ndarray, labels, classifier=None) -> np.ndarray:
    """(N,) bool: did the classifier name each sample's own class? images (N, H, W, 1) in [0, 1]."""
    classifier = classifier if classifier is not None else load_classifier()
    images = np.asarray(images, dtype=np.float32)
    expected = _image_size(classifier.head[2].in_features, classifier.features[0].out_channels)
    if images.ndim != 4 or images.shape[-1] != 1 or images.shape[1:3] != (expected, expected):
        raise DtvizInputError(f"the glyph classifier expects (N, {expected}, {expected}, 1) images; got shape {images.shape}.")
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, 1, H, W)
    pred = classifier.predict(x).numpy()
    return pred == np.asarray(labels, dtype=np.int64)


def class_accuracy(images: np.ndarray, labels, classifier=None) -> float:
    """Share of ``images`` the classifier (default: the built-in one) names as ``labels``."""
    correct = correct_per_sample(images, labels, classifier)
    return float(correct.mean()) if len(correct) else float("nan")


# ------------------------------------------------------------------------------- template matching

def template_matcher_for(source):
    """A fitted TemplateMatcher for a glyph model (a dtviz folder whose config.json lists one code point per
    class and 1-channel images), else None. Templates are cached per code-point set."""
    sidecar = getattr(source, "sidecar", None) or {}
    codepoints, image = sidecar.get("codepoints"), sidecar.get("image") or {}
    if not isinstance(codepoints, list) or len(codepoints) != getattr(source, "num_classes", -1):
        return None
    if image.get("channels", 1) != 1 or not isinstance(image.get("size"), int):
        return None
    from dtviz.builtin.templates import TemplateMatcher

    return TemplateMatcher(tuple(int(c) for c in codepoints), size=image["size"]).fit()


def template_correct(images: np.ndarray, labels, matcher) -> np.ndarray:
    """(N,) bool: is each sample's nearest template its own class? images (N, H, W, 1) in [0, 1]."""
    return matcher.correct(images, labels)


def template_accuracy(images: np.ndarray, labels, matcher) -> float:
    """Share of ``images`` whose nearest class by template matching is ``labels``."""
    correct = template_correct(images, labels, matcher)
    return float(correct.mean()) if len(correct) else float("nan")


# ------------------------------------------------------------------------------ the live read-out

def sample_readout(generator: Generator, labels, settings: SampleSettings, prune: PruneSpec | None = None,
                   baseline: np.ndarray | None = None, classifier=None, matcher=None, on_step=None,
                   cancel: CancelToken | None = None, on_wait=None, client=None) -> dict:
    """One run of the live pruning view: the samples and their read-outs.

        images    (N, H, W, C) float32 in [0, 1]
        removed   (count, share of d) of the dims ``prune`` zeroes from each row, a per-sample mask's count averaged over
                  the pruned steps (pruning.spec.spec_removed_dims; (0, 0.0) unpruned)
        removed_t0  the same at t0 alone (equal for global masks)
        drift     {"mse", "psnr"} against ``baseline`` (quality.pixel_drift), None without a baseline
        accuracy  share of samples ``classifier`` names as their class (quality.class_accuracy), None without one
        template_accuracy  the same by template matching (quality.template_accuracy), None without ``matcher``

    The baseline is passed in (computed once, cached by the caller), so a new pruning costs one sampling run.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if isinstance(generator, Generator):  # on_step(i, n): progress; cancel / on_wait: dtviz.sampling.queue
        images = generator.sample(labels, settings, prune=prune, on_step=on_step, cancel=cancel, on_wait=on_wait,
                                  client=client)
    else:  # a text-to-image pipeline's generator: the same queue, its own sampling loop
        images = generator.sample(labels, settings, prune=prune, on_step=on_step, cancel=cancel, on_wait=on_wait,
                                  client=client)
    classes = np.unique(labels)
    if prune is None:
        removed = removed_t0 = (0, 0.0)
    else:
        steps = _sampler_timesteps(generator, settings)
        removed = spec_removed_dims(generator.source, prune, classes=classes, timesteps=steps)
        removed_t0 = spec_removed_dims_t0(generator.source, prune, classes=classes)
    return {"images": images, "removed": removed, "removed_t0": removed_t0,
            "drift": None if baseline is None else pixel_drift(baseline, images),
            "accuracy": None if classifier is None else class_accuracy(images, labels, classifier),
            "template_accuracy": None if matcher is None else template_accuracy(images, labels, matcher)}


def _sampler_timesteps(generator, settings: SampleSettings) -> list | None:
    """The t of each network evaluation of this run's sampler, or None where it has no fixed list (an adaptive
    ODE, or a sampler the generator does not expose): per-sample counts then fall back to t0."""
    try:
        sampler = generator.sampler(settings.steps, settings.sampler)
        return None if getattr(sampler, "adaptive", False) else [float(t) for t in sampler.timesteps()]
    except (AttributeError, DtvizInputError, TypeError):
        return None
