"""The flow-matching samplers of the SiT and REPA releases (velocity models), apart from models.

    name    release                                                   dtviz class
    euler   REPA generate.py --mode ode (euler_sampler); LightningDiT  samplers.EulerFlowSampler
    heun    REPA generate.py --mode ode --heun (euler_sampler heun)   HeunFlowSampler
    ode     SiT sample.py ODE (transport sample_ode: torchdiffeq       AdaptiveFlowSampler
            odeint, dopri5, atol 1e-6, rtol 1e-3, 250 grid points)
    sde     SiT sample.py SDE (sample_sde: Euler–Maruyama or Heun,     flow_sde.EulerMaruyamaSampler
            250 steps, diffusion forms, last-step options); REPA --mode sde
            (euler_maruyama_sampler, linear or cosine path)

Every sampler keeps only the first C channels of the network's output (C = the noise's channels): SiT's forward
drops the learned-sigma half (``x, _ = x.chunk(2, dim=1)``), so a learn_sigma=True checkpoint samples as in SiT.
``on_step(i, n)`` is called before every network evaluation; the adaptive ODE does not know n in advance and
passes n = 0 (so a pruning schedule "last:K" cannot be placed there; dtviz.sampling.generate refuses it).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dtviz.errors import DtvizInputError
from dtviz.sampling.flow_sde import EulerMaruyamaSampler
from dtviz.sampling.samplers import Denoiser, StepHook, velocity_part

ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


def _guided_call(denoise: Denoiser, x, t, labels, guide_t: float):
    """``denoise`` with the guidance interval judged at ``guide_t`` (REPA's Heun judges both evaluations of a step
    at t_cur); a denoiser without that option (a plain network) is called as is."""
    if getattr(denoise, "takes_guide_t", False):
        return denoise(x, t, labels, guide_t=guide_t)
    return denoise(x, t, labels)


# ----------------------------------------------------------------------------------------- Heun ODE

@dataclass
class HeunFlowSampler:
    """REPA ``samplers.py`` ``euler_sampler(heun=True)``: on t_steps = linspace(t_start, t_end, steps + 1) (float64),

        d  = v(x, t_i);  x' = x + (t_{i+1} − t_i)·d;  d' = v(x', t_{i+1});  x ← x + (t_{i+1} − t_i)·(d + d')/2

    except the last step, which stays Euler: 2·steps − 1 network evaluations (the pruning schedules count these).
    CFG at the corrector is decided by t_i, as in REPA. Float64 state like REPA; the result has the noise's dtype.
    """

    steps: int = 50
    t_start: float = 1.0
    t_end: float = 0.0

    def grid(self) -> torch.Tensor:
        return torch.linspace(self.t_start, self.t_end, self.steps + 1, dtype=torch.float64)

    def timesteps(self) -> list[float]:
        """The t of each network evaluation, in order."""
        g = self.grid().tolist()
        out = []
        for i in range(self.steps):
            out += [g[i]] + ([g[i + 1]] if i < self.steps - 1 else [])
        return out

    @torch.no_grad()
    def sample(self, denoise: Denoiser, noise: torch.Tensor, labels: torch.Tensor, on_step: StepHook | None = None,
               generator=None) -> torch.Tensor:
        grid, n_eval, k = self.grid(), 2 * self.steps - 1, 0
        c = noise.shape[1]
        x = noise.double()

        def v(x_in, t: float, guide_t: float):
            nonlocal k
            if on_step:
                on_step(k, n_eval)
            k += 1
            tt = torch.full((x_in.shape[0],), t, dtype=torch.float64, device=x_in.device).to(noise.dtype)
            return velocity_part(_guided_call(denoise, x_in.to(noise.dtype), tt, labels, guide_t), c).double()

        for i in range(self.steps):
            t_cur, t_next = float(grid[i]), float(grid[i + 1])
            d = v(x, t_cur, t_cur)
            x_next = x + (t_next - t_cur) * d
            if i < self.steps - 1:
                x_next = x + (t_next - t_cur) * (0.5 * d + 0.5 * v(x_next, t_next, t_cur))
            x = x_next
        return x.to(noise.dtype)


# ------------------------------------------------------------------------------------ adaptive ODE

@dataclass
class AdaptiveFlowSampler:
    """SiT ``transport/transport.py`` ``Sampler.sample_ode`` + ``integrators.py`` ``ode``: torchdiffeq's ``odeint``
    of dx/dt = v(x, t) on t = linspace(t_start, t_end, steps) with ``method`` (SiT default dopri5), atol/rtol
    (SiT defaults 1e-6 / 1e-3, passed as one-element lists as SiT does); the last point is the sample.

    ``steps`` is SiT's --num-sampling-steps: the points of the output grid. For an adaptive method it does not set
    the work; the solver takes as many network evaluations as its tolerances need, and on_step counts those
    evaluations (n = 0: not known in advance). For a fixed-grid method (euler, midpoint, rk4, ...) the grid's
    steps − 1 intervals are the integration steps, as in SiT. Computed in the noise's dtype, as SiT does.
    ``max_evaluations`` bounds the solver's work (SiT sets none; dopri5 on a trained SiT takes a few hundred): past
    it the run stops with one sentence instead of running without end.
    """

    steps: int = 250
    t_start: float = 0.0
    t_end: float = 1.0
    method: str = "dopri5"
    atol: float = 1e-6
    rtol: float = 1e-3
    max_evaluations: int = 10_000

    def __post_init__(self):
        from torchdiffeq._impl.odeint import SOLVERS

        if self.method not in SOLVERS:
            raise DtvizInputError(f"the ODE method must be one of torchdiffeq's {', '.join(sorted(SOLVERS))}; "
                                  f"got {self.method!r}.")
        if self.steps < 2:
            raise DtvizInputError(f"the ODE grid needs at least 2 points (SiT's --num-sampling-steps); got {self.steps}.")

    @property
    def adaptive(self) -> bool:
        """True when the number of network evaluations is the solver's choice (pruning counts evaluations)."""
        return self.method in ADAPTIVE_METHODS

    def timesteps(self) -> list[float]:
        """The output grid (the evaluation times of an adaptive method are the solver's)."""
        return torch.linspace(self.t_start, self.t_end, self.steps).tolist()

    @torch.no_grad()
    def sample(self, denoise: Denoiser, noise: torch.Tensor, labels: torch.Tensor, on_step: StepHook | None = None,
               generator=None) -> torch.Tensor:
        from torchdiffeq import odeint

        c, k = noise.shape[1], 0

        def fn(t, x):
            nonlocal k
            if k >= self.max_evaluations:
                raise DtvizInputError(f"the {self.method} ODE needed more than {self.max_evaluations} network evaluations "
                                      f"at atol {self.atol:g}, rtol {self.rtol:g}; loosen them or use a fixed-step sampler.")
            if on_step:
                on_step(k, 0)
            k += 1
            tt = torch.ones(x.size(0)).to(x.device) * t
            return velocity_part(denoise(x, tt, labels), c)

        t = torch.linspace(self.t_start, self.t_end, self.steps).to(noise.device)
        return odeint(fn, noise, t, method=self.method, atol=[self.atol], rtol=[self.rtol])[-1]


# ------------------------------------------------------------------------------------ sampler specs

def parse_sampler_spec(text: str | None) -> tuple[str | None, dict]:
    """"sde:diffusion_form=linear,last_step=tweedie" -> ("sde", {...}); values are numbers where they parse,
    "none" is None. The CLI's --sampler, the sweep and the dashboard pass such a string to Generator.sampler."""
    if text is None:
        return None, {}
    name, _, rest = str(text).strip().partition(":")
    options = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise DtvizInputError(f"sampler options are key=value pairs after the name (e.g. sde:diffusion_form=linear); "
                                  f"got {item!r}.")
        value = value.strip()
        try:
            parsed = float(value)
        except ValueError:
            parsed = None if value.lower() == "none" else value
        options[key.strip().replace("-", "_")] = parsed
    return name.strip().lower(), options


FLOW_SAMPLER_OPTIONS = {"euler": (), "heun": (), "ode": ("method", "atol", "rtol"),
                        "sde": ("method", "diffusion_form", "diffusion_norm", "last_step", "last_step_size", "path")}


def flow_sampler(name: str, steps: int, options: dict, t_start: float, t_end: float, timestep_shift: float = 0.0):
    """The flow sampler ``name`` (FLOW_SAMPLER_OPTIONS) with ``steps`` and the release defaults, overridden by
    ``options`` (from ``parse_sampler_spec``). The SDE's diffusion form defaults to SiT's "sigma" for SiT-time
    models (t_start = 0) and to REPA's g² = 2t, i.e. "linear", for REPA-time models (t_start = 1)."""
    from dtviz.sampling.samplers import EulerFlowSampler

    allowed = FLOW_SAMPLER_OPTIONS[name]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DtvizInputError(f"the {name} sampler takes {', '.join(allowed) or 'no options'}; got {', '.join(unknown)}.")
    if name == "euler":
        return EulerFlowSampler(steps=steps, t_start=t_start, t_end=t_end, timestep_shift=timestep_shift)
    if name == "heun":
        return HeunFlowSampler(steps=steps, t_start=t_start, t_end=t_end)
    if name == "ode":
        return AdaptiveFlowSampler(steps=steps, t_start=t_start, t_end=t_end, method=str(options.get("method", "dopri5")),
                                   atol=float(options.get("atol", 1e-6)), rtol=float(options.get("rtol", 1e-3)))
    if steps < 2:
        raise DtvizInputError(f"the SDE sampler needs at least 2 steps; got {steps}.")
    last = options.get("last_step", "mean")
    return EulerMaruyamaSampler(
        steps=steps, t_start=t_start, t_end=t_end, diffusion_scale=float(options.get("diffusion_norm", 1.0)),
        last_step=None if last is None else str(last).lower(), last_step_size=float(options.get("last_step_size", 0.04)),
        diffusion_form=str(options.get("diffusion_form", "sigma" if t_start == 0 else "linear")),
        path=str(options.get("path", "linear")), method=str(options.get("method", "euler")).lower())
