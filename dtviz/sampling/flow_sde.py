"""The SDE sampler of the SiT and REPA releases for velocity models (``--sampler sde``), apart from models:
Euler–Maruyama (or SiT's Heun) with the releases' diffusion forms and last-step options. dtviz.sampling.flow
lists every flow sampler and builds them from a spec."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dtviz.errors import DtvizInputError
from dtviz.sampling.samplers import Denoiser, StepHook, randn_rows, velocity_part

PATHS = ("linear", "cosine")
# SiT transport/path.py ICPlan.compute_diffusion; s is SiT's time (0 = noise, 1 = data), norm = --diffusion-norm
DIFFUSION_FORMS = ("sigma", "constant", "SBDM", "linear", "decreasing", "increasing-decreasing")
LAST_STEPS = ("mean", "tweedie", "euler", None)
SDE_METHODS = ("euler", "heun")  # SiT sample.py SDE --sampling-method Euler | Heun (integrators.sde)


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
