"""The command line's shared pieces: argument groups, class selection, output folders, strict JSON.

dtviz.cli.main builds the parser from them, and so do the subcommands that live in their own modules (dtviz.evaluation.sweep,
dtviz.cli.blocks), which therefore never import dtviz.cli.main (no import cycle).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys

from dtviz.errors import DtvizInputError
from dtviz.sources.builtins import builtin_names
from dtviz.sources.families import SAMPLER_NAMES

PARTS = ("y+t", "y", "t")


# ------------------------------------------------------------------------------------ the parser

class Parser(argparse.ArgumentParser):
    """argparse without abbreviations: ``--per-clas`` is an error, not silently ``--per-class``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        """One line, as every other error of dtviz: what was wrong and where to look (not the whole usage)."""
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")

    def option_strings(self) -> list[str]:
        return [s for a in self._actions for s in a.option_strings if s.startswith("--")]


def nearest_option(parser: Parser, unknown: str) -> str | None:
    """The parser's own flag closest to ``unknown`` (difflib), or None when nothing is close."""
    import difflib

    flag = unknown.split("=", 1)[0]
    found = difflib.get_close_matches(flag, parser.option_strings(), n=1, cutoff=0.6)
    return found[0] if found else None


def number(kind=float, low: float | None = None, high: float | None = None, low_open: bool = False):
    """An argparse type: a ``kind`` (float / int) in [low, high] (low excluded when ``low_open``), else one sentence."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        ok = value is not None and (kind is int or math.isfinite(value))
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value <= high
        if not ok:
            what = "a whole number" if kind is int else "a number"
            bounds = []
            if low is not None:
                bounds.append(f"{'>' if low_open else '≥'} {low:g}")
            if high is not None:
                bounds.append(f"≤ {high:g}")
            raise argparse.ArgumentTypeError(f"expected {what}{' ' + ' and '.join(bounds) if bounds else ''}, but got {text!r}")
        return value
    parse.__name__ = "number"
    return parse


def tau_value(text: str):
    """--tau: "auto" (the source's τ: s_tail(c̄) = 448/1152, dtviz.pruning.defaults.default_tau) or a number ≥ 0."""
    if str(text).strip().lower() == "auto":
        return "auto"
    return number(float, 0)(text)


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", default="auto", type=threads_value, metavar="N",
                   help="CPU threads for torch (default auto: one per core idle at start-up, with OpenMP's passive wait "
                        "policy, so that a busy machine does not slow it down; `make bench` measures it against 1)")


def threads_value(text: str):
    if str(text).strip().lower() == "auto":
        return "auto"
    return number(int, 1)(text)


def idle_cores(interval: float = 0.05) -> float:
    """Cores idle right now: /proc/stat read twice ``interval`` apart (Linux), else every core less the 1-minute load
    average. ``--threads auto`` takes one thread per idle core: on a 2-core machine whose other core is busy, a second
    thread only waits for it (bench/threads.py measures auto against 1 thread, idle and loaded)."""
    import time

    def snapshot():
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [float(x) for x in fh.readline().split()[1:]]
        return fields[3] + (fields[4] if len(fields) > 4 else 0.0), sum(fields)  # idle + iowait, total

    cores = os.cpu_count() or 1
    try:
        idle0, total0 = snapshot()
        time.sleep(interval)
        idle1, total1 = snapshot()
        return cores * (idle1 - idle0) / max(total1 - total0, 1e-9)
    except (OSError, ValueError, IndexError):
        try:
            return max(cores - os.getloadavg()[0], 1.0)
        except (OSError, AttributeError):
            return float(cores)


def apply_threads(threads) -> int:
    """Before torch is imported: OpenMP waits passively (spinning threads starve when another job holds a core,
    several times slower than one thread); after: torch uses ``threads`` (auto: every core). Returns the count.
    Called in a process that already runs torch (``main()`` from Python), ``auto`` leaves its threads as they are:
    the wait policy can no longer change there."""
    loaded = "torch" in sys.modules
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    if threads in (None, "auto"):
        if loaded:
            return torch.get_num_threads()
        n = max(1, min(os.cpu_count() or 1, round(idle_cores())))
    else:
        n = int(threads)
    torch.set_num_threads(n)
    return n


def add_source_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    if many:
        p.add_argument("sources", nargs="+", metavar="SOURCE", help=f"{builtin_names(default=False)}, a checkpoint, a pipeline folder or a matrix")
    else:
        p.add_argument("source", nargs="?", default="builtin", metavar="SOURCE",
                       help=f"{builtin_names()}, a checkpoint, a pipeline folder, hf:<repo> or a matrix")
    p.add_argument("--family", default="auto", help="auto, dit, sit, repa, lightningdit, mdt, mg")
    p.add_argument("--device", default=None, help="auto (cuda → mps → cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--labels", default=None, help="labels file for a matrix, one per line")
    add_prompts_arg(p)
    add_checkpoint_reading_args(p)


def add_checkpoint_reading_args(p: argparse.ArgumentParser) -> None:
    """What a native checkpoint's file may not say (dtviz.sources.release_config); pass on with source_options."""
    p.add_argument("--num-heads", type=int, default=None, metavar="N",
                   help="attention heads of a native checkpoint (default: its training args/config or shapes, else "
                        "a reading stated in the family note)")
    p.add_argument("--null-row", default="auto", choices=("auto", "yes", "no"),
                   help="is the label table's last row the null (CFG) row? auto: the training args/config say, else "
                        "yes (stated in the family note); no for a model trained with class_dropout_prob=0")


def source_options(args) -> dict:
    """load() keywords from add_checkpoint_reading_args."""
    return {"num_heads": getattr(args, "num_heads", None), "null_row": getattr(args, "null_row", "auto"),
            "guidance": getattr(args, "guidance", None)}


def add_prompts_arg(p: argparse.ArgumentParser) -> None:
    from dtviz.sources.prompts import PROMPT_SETS

    p.add_argument("--guidance", type=float, default=None, metavar="G",
                   help="Flux-dev: the guidance value embedded in c (and used to sample); default the pipeline's own")
    p.add_argument("--prompts", default=None, metavar="FILE",
                   help="text-to-image pipelines (SD3, Flux, PixArt, Sana): the rows, one prompt per line, or a shipped "
                        f"set: {', '.join(PROMPT_SETS)} (default varied)")


def add_analysis_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--t", type=number(float), default=None, help="timestep in the family's convention (default t0)")
    p.add_argument("--step", type=number(int, 0), default=None, metavar="K",
                   help="a captured trajectory file (.traj.npz): read c at step K (default 0 = t0, the first step)")
    p.add_argument("--part", default="y+t", choices=PARTS)
    p.add_argument("--tau", type=tau_value, default="auto",
                   help="threshold on |c_i| for s_tail and the head (default auto: the source's τ, below which 448/1152 "
                        "of the dims of c̄ lie, as under the paper's τ = 0.01 on REPA-XL; 0.01: the paper's value)")


def sampler_spec(text: str) -> str:
    """argparse type of --sampler: a known name, options checked later by Generator.sampler."""
    from dtviz.sampling.flow import parse_sampler_spec

    try:
        name, _ = parse_sampler_spec(text)
    except DtvizInputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if name not in SAMPLER_NAMES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(SAMPLER_NAMES)}; got {text!r}")
    return text


def add_class_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classes", default=None, help="comma-separated class ids")
    p.add_argument("--random", type=number(int, 1), default=None, metavar="N", help="N random classes")
    p.add_argument("--per-class", type=number(int, 1), default=1, metavar="K", help="samples per class")
    p.add_argument("--seed", type=number(int, 0), default=0)
    p.add_argument("--steps", type=number(int, 1), default=None)
    p.add_argument("--cfg", type=number(float, 0), default=None,
                   help="classifier-free guidance scale (Flux-dev: the embedded guidance)")
    p.add_argument("--size", type=number(int, 8), default=None, metavar="PX",
                   help="text-to-image pipelines: image side in px (default the pipeline's; smaller is faster on CPU)")
    p.add_argument("--sampler", default=None, type=sampler_spec, metavar="NAME[:KEY=VALUE,...]",
                   help=f"one of {', '.join(SAMPLER_NAMES)}; default: the family's release default (docs/cli.md, Samplers); "
                        "flow options e.g. sde:diffusion_form=linear,last_step=tweedie or ode:method=dopri5,atol=1e-6")
    p.add_argument("--vae", default=None, metavar="PATH",
                   help="local diffusers AutoencoderKL folder for latent models, or a VA-VAE folder (checkpoint + "
                        "latents_stats.pt) for LightningDiT (default: vae/ beside the model, then the HF cache)")


def select_classes(num_classes: int, classes: str | None, random_n: int | None, seed: int) -> list[int]:
    """--classes 3,17,42 | --random N (seeded) | all classes."""
    if classes and random_n:
        raise DtvizInputError("give either --classes or --random, not both.")
    if classes:
        try:
            ids = [int(x) for x in classes.split(",") if x.strip()]
        except ValueError:
            raise DtvizInputError(f"--classes expects comma-separated integers like 3,17,42; got {classes!r}.") from None
        bad = [i for i in ids if not 0 <= i < num_classes]
        if bad:
            raise DtvizInputError(f"class ids must lie in 0..{num_classes - 1}; got {bad[:5]}.")
        return ids
    if random_n:
        import numpy as np

        if not 0 < random_n <= num_classes:
            raise DtvizInputError(f"--random must be between 1 and {num_classes}; got {random_n}.")
        return sorted(np.random.default_rng(seed).choice(num_classes, random_n, replace=False).tolist())
    return list(range(num_classes))


def write_samples(out_dir: str, images, labels, class_names, prefix: str = "") -> str:
    """One PNG per sample and ``index.csv`` (file,class_id,class_name); returns the index path."""
    from PIL import Image

    from dtviz.sampling.generate import to_uint8

    os.makedirs(out_dir, exist_ok=True)
    index = os.path.join(out_dir, "index.csv")
    with open(index, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "class_id", "class_name"])
        for i, (img, label) in enumerate(zip(to_uint8(images), labels)):
            name = f"{prefix}{i:06d}_class{int(label):04d}.png"
            Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(os.path.join(out_dir, name))
            writer.writerow([name, int(label), class_names[int(label)]])
    return index


def check_output_dir(out: str, source_path: str | None) -> str:
    """Refuse to write into the folder of the user's checkpoint."""
    out = os.path.abspath(out)
    if source_path:
        src_dir = os.path.abspath(source_path if os.path.isdir(source_path) else os.path.dirname(source_path))
        if out == src_dir or out.startswith(src_dir + os.sep):
            raise DtvizInputError(f"--out {out!r} is inside the checkpoint's folder {src_dir!r}; dtviz never writes there — choose another folder.")
    if os.path.isfile(out):
        raise DtvizInputError(f"--out must be a folder, but {out!r} is a file.")
    return out


def json_text(value) -> str:
    """Strict JSON: NaN/±Inf (e.g. the cosine of a one-row matrix, which has no pairs) become null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(value), allow_nan=False)


def note_assumptions(source) -> None:
    """Every command that loads a source says what it assumed (a head count, a null row, a family) on stderr, as the
    header of ``dtviz stats`` does: one line, with the flag that changes it."""
    if getattr(source, "readings", ()) or getattr(source, "family_ambiguous", False):
        print(f"dtviz: note: {source.info.family_note}", file=sys.stderr)


def job_size_line(generator, rows: int, per_class: int, settings_count: int, settings) -> str:
    """"16 classes × 1 sample × 1 setting = 16 images, euler 32 steps; about 2 s here" — printed before a job starts."""
    samples = rows * per_class
    sampler = generator.sampler(settings.steps, settings.sampler)
    steps = len(sampler.timesteps())
    name = (settings.sampler or generator.defaults["name"]).split(":")[0]
    noun = "prompt" if generator.source.info.extra.get("rows") == "prompts" else "class"
    line = (f"dtviz: job: {rows} {noun}{'es' if noun == 'class' and rows != 1 else 's' if rows != 1 else ''} × {per_class} "
            f"sample{'s' if per_class != 1 else ''} × {settings_count} setting{'s' if settings_count != 1 else ''} = "
            f"{samples * settings_count} images, {name} {steps} evaluations")
    estimate = getattr(generator, "estimate_seconds", None)
    if estimate is not None:
        seconds = estimate(samples, settings, runs=settings_count)
        line += f"; about {format_seconds(seconds)} on this machine"
    return line


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 0.1):.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def analysis_t(source, args) -> float | None:
    """``--t``, or ``--step K`` of a captured trajectory file (whose t is the step index, dtviz.sources.trajectory)."""
    step = getattr(args, "step", None)
    if step is None:
        return args.t
    if source.family.key != "trajectory":
        raise DtvizInputError(f"--step reads a captured trajectory file (.traj.npz), but {source.info.name!r} is a "
                              f"{source.info.family.label}; use --t.")
    if args.t is not None:
        raise DtvizInputError("give --step or --t, not both.")
    return float(step)
