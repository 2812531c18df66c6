"""Samplers, apart from models: each takes a ``denoise(x, t, labels)`` callable and initial noise.

Families differ only in the direction of t and in what the network predicts:

    DiT / MDT           ε-prediction on integer t ∈ {0..999}, 999 = noise: DDIM (``DDIMSampler``) or DiT's
                        ancestral DDPM with respacing and learned-range variance (``DDPMSampler``)
    SiT / LightningDiT  velocity on t ∈ [0, 1], 0 = noise: Euler from t = 0 to 1 (``EulerFlowSampler``); SiT's
                        adaptive ODE and SDE in dtviz.sampling.flow
    REPA / MG           velocity on t ∈ [0, 1], 1 = noise: Euler from t = 1 to 0, CFG only inside the
                        guidance interval; REPA's Heun ODE and Euler–Maruyama in dtviz.sampling.flow

For a flow dx/dt = v(x, t) the Euler update x ← x + v·(t_next − t) is the same for both directions.
``on_step(i, n)`` is called before the i-th of n network evaluations; pruning schedules count it.
Stochastic samplers take ``generator`` (see ``randn_rows``) so a baseline and a pruned run share their noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
StepHook = Callable[[int, int], None]


def power_cosine_scale(cfg_scale: float, t: torch.Tensor, scale_pow: float, num_train_steps: int = 1000) -> torch.Tensor:
    """MDT's guidance schedule (sail-sg/MDT ``masked_diffusion/models.py`` ``MDTv2.forward_with_cfg``), (B,):

        s(t) = (cfg_scale − 1)·(1 − cos(π·(1 − t/T)^scale_pow))/2 + 1,   t ∈ {0..T−1} the original timestep

    1 at the noise end rising to cfg_scale at t = 0; a large scale_pow keeps it near 1 longer (diversity), a
    small one near cfg_scale throughout (quality). Float32, in MDT's order of operations.
    """
    step = (1 - torch.cos(((1 - t / num_train_steps) ** scale_pow) * math.pi)) / 2
    return (cfg_scale - 1) * step + 1


def guided_denoiser(model: torch.nn.Module, null_class: int, cfg_scale: float, guided_channels: int | None = None,
                    interval: tuple[float, float] | None = None, scale_pow: float | None = None,
                    weak: Callable | None = None, weak_scale: float = 0.0) -> Denoiser:
    """Classifier-free guidance around ``model(x, t, y)``.

    The batch is run as rows ``[cond; null]`` and combined as uncond + s·(cond − uncond) on the first
    ``guided_channels`` channels (DiT/SiT guide only 3 of their 4 latent channels; None = all). With an
    ``interval`` (REPA's guidance interval, in t units) the batch is doubled only for t inside it. With
    ``scale_pow`` (MDT) s varies with each row's integer t: ``power_cosine_scale``; None = constant cfg_scale.
    cfg_scale ≤ 1 runs the conditional rows alone, one forward per call, as REPA, LightningDiT and diffusers do.
    ``guide_t``: judge the interval at this t instead of t's (REPA's Heun corrector uses the step's t_cur).

    Pruned-c guidance (Sparse Guidance with a pruned condition; ``weak``, ``weak_scale`` = w): ``weak(x, t, y)`` is
    the model with c replaced by P(c) (dtviz.sampling.generate runs it under dtviz.pruning.spec hooks), or None at steps where P
    is the identity (the spec's schedule is off there). On the first ``guided_channels`` channels, per call:

        D = D_u + s·(D_c − D_u) + w·(D_c − D_P(c))      with CFG (s > 1, inside the interval)
        D = D_c + w·(D_c − D_P(c))                      without it

    the other channels are D_c's. It costs one more forward (of the conditional rows) per call; w = 0 or no
    ``weak`` is plain CFG.
    """

    def denoise(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, guide_t: float | None = None) -> torch.Tensor:
        t_value = float(t.flatten()[0]) if guide_t is None else float(guide_t)
        use_cfg = cfg_scale > 1.0 and (interval is None or interval[0] <= t_value <= interval[1])
        pruned_c = weak is not None and weak_scale != 0.0
        if not use_cfg and not pruned_c:
            return model(x, t, y)
        if use_cfg:
            out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null_class)]))
            cond, uncond = out.chunk(2)
        else:
            cond = out = model(x, t, y)
        ch = guided_channels or cond.shape[1]
        guided = cond[:, :ch]
        if use_cfg:
            scale = cfg_scale
            if scale_pow is not None:
                scale = power_cosine_scale(cfg_scale, t, scale_pow).to(out.dtype).view(-1, *[1] * (out.dim() - 1))
            guided = uncond[:, :ch] + scale * (cond[:, :ch] - uncond[:, :ch])
        weak_out = weak(x, t, y) if pruned_c else None
        if weak_out is not None:
            guided = guided + weak_scale * (cond[:, :ch] - weak_out[:, :ch])
        return torch.cat([guided, cond[:, ch:]], dim=1)

    denoise.takes_guide_t = True
    return denoise


@dataclass
class EulerFlowSampler:
    """Euler ODE for flow-matching models, t from ``t_start`` (noise) to ``t_end`` (data).

    ``timestep_shift`` s > 0 (LightningDiT ``transport/integrators.py`` ``ode``; 0 = off, the default) moves
    the grid towards the noise end for s < 1: u = linspace(0, 1, steps + 1) as the share of the way from
    noise to data becomes s·u / (1 + (s − 1)·u), computed in float32 as LightningDiT does, so with
    t_start = 0, t_end = 1 the grid is bit-identical to LightningDiT's. Of a learned-sigma output (2C channels)
    only the first C are the velocity (SiT's forward drops the rest).
    """

    steps: int = 32
    t_start: float = 0.0
    t_end: float = 1.0
    timestep_shift: float = 0.0

    def grid(self) -> torch.Tensor:
        """(steps + 1,) float32: the evaluation times, then t_end."""
        if self.timestep_shift <= 0:
            return torch.linspace(self.t_start, self.t_end, self.steps + 1)
        s, u = self.timestep_shift, torch.linspace(0.0, 1.0, self.steps + 1)
        return self.t_start + (s * u / (1 + (s - 1) * u)) * (self.t_end - self.t_start)

    def timesteps(self) -> list[float]:
        """The t of each network evaluation (``steps`` of them), in the model's convention."""
        return self.grid()[:-1].tolist()

    @torch.no_grad()
    def sample(self, denoise: Denoiser, noise: torch.Tensor, labels: torch.Tensor, on_step: StepHook | None = None,
               generator=None) -> torch.Tensor:
        """``generator`` is accepted for a common signature; the ODE draws no noise."""
        grid = self.grid()
        x = noise
        for i in range(self.steps):
            if on_step:
                on_step(i, self.steps)
            t = torch.full((x.shape[0],), float(grid[i]), device=x.device)
            x = x + denoise(x, t, labels)[:, :noise.shape[1]] * float(grid[i + 1] - grid[i])
        return x


def linear_betas(num_steps: int = 1000, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    """DiT's training schedule (``get_named_beta_schedule('linear')`` scaled to 1000 steps)."""
    scale = 1000 / num_steps
    return torch.linspace(scale * start, scale * end, num_steps, dtype=torch.float64)


@dataclass
class DDIMSampler:
    """DDIM (η = 0) or DDPM-like ancestral (η = 1) sampling for ε-prediction on integer t, 999 = noise:
    DiT ``diffusion/gaussian_diffusion.py`` ``ddim_sample_loop`` on ``create_diffusion("ddimN")``, whose
    timesteps are DiT's ``space_timesteps(T, "ddimN")`` (``ddim_timesteps``; N = 30 → 986, 952, 918, …, 0).

    Learned-sigma models return 2C channels; only the first C (ε) are used.
    """

    steps: int = 50
    eta: float = 0.0
    num_train_steps: int = 1000
    clip_denoised: bool = False  # diffusers DDIMScheduler clip_sample: x̂0 clamped to [-1, 1], ε kept as predicted

    def timesteps(self) -> list[int]:
        """The original integer t of each network evaluation, noise first (``ddim_timesteps``)."""
        return ddim_timesteps(self.num_train_steps, self.steps)[::-1]

    @torch.no_grad()
    def sample(self, denoise: Denoiser, noise: torch.Tensor, labels: torch.Tensor, on_step: StepHook | None = None,
               generator=None) -> torch.Tensor:
        """``generator``: the source of the η > 0 noise (``randn_rows``); unused for η = 0."""
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
            if self.clip_denoised:
                x0 = x0.clamp(-1, 1)
            sigma = self.eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
            x_next = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma ** 2, 0.0)) * eps
            if sigma > 0 and i + 1 < len(ts):
                x_next = x_next + sigma * randn_rows(x_next, generator)
            x = x_next.to(noise.dtype)
        return x


def velocity_part(out: torch.Tensor, channels: int) -> torch.Tensor:
    """The velocity of a network output (B, C or 2C, H, W): its first ``channels`` channels (SiT's forward)."""
    return out[:, :channels]


# ------------------------------------------------------------------------------------ stochastic samplers

def randn_rows(like: torch.Tensor, generator=None) -> torch.Tensor:
    """Standard normal shaped like ``like`` (B, ...), in its dtype and device.

    ``generator``: None (torch's global RNG), one ``torch.Generator`` for the whole batch, or a list of B
    generators, row i drawn from generator i alone, so a row's noise does not depend on its batch
    (what dtviz.sampling.generate.Generator passes; see ``initial_noise`` there), or a callable ``f(like)`` that draws
    itself (dtviz.sampling.generate's release seed convention: the release's shapes and dtype from the global RNG).
    """
    if callable(generator):
        return generator(like)
    if generator is None:
        return torch.randn_like(like)
    if isinstance(generator, torch.Generator):
        return torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)
    if len(generator) != like.shape[0]:
        raise ValueError(f"need one generator per row: {len(generator)} for {like.shape[0]} rows")
    rows = [torch.randn(like.shape[1:], generator=g, dtype=like.dtype) for g in generator]
    return torch.stack(rows).to(like.device)


def space_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """DiT ``diffusion/respace.py`` ``space_timesteps(num_timesteps, str(steps))`` for one section: the
    ``steps`` integers round(i·(T − 1)/(steps − 1)), i = 0..steps−1 (just [0] for one step), ascending."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"cannot take {steps} steps out of {num_timesteps}")
    stride = 1 if steps == 1 else (num_timesteps - 1) / (steps - 1)
    taken, cur = [], 0.0
    for _ in range(steps):
        taken.append(round(cur))
        cur += stride
    return sorted(set(taken))


def ddim_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """DiT ``diffusion/respace.py`` ``space_timesteps(num_timesteps, "ddim<steps>")``, ascending: range(0, T, k)
    for the smallest integer stride k ≥ 1 giving exactly ``steps`` values (T = 1000, 30 steps: k = 34, 0 … 986).
    Counts no stride gives (e.g. 1, 37, 60) raise ValueError, as in DiT; ``ddim_step_counts`` lists the others."""
    for stride in range(1, num_timesteps):
        if len(range(0, num_timesteps, stride)) == steps:
            return list(range(0, num_timesteps, stride))
    raise ValueError(f"DiT's DDIM respacing cannot take exactly {steps} steps out of {num_timesteps} with an integer "
                     f"stride (nearest possible: {', '.join(map(str, nearest_ddim_counts(num_timesteps, steps)))})")


def ddim_step_counts(num_timesteps: int) -> list[int]:
    """Every step count ``ddim_timesteps`` accepts, ascending (T = 1000: 2 … 36, 38, 40, 42, …, 500, 1000)."""
    return sorted({len(range(0, num_timesteps, k)) for k in range(1, num_timesteps)})


def nearest_ddim_counts(num_timesteps: int, steps: int) -> list[int]:
    """The accepted counts just below and above ``steps``."""
    counts = ddim_step_counts(num_timesteps)
    below, above = [c for c in counts if c < steps][-1:], [c for c in counts if c > steps][:1]
    return below + above


def respaced_betas(base_betas: torch.Tensor, use_timesteps: list[int]) -> torch.Tensor:
    """DiT ``SpacedDiffusion.__init__``: β'_k = 1 − ᾱ_{t_k}/ᾱ_{t_{k−1}} (ᾱ before the first kept step = 1),
    so the respaced chain has ᾱ'_k = ᾱ_{t_k}. (len(use_timesteps),) float64."""
    alphas_cum = torch.cumprod(1 - base_betas.double(), 0)
    out, last = [], 1.0
    for t in use_timesteps:
        out.append(1 - float(alphas_cum[t]) / last)
        last = float(alphas_cum[t])
    return torch.tensor(out, dtype=torch.float64)


@dataclass
class DDPMSampler:
    """Ancestral DDPM for ε-prediction on integer t ∈ {0..T−1}, T−1 = noise: DiT ``sample.py``
    (``create_diffusion(str(steps))`` + ``p_sample_loop(..., clip_denoised=False)``; DiT's default is 250 steps).

    Follows DiT ``diffusion/gaussian_diffusion.py`` (``GaussianDiffusion.p_mean_variance``, ``p_sample``) on the
    respaced chain of ``diffusion/respace.py`` (``space_timesteps``, ``SpacedDiffusion``; the model gets the
    original t). Per step k (respaced, k = K−1 … 0; β, ᾱ of the respaced chain, ᾱ_{−1} = 1):

        x̂0        = √(1/ᾱ_k)·x − √(1/ᾱ_k − 1)·ε̂                 (_predict_xstart_from_eps; clipped to [−1, 1]
                                                                  only with clip_denoised, off in DiT)
        mean      = β_k·√ᾱ_{k−1}/(1−ᾱ_k)·x̂0 + (1−ᾱ_{k−1})·√(1−β_k)/(1−ᾱ_k)·x   (q_posterior_mean_variance)
        β̃_k       = β_k·(1−ᾱ_{k−1})/(1−ᾱ_k); log β̃ clipped: log β̃_0 := log β̃_1
        log σ²    learned (LEARNED_RANGE, output 2C channels, second half v): frac·log β_k + (1−frac)·log β̃_k,
                  frac = (v + 1)/2 (not clamped, as in DiT);
                  fixed: "large" log β_k with β_0 := β̃_1 (FIXED_LARGE, DiT's choice without learn_sigma),
                         "small" log β̃_k clipped (FIXED_SMALL)
        x         ← mean + exp(½·log σ²)·z, no noise at k = 0

    Computed in float64 like DiT's numpy schedule; the result has the noise's dtype.
    """

    steps: int = 250
    num_train_steps: int = 1000
    learned_sigma: bool = True
    fixed_variance: str = "large"
    clip_denoised: bool = False

    def __post_init__(self):
        if self.fixed_variance not in ("large", "small"):
            raise ValueError(f"fixed_variance must be 'large' or 'small'; got {self.fixed_variance!r}")

    def timesteps(self) -> list[int]:
        """The original integer t of each network evaluation, noise first."""
        return space_timesteps(self.num_train_steps, self.steps)[::-1]

    def schedule(self) -> dict[str, torch.Tensor]:
        """The respaced chain's (K,) float64 arrays, index k = respaced step (ascending t)."""
        betas = respaced_betas(linear_betas(self.num_train_steps), space_timesteps(self.num_train_steps, self.steps))
        alphas_cum = torch.cumprod(1 - betas, 0)
        alphas_cum_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cum[:-1]])
        post_var = betas * (1 - alphas_cum_prev) / (1 - alphas_cum)
        # log(append(posterior_variance[1], posterior_variance[1:])); a single step keeps its own (it is 0: x0 exact)
        clipped = torch.cat([post_var[1:2], post_var[1:]]) if len(betas) > 1 else post_var
        large = torch.cat([post_var[1:2], betas[1:]]) if len(betas) > 1 else betas
        return dict(betas=betas, alphas_cum=alphas_cum, alphas_cum_prev=alphas_cum_prev, posterior_variance=post_var,
                    posterior_log_variance_clipped=torch.log(clipped), log_large=torch.log(large),
                    coef1=betas * alphas_cum_prev.sqrt() / (1 - alphas_cum),
                    coef2=(1 - alphas_cum_prev) * (1 - betas).sqrt() / (1 - alphas_cum))

    def log_variance(self, k: int, var_values: torch.Tensor | None, sched: dict) -> torch.Tensor | float:
        """log σ² at respaced step k; ``var_values`` (B, C, H, W) the model's second half (learned) or None."""
        if var_values is not None:
            min_log, max_log = float(sched["posterior_log_variance_clipped"][k]), math.log(float(sched["betas"][k]))
            frac = (var_values + 1) / 2
            return frac * max_log + (1 - frac) * min_log
        key = "log_large" if self.fixed_variance == "large" else "posterior_log_variance_clipped"
        return float(sched[key][k])

    @torch.no_grad()
    def sample(self, denoise: Denoiser, noise: torch.Tensor, labels: torch.Tensor, on_step: StepHook | None = None,
               generator=None) -> torch.Tensor:
        """``generator``: the source of each step's noise (``randn_rows``); fix it to repeat a run exactly."""
        sched = self.schedule()
        ts = self.timesteps()
        channels = noise.shape[1]
        x = noise.double()  # (B, C, H, W)
        for i, t_int in enumerate(ts):
            k = len(ts) - 1 - i
            if on_step:
                on_step(i, len(ts))
            t = torch.full((x.shape[0],), t_int, device=x.device, dtype=torch.long)
            out = denoise(x.to(noise.dtype), t, labels).double()  # (B, 2C or C, H, W)
            if self.learned_sigma and out.shape[1] != 2 * channels:
                raise ValueError(f"learned_sigma needs 2·{channels} output channels; the model gave {out.shape[1]}")
            eps, var_values = out[:, :channels], (out[:, channels:2 * channels] if self.learned_sigma else None)
            a = float(sched["alphas_cum"][k])
            x0 = math.sqrt(1 / a) * x - math.sqrt(1 / a - 1) * eps
            if self.clip_denoised:
                x0 = x0.clamp(-1, 1)
            mean = float(sched["coef1"][k]) * x0 + float(sched["coef2"][k]) * x
            if k == 0:
                x = mean
            else:
                log_var = self.log_variance(k, var_values, sched)
                std = torch.exp(0.5 * log_var) if torch.is_tensor(log_var) else math.exp(0.5 * log_var)
                x = mean + std * randn_rows(x, generator)
        return x.to(noise.dtype)
