"""The flow-matching samplers of the SiT and REPA releases (velocity models), apart from models.

    name    release                                                   dtviz class
    euler   REPA generate.py --mode ode (euler_sampler); LightningDiT  samplers.EulerFlowSampler
    heun    REPA generate.py --mode ode --heun (euler_sampler heun)   HeunFlowSampler
    ode     SiT sample.py ODE (transport sample_ode: torchdiffeq       AdaptiveFlowSampler
            odeint, dopri5, atol 1e-6, rtol 1e-3, 250 grid points)
    sde     SiT sample.py SDE (sample_sde: Euler–Maruyama or Heun,     EulerMaruyamaSampler
            250 steps, diffusion forms, last-step options); REPA --mode sde
            (euler_maruyama_sampler, linear or cosine path)

Every sampler keeps only the first C channels of the network's output (C = the noise's channels): SiT's forward
drops the learned-sigma half (``x, _ = x.chunk(2, dim=1)``), so a learn_sigma=True checkpoint samples as in SiT.
``on_step(i, n)`` is called before every network evaluation; the adaptive ODE does not know n in advance and
passes n = 0 (so a pruning schedule "last:K" cannot be placed there; dtviz.generate refuses it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dtviz.errors import DtvizInputError
from dtviz.samplers import Denoiser, StepHook, randn_rows

PATHS = ("linear", "cosine")
# SiT transport/path.py ICPlan.compute_diffusion; s is SiT's time (0 = noise, 1 = data), norm = --diffusion-norm
DIFFUSION_FORMS = ("sigma", "constant", "SBDM", "linear", "decreasing", "increasing-decreasing")
LAST_STEPS = ("mean", "tweedie", "euler", None)
SDE_METHODS = ("euler", "heun")  # SiT sample.py SDE --sampling-method Euler | Heun (integrators.sde)
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


def velocity_part(out: torch.Tensor, channels: int) -> torch.Tensor:
    """The velocity of a network output (B, C or 2C, H, W): its first ``channels`` channels (SiT's forward)."""
    return out[:, :channels]


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


# ---------------------------------------------------------------------------------- Euler–Maruyama

def diffusion_coefficient(form: str, s: float, norm: float = 1.0, sigma: float | None = None) -> float:
    """w(s) of SiT ``ICPlan.compute_diffusion`` at SiT time s (0 = noise, 1 = data); the SDE noise is √(2w)·dW.

        sigma  norm·σ_s        constant  norm        linear  norm·(1 − s)
        decreasing  ¼·(norm·cos(πs) + 1)²            increasing-decreasing  norm·sin²(πs)
        SBDM   norm·(α'/α·σ² − σ·σ')  = norm·(1 − s)/s on the linear path (infinite at s = 0)

    (SiT's table spells the last form "inccreasing-decreasing", so the release cannot run it; dtviz runs the
    documented formula.)"""
    if form == "sigma":
        return norm * (1.0 - s if sigma is None else sigma)
    if form == "constant":
        return norm
    if form == "linear":
        return norm * (1.0 - s)
    if form == "decreasing":
        return 0.25 * (norm * math.cos(math.pi * s) + 1) ** 2
    if form == "increasing-decreasing":
        return norm * math.sin(math.pi * s) ** 2
    if form == "SBDM":
        return norm * (1.0 - s) / s
    raise DtvizInputError(f"the SDE diffusion form must be one of {', '.join(DIFFUSION_FORMS)}; got {form!r}.")


@dataclass
class EulerMaruyamaSampler:
    """Euler–Maruyama for velocity models, t from ``t_start`` (noise) to ``t_end`` (data).

    Follows SiT ``transport/transport.py`` ``Sampler.sample_sde`` (Euler; ``integrators.py`` ``sde``) and REPA
    ``samplers.py`` ``euler_maruyama_sampler``; both are the same scheme in mirrored time. With u the noise share
    (u = 1 − t for SiT/LightningDiT, u = t for REPA/MG) and s = 1 − u (SiT's time):

        x_t = α·x_data + σ·ε       linear path α = 1 − u, σ = u;  cosine (REPA) α = cos(πu/2), σ = sin(πu/2)
        score   s = (α/α̇·v − x) / (σ² − α/α̇·σ̇·σ)        (get_score_from_velocity in SiT ICPlan and in REPA)
        w       = diffusion_coefficient(form, s, norm)   (SiT "sigma"; REPA's g² = 2t is the "linear" form)
        step    x ← x + (v ± w·s)·Δt + √(2w)·√|Δt|·z     (+ towards data with Δt > 0, SiT's drift + w·score;
                                                          − with Δt < 0, REPA's v − ½·g²·s)

    ``steps`` network evaluations: t on linspace(t_start, t_end ∓ last_step_size, steps) (SiT: t0 = 0,
    t1 = 1 − 0.04; REPA: linspace(1, 0.04, num_steps)), ``steps − 1`` stochastic steps between those, then
    one noise-free last step to ``t_end``: "mean" the SDE drift (SiT "Mean", REPA's ``mean_x``), "euler" the
    velocity (SiT "Euler"), "tweedie" x/α + σ²/α·score at t1 (SiT "Tweedie"), None stops at t_end ∓ last_step_size
    without another evaluation (SiT last_step=None, then steps − 1 evaluations).

    ``method`` "heun" is SiT's ``--sampling-method Heun`` (``integrators.py`` ``sde.__Heun_step``): each stochastic
    step draws its noise z first (same shape and order as Euler, so a seed replays the release), then

        x̂ = x + √(2·w(t_i))·√|Δt|·z;  K1 = drift(x̂, t_i);  K2 = drift(x̂ + Δt·K1, t_{i+1});  x ← x̂ + Δt·(K1 + K2)/2

    (drift = v ± w·s, each at its own t): 2·(steps − 1) evaluations, plus the noise-free last step as above.

    CFG: the drift is affine in v at fixed x, so guiding v (``guided_denoiser``) equals REPA guiding the drift.
    Computed in float64 like REPA's sampler; the result has the noise's dtype. ``generator``: see randn_rows.
    """

    steps: int = 250
    t_start: float = 0.0
    t_end: float = 1.0
    diffusion_scale: float = 1.0  # SiT --diffusion-norm
    last_step: str | None = "mean"
    last_step_size: float = 0.04
    diffusion_form: str = "sigma"
    path: str = "linear"
    method: str = "euler"  # SDE_METHODS

    def __post_init__(self):
        if self.method not in SDE_METHODS:
            raise DtvizInputError(f"the SDE method must be euler or heun (SiT's --sampling-method); got {self.method!r}.")
        if {float(self.t_start), float(self.t_end)} != {0.0, 1.0}:
            raise ValueError(f"the path runs between t = 0 and 1; got {self.t_start} → {self.t_end}")
        if self.last_step not in LAST_STEPS:
            raise DtvizInputError(f"the SDE's last step must be mean, tweedie, euler or none; got {self.last_step!r}.")
        if self.steps < (1 if self.last_step else 2):
            raise DtvizInputError(f"{self.steps} SDE steps leave no network evaluation.")
        if not 0 < self.last_step_size < 1:
            raise DtvizInputError(f"the SDE's last_step_size must lie in (0, 1); got {self.last_step_size}.")
        if self.path not in PATHS:
            raise DtvizInputError(f"the SDE path must be linear or cosine; got {self.path!r}.")
        diffusion_coefficient(self.diffusion_form, 0.5)  # one sentence for an unknown form
        if self.diffusion_form == "SBDM":
            raise DtvizInputError("the SBDM diffusion is infinite at the noise end, where velocity models start (SiT "
                                  "runs it from t = sample_eps = 0 and returns NaN); choose another diffusion form.")

    @property
    def direction(self) -> float:
        """+1 when t grows towards data (SiT), −1 when it shrinks (REPA)."""
        return 1.0 if self.t_end > self.t_start else -1.0

    def grid(self) -> torch.Tensor:
        """(steps + 1,) float64: the ``steps`` evaluation times, then t_end."""
        t1 = self.t_end - self.direction * self.last_step_size
        return torch.cat([torch.linspace(self.t_start, t1, self.steps, dtype=torch.float64),
                          torch.tensor([self.t_end], dtype=torch.float64)])

    def timesteps(self) -> list[float]:
        """The t of each network evaluation, in the model's convention."""
        g = self.grid().tolist()
        stochastic = [[g[i], g[i + 1]] if self.method == "heun" else [g[i]] for i in range(self.steps - 1)]
        return [t for pair in stochastic for t in pair] + ([g[self.steps - 1]] if self.last_step else [])

    def coefficients(self, t: float) -> tuple[float, float, float, float]:
        """(α_t, α̇_t, σ_t, σ̇_t) of the path, derivatives in the model's t (du/dt = −direction)."""
        d = self.direction
        u = d * (self.t_end - t)
        if self.path == "linear":
            return 1.0 - u, d, u, -d
        h = math.pi / 2
        return math.cos(h * u), h * math.sin(h * u) * d, math.sin(h * u), -h * math.cos(h * u) * d

    def score(self, v: torch.Tensor, x: torch.Tensor, t: float) -> torch.Tensor:
        """∇log p_t(x) from the velocity v = dx/dt: (α/α̇·v − x) / (σ² − α/α̇·σ̇·σ); (B, C, H, W)."""
        alpha, d_alpha, sigma, d_sigma = self.coefficients(t)
        ratio = alpha / d_alpha
        return (ratio * v - x) / (sigma ** 2 - ratio * d_sigma * sigma)

    def diffusion(self, t: float) -> float:
        """w(t) = diffusion_coefficient(form, s = 1 − u, norm); the noise is √(2w)·dW."""
        u = self.direction * (self.t_end - t)
        return diffusion_coefficient(self.diffusion_form, 1.0 - u, self.diffusion_scale, sigma=self.coefficients(t)[2])

    def drift(self, v: torch.Tensor, x: torch.Tensor, t: float) -> tuple[torch.Tensor, float]:
        """(drift along t, w(t)): v + direction·w·s."""
        w = self.diffusion(t)
        return v + self.direction * w * self.score(v, x, t), w

    def last(self, v: torch.Tensor, x: torch.Tensor, t: float, dt: float) -> torch.Tensor:
        """The noise-free last step from t over dt (``last_step``)."""
        if self.last_step == "mean":
            return x + self.drift(v, x, t)[0] * dt
        if self.last_step == "euler":
            return x + v * dt
        alpha, _, sigma, _ = self.coefficients(t)
        return x / alpha + sigma ** 2 / alpha * self.score(v, x, t)

    @torch.no_grad()
    def sample(self, denoise: Denoiser, noise: torch.Tensor, labels: torch.Tensor, on_step: StepHook | None = None,
               generator=None) -> torch.Tensor:
        """``generator``: the Brownian increments' source (``randn_rows``); fix it to repeat a run exactly."""
        grid = self.grid()
        n_eval, k = len(self.timesteps()), 0
        c = noise.shape[1]
        x = noise.double()  # (B, C, H, W)

        def v_at(x_in: torch.Tensor, t_cur: float) -> torch.Tensor:
            nonlocal k
            if on_step:
                on_step(k, n_eval)
            k += 1
            t = torch.full((x_in.shape[0],), t_cur, device=x_in.device)
            return velocity_part(denoise(x_in.to(noise.dtype), t, labels), c).double()

        for i in range(self.steps - 1):
            t_cur, t_next = float(grid[i]), float(grid[i + 1])
            dt = t_next - t_cur
            if self.method == "heun":  # SiT __Heun_step: noise first, then the trapezoid on the drift
                z = randn_rows(x, generator)
                x_hat = x + math.sqrt(2 * self.diffusion(t_cur)) * math.sqrt(abs(dt)) * z
                k1 = self.drift(v_at(x_hat, t_cur), x_hat, t_cur)[0]
                x_pred = x_hat + dt * k1
                k2 = self.drift(v_at(x_pred, t_next), x_pred, t_next)[0]
                x = x_hat + 0.5 * dt * (k1 + k2)
                continue
            d, w = self.drift(v_at(x, t_cur), x, t_cur)
            x = x + d * dt + math.sqrt(2 * w) * math.sqrt(abs(dt)) * randn_rows(x, generator)
        if self.last_step:
            t_cur, dt = float(grid[-2]), float(grid[-1] - grid[-2])
            x = self.last(v_at(x, t_cur), x, t_cur, dt)
        return x.to(noise.dtype)


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
    from dtviz.samplers import EulerFlowSampler

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
