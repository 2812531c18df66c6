"""Samplers, apart from models: each takes a ``denoise(x, t, labels)`` callable and initial noise.

Families differ only in the direction of t and in what the network predicts:

    DiT / MDT           ε-prediction on integer t ∈ {0..999}, 999 = noise: DDPM / DDIM (``DDIMSampler``)
    SiT / LightningDiT  velocity on t ∈ [0, 1], 0 = noise: Euler from t = 0 to 1 (``EulerFlowSampler``)
    REPA / MG           velocity on t ∈ [0, 1], 1 = noise: Euler from t = 1 to 0, CFG only inside the
                        guidance interval

For a flow dx/dt = v(x, t) the Euler update x ← x + v·(t_next − t) is the same for both directions.
``on_step(i, n)`` is called before the i-th of n network evaluations; pruning schedules count it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
StepHook = Callable[[int, int], None]


def guided_denoiser(model: torch.nn.Module, null_class: int, cfg_scale: float, guided_channels: int | None = None,
                    interval: tuple[float, float] | None = None) -> Denoiser:
    """Classifier-free guidance around ``model(x, t, y)``.

    The batch is run as rows ``[cond; null]`` and combined as uncond + s·(cond − uncond) on the first
    ``guided_channels`` channels (DiT/SiT guide only 3 of their 4 latent channels; None = all). With an
    ``interval`` (REPA's guidance interval, in t units) the batch is doubled only for t inside it.
    """

    def denoise(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t_value = float(t.flatten()[0])
        use_cfg = cfg_scale != 1.0 and (interval is None or interval[0] <= t_value <= interval[1])
        if not use_cfg:
            return model(x, t, y)
        out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null_class)]))
        cond, uncond = out.chunk(2)
        ch = guided_channels or cond.shape[1]
        guided = uncond[:, :ch] + cfg_scale * (cond[:, :ch] - uncond[:, :ch])
        return torch.cat([guided, cond[:, ch:]], dim=1)

    return denoise


@dataclass
class EulerFlowSampler:
    """Euler ODE for flow-matching models, t from ``t_start`` (noise) to ``t_end`` (data)."""

    steps: int = 32
    t_start: float = 0.0
    t_end: float = 1.0

    def timesteps(self) -> list[float]:
        """The t of each network evaluation (``steps`` of them), in the model's convention."""
        return torch.linspace(self.t_start, self.t_end, self.steps + 1)[:-1].tolist()

    @torch.no_grad()
    def sample(self, denoise: Denoiser, noise: torch.Tensor, labels: torch.Tensor, on_step: StepHook | None = None) -> torch.Tensor:
        grid = torch.linspace(self.t_start, self.t_end, self.steps + 1)
        x = noise
        for i in range(self.steps):
            if on_step:
                on_step(i, self.steps)
            t = torch.full((x.shape[0],), float(grid[i]), device=x.device)
            x = x + denoise(x, t, labels) * float(grid[i + 1] - grid[i])
        return x


def linear_betas(num_steps: int = 1000, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    """DiT's training schedule (``get_named_beta_schedule('linear')`` scaled to 1000 steps)."""
    scale = 1000 / num_steps
    return torch.linspace(scale * start, scale * end, num_steps, dtype=torch.float64)


@dataclass
class DDIMSampler:
    """DDIM (η = 0) or DDPM-like ancestral (η = 1) sampling for ε-prediction on integer t, 999 = noise.

    Learned-sigma models return 2C channels; only the first C (ε) are used.
    """

    steps: int = 50
    eta: float = 0.0
    num_train_steps: int = 1000

    def timesteps(self) -> list[int]:
        # Evenly spaced integer steps from T-1 down to 0, as DiT's space_timesteps("ddimN") does.
        stride = self.num_train_steps / self.steps
        return sorted({int(round(i * stride)) for i in range(self.steps)}, reverse=True)

    @torch.no_grad()
    def sample(self, denoise: Denoiser, noise: torch.Tensor, labels: torch.Tensor, on_step: StepHook | None = None) -> torch.Tensor:
        alphas_cum = torch.cumprod(1 - linear_betas(self.num_train_steps), 0)
        ts = self.timesteps()
        x = noise
        channels = noise.shape[1]
        for i, t_int in enumerate(ts):
            if on_step:
                on_step(i, len(ts))
            t = torch.full((x.shape[0],), t_int, device=x.device, dtype=torch.long)
            eps = denoise(x, t, labels)[:, :channels].double()
            a_t = alphas_cum[t_int]
            a_prev = alphas_cum[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, dtype=torch.float64)
            x0 = (x.double() - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
            sigma = self.eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
            x_next = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma ** 2, 0.0)) * eps
            if sigma > 0 and i + 1 < len(ts):
                x_next = x_next + sigma * torch.randn_like(x_next)
            x = x_next.to(noise.dtype)
        return x
