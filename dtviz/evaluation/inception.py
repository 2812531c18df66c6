"""The Inception network behind dtviz.evaluation.metrics: local weights only, features, reference sets.

Weights: torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` (its port of the TF Inception graph
ADM's evaluator uses), from ``--inception PATH`` or the usual cache places (torch hub's checkpoints folder,
where torch-fidelity itself caches it). Nothing is ever downloaded: without the file, metrics are skipped
with one sentence saying how to enable them. The file is read once into memory and checked with
``torch.load(weights_only=True)`` before torch-fidelity's class (which unpickles freely) sees the same bytes.

torch-fidelity 0.4.0's package ``__init__`` imports torchvision (for its dataset registry) although the
Inception module does not; when torchvision is absent or broken (e.g. a CPU torch without a matching
torchvision wheel) the module is imported without the package ``__init__``.
"""
from __future__ import annotations

import importlib
import io
import os
import sys
import types

import numpy as np

from dtviz.errors import DtvizInputError

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
FEATURES = ("2048", "logits_unbiased")  # pool_3 (FID, KID, PR), logits (IS)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


# ----------------------------------------------------------------------------------------- weights

def cache_places() -> list[str]:
    """Where the weights file is looked for when --inception is not given (in this order)."""
    import torch.hub

    places = [os.path.join(torch.hub.get_dir(), "checkpoints", WEIGHTS_FILE),
              os.path.join(os.path.expanduser("~"), ".cache", "torch", "hub", "checkpoints", WEIGHTS_FILE)]
    return list(dict.fromkeys(places))


def find_weights(path: str | None = None) -> str | None:
    """The given file (must exist), else the first cache place holding the file, else None."""
    if path:
        if not os.path.isfile(path):
            raise DtvizInputError(f"--inception expects torch-fidelity's Inception weights file ({WEIGHTS_FILE}); "
                                  f"no file at {os.path.basename(path)!r}.")
        return path
    return next((p for p in cache_places() if os.path.isfile(p)), None)


def skip_sentence(metrics) -> str:
    return (f"Skipped {', '.join(m.upper() for m in metrics)}: no Inception weights; put torch-fidelity's {WEIGHTS_FILE} "
            f"in the torch hub checkpoints folder or pass --inception PATH (nothing is downloaded).")


def inception_class():
    """torch-fidelity's FeatureExtractorInceptionV3 (see the module docstring for the torchvision detour)."""
    name = "torch_fidelity.feature_extractor_inceptionv3"
    try:
        return importlib.import_module(name).FeatureExtractorInceptionV3
    except (ImportError, RuntimeError, OSError) as err:  # torchvision missing, or built for another torch
        if getattr(err, "name", None) == "torch_fidelity":
            raise DtvizInputError("metrics need torch-fidelity: pip install torch-fidelity.") from None
        spec = importlib.util.find_spec("torch_fidelity")
        if spec is None or not spec.submodule_search_locations:
            raise DtvizInputError("metrics need torch-fidelity: pip install torch-fidelity.") from None
        for key in [k for k in sys.modules if k == "torch_fidelity" or k.startswith("torch_fidelity.")]:
            del sys.modules[key]  # drop the half-imported package
        package = types.ModuleType("torch_fidelity")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["torch_fidelity"] = package
        return importlib.import_module(name).FeatureExtractorInceptionV3


def load_inception(path: str, device: str = "cpu"):
    """torch-fidelity's Inception with the weights at ``path`` (tensors only), in eval mode on ``device``."""
    import torch

    with open(path, "rb") as fh:
        blob = fh.read()
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception:
        state = None
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise DtvizInputError(f"--inception expects torch-fidelity's Inception state dict ({WEIGHTS_FILE}); "
                              f"{os.path.basename(path)!r} is not one.")
    cls = inception_class()
    try:
        net = cls("inception-v3-compat", list(FEATURES), feature_extractor_weights_path=io.BytesIO(blob))
    except RuntimeError as err:  # load_state_dict: missing / unexpected keys or shapes
        raise DtvizInputError(f"--inception expects torch-fidelity's Inception state dict; {os.path.basename(path)!r} "
                              f"does not fit it ({str(err).splitlines()[0]}).") from None
    return net.to(device)


# ---------------------------------------------------------------------------------------- features

def features(net, images: np.ndarray, batch_size: int = 32, desc: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, H, W, C), C = 1 or 3 -> pool_3 (N, 2048), logits (N, 1008), float64.

    torch-fidelity's forward resizes to 299² with TF1's bilinear rule; ``desc``: a tqdm bar on stderr."""
    import torch

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DtvizInputError(f"Inception features expect uint8 images (N, H, W, 1 or 3); got {images.dtype} {images.shape}.")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    device = next(net.parameters()).device
    starts = range(0, len(images), batch_size)
    if desc:
        from tqdm import tqdm

        starts = tqdm(starts, desc=desc, unit="batch", dynamic_ncols=True)
    pools, logits = [], []
    with torch.no_grad():
        for s in starts:
            x = torch.from_numpy(np.ascontiguousarray(images[s:s + batch_size].transpose(0, 3, 1, 2))).to(device)
            pool, logit = net(x)
            pools.append(pool.double().cpu().numpy())
            logits.append(logit.double().cpu().numpy())
    if not pools:
        return np.zeros((0, 2048)), np.zeros((0, 1008))
    return np.concatenate(pools), np.concatenate(logits)


# --------------------------------------------------------------------------------------- reference

def read_image_folder(folder: str) -> list[np.ndarray]:
    """Every image file directly in ``folder`` (sorted by name) as uint8 RGB (H, W, 3)."""
    from PIL import Image

    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES))
    if len(names) < 2:
        raise DtvizInputError(f"--reference expects a folder with at least 2 images ({', '.join(IMAGE_SUFFIXES)}); found {len(names)}.")
    out = []
    for n in names:
        with Image.open(os.path.join(folder, n)) as im:
            out.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    return out


def reference_from(path: str, net, batch_size: int = 32, progress: bool = False):
    """A dtviz.evaluation.metrics.Reference from ADM's reference batch (.npz: arr_0 uint8 NHWC images; mu, sigma =
    pool_3 statistics of ADM's TF Inception, used for FID as given) or from a folder of real images."""
    from dtviz.evaluation.metrics import Reference

    name = os.path.basename(os.path.normpath(path))
    desc = "inception reference" if progress else None
    if os.path.isdir(path):
        images = read_image_folder(path)
        groups: dict = {}
        for im in images:  # one network batch needs one size
            groups.setdefault(im.shape, []).append(im)
        pool = np.concatenate([features(net, np.stack(g), batch_size, desc)[0] for g in groups.values()])
        return Reference(features=pool, name=name)
    if not (os.path.isfile(path) and path.lower().endswith(".npz")):
        raise DtvizInputError(f"--reference expects ADM's reference batch (.npz with arr_0) or a folder of images; got {name!r}.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            if "arr_0" not in keys and "mu" not in keys:
                raise DtvizInputError(f"--reference .npz expects ADM's keys arr_0 (images) and/or mu, sigma; found {sorted(keys)}.")
            images = npz["arr_0"] if "arr_0" in keys else None
            mu = npz["mu"] if "mu" in keys else None
            sigma = npz["sigma"] if "sigma" in keys else None
    except DtvizInputError:
        raise
    except Exception:
        raise DtvizInputError(f"--reference expects a readable .npz (ADM's reference batch); {name!r} is not one.") from None
    pool = None
    if images is not None:
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DtvizInputError(f"--reference arr_0 expects uint8 images (N, H, W, C); got {images.dtype} {images.shape}.")
        pool = features(net, images, batch_size, desc)[0]
    stats_from = "ADM's TF Inception (pool_3), as stored in the reference batch" if mu is not None else ""
    return Reference(features=pool, mu=mu, sigma=sigma, stats_from=stats_from, name=name)
