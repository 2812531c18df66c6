"""A pipeline folder's own diffusers scheduler: read from ``scheduler/scheduler_config.json`` with diffusers'
classes (never re-implemented). It fixes a pipeline source's t0 (its first timestep at the pipeline's default
step count) and is what dtviz.sampling.pipeline steps with.
"""
from __future__ import annotations

import json
import os

import torch

from dtviz.errors import DtvizInputError

SCHEDULER_DIR = "scheduler"
SCHEDULER_CONFIG = "scheduler_config.json"
PIPELINE_STEPS = 50  # DiTPipeline.__call__'s default num_inference_steps


def load_scheduler(pipeline_path: str):
    """The pipeline's own diffusers scheduler from ``scheduler/scheduler_config.json`` (local files only), or None
    when the folder has no scheduler config. A class that is not a diffusers scheduler, or a config diffusers
    cannot read, is one DtvizInputError."""
    folder = os.path.join(pipeline_path, SCHEDULER_DIR)
    path = os.path.join(folder, SCHEDULER_CONFIG)
    if not os.path.isfile(path):
        return None
    where = os.path.join(SCHEDULER_DIR, SCHEDULER_CONFIG)
    from dtviz.sources.access import check_allowed

    check_allowed(folder, "the pipeline's scheduler folder")
    check_allowed(path, "the pipeline's scheduler config")
    try:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DtvizInputError(f"expected JSON in the pipeline's {where}, but it could not be parsed ({err}).") from err
    import diffusers
    from diffusers import SchedulerMixin

    name = config.get("_class_name") if isinstance(config, dict) else None
    cls = getattr(diffusers, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise DtvizInputError(f"expected a diffusers scheduler class as _class_name in the pipeline's {where}, "
                              f"but found {str(name)[:80]!r}.")
    try:
        return cls.from_pretrained(folder, local_files_only=True)
    except Exception as err:  # diffusers raises ValueError/TypeError/OSError for a config it cannot use
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise DtvizInputError(f"expected a {name} config diffusers can load in the pipeline's {where}, but it "
                              f"could not ({first_line}).") from err


def fresh(scheduler):
    """A new scheduler of the same class and config: multistep schedulers keep state between steps."""
    return type(scheduler).from_config(scheduler.config)


def scheduler_timesteps(scheduler, steps: int) -> torch.Tensor:
    """The scheduler's own timesteps for ``steps`` inference steps (``set_timesteps(steps)``, as the pipeline)."""
    s = fresh(scheduler)
    s.set_timesteps(steps)
    return s.timesteps


def first_timestep(scheduler, steps: int = PIPELINE_STEPS) -> float:
    """t0 of a pipeline: its scheduler's first timestep at ``steps`` steps (DDIM leading, 50 steps: 980)."""
    return float(scheduler_timesteps(scheduler, steps)[0])


def check_steps(scheduler, steps: int) -> None:
    """One DtvizInputError when the scheduler cannot take ``steps`` inference steps."""
    try:
        scheduler_timesteps(scheduler, steps)
    except Exception as err:  # diffusers raises ValueError for steps > num_train_timesteps and the like
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise DtvizInputError(f"the pipeline's {type(scheduler).__name__} cannot take {steps} steps ({first_line}).") from err


