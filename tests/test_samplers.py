"""Euler–Maruyama and DDPM samplers against known answers, and with pruning schedules.

Known answers: for data N(μ, s²) (per element) the exact velocity / ε-prediction of each path is analytic,

    linear path  x = α·x0 + σ·ε, α = 1 − σ:   V = α²s² + σ²,  E[x0|x] = μ + α·s²/V·(x − αμ),  E[ε|x] = σ/V·(x − αμ)
                 u = dx/dσ = E[ε − x0|x];  SiT (σ = 1 − t): v = −u;  REPA (σ = t): v = u
    DDPM         x = √ᾱ·x0 + √(1−ᾱ)·ε:        E[ε|x] = √(1−ᾱ)/(ᾱs² + 1 − ᾱ)·(x − √ᾱ·μ)

so a sampler fed these "oracle networks" must return samples with mean μ and std s.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dtviz.pruning.spec import PruneSpec

from dtviz.pruning.hooks import pruned
from dtviz.sampling.flow_sde import EulerMaruyamaSampler
from dtviz.sampling.samplers import DDPMSampler, guided_denoiser, linear_betas, respaced_betas, space_timesteps
from tests.factories import randomized_dit, tiny_config
from tests.test_pruning import NUM_CLASSES, Oracle, class_mean_mask, save_tiny_folder

MU, S = 0.7, 0.3


def flow_oracle(t_noise: float, mu: float = MU, s: float = S, calls: list | None = None):
    """denoise(x, t, y) = the exact velocity dx/dt of the linear path for data N(mu, s²)."""

    def denoise(x, t, y):
        if calls is not None:
            calls.append(float(t[0]))
        sigma = (t if t_noise == 1.0 else 1 - t).double().view(-1, 1, 1, 1)
        alpha = 1 - sigma
        xd = x.double()
        V = alpha ** 2 * s ** 2 + sigma ** 2
        x0 = mu + alpha * s ** 2 / V * (xd - alpha * mu)
        eps = sigma / V * (xd - alpha * mu)
        u = eps - x0
        return (u if t_noise == 1.0 else -u).to(x.dtype)

    return denoise


def eps_oracle(mu: float = MU, s: float = S, learned: float | None = None, calls: list | None = None):
    """denoise(x, t, y) = E[ε | x_t] for data N(mu, s²) on DiT's linear schedule; ``learned``: append C channels
    of that constant as the learned-range variance values."""
    alphas_cum = torch.cumprod(1 - linear_betas(1000), 0)

    def denoise(x, t, y):
        if calls is not None:
            calls.append(int(t[0]))
        a = alphas_cum[t].view(-1, 1, 1, 1)
        eps = (1 - a).sqrt() / (a * s ** 2 + 1 - a) * (x.double() - a.sqrt() * mu)
        out = eps.to(x.dtype)
        return out if learned is None else torch.cat([out, torch.full_like(out, learned)], 1)

    return denoise


def gens(seed: int, n: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed * 1000 + i) for i in range(n)]


# ------------------------------------------------------------------------------------ Euler–Maruyama

@pytest.mark.parametrize("t_noise", [0.0, 1.0], ids=["sit-0-noise", "repa-1-noise"])
def test_euler_maruyama_recovers_gaussian(t_noise):
    sampler = EulerMaruyamaSampler(steps=100, t_start=t_noise, t_end=1 - t_noise)
    noise = torch.randn(400, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    x = sampler.sample(flow_oracle(t_noise), noise, torch.zeros(400, dtype=torch.long), generator=torch.Generator().manual_seed(1))
    assert x.mean().item() == pytest.approx(MU, abs=0.02)
    assert x.std().item() == pytest.approx(S, rel=0.05)
    assert not torch.allclose(x, noise * S + MU, atol=1e-3)  # really stochastic: not the ODE's transport map


@pytest.mark.parametrize("t_noise", [0.0, 1.0])
def test_euler_maruyama_score_and_grid_match_upstream(t_noise):
    """Score = −E[ε|x]/σ (SiT/REPA get_score_from_velocity); evaluation times = SiT linspace(0, 0.96, n) /
    REPA linspace(1, 0.04, n)."""
    sampler = EulerMaruyamaSampler(steps=5, t_start=t_noise, t_end=1 - t_noise)
    x = torch.randn(3, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for t in (0.2, 0.5, 0.9):
        v = flow_oracle(t_noise)(x, torch.full((3,), t, dtype=torch.float64), None)
        sigma = t if t_noise == 1.0 else 1 - t
        alpha = 1 - sigma
        V = alpha ** 2 * S ** 2 + sigma ** 2
        assert torch.allclose(sampler.score(v, x, t), -(x - alpha * MU) / V, atol=1e-12)
        drift, w = sampler.drift(v, x, t)
        assert w == pytest.approx(sigma)  # SiT "sigma" form / REPA g² = 2t
    expected = np.linspace(0, 0.96, 5) if t_noise == 0.0 else np.linspace(1, 0.04, 5)
    assert np.allclose(sampler.timesteps(), expected, atol=1e-12)
    assert len(EulerMaruyamaSampler(steps=5, last_step=None).timesteps()) == 4


def test_euler_maruyama_determinism_and_per_row_noise():
    sampler = EulerMaruyamaSampler(steps=8, t_start=1.0, t_end=0.0)
    noise = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    labels = torch.zeros(4, dtype=torch.long)
    a = sampler.sample(flow_oracle(1.0), noise, labels, generator=gens(5, 4))
    b = sampler.sample(flow_oracle(1.0), noise, labels, generator=gens(5, 4))
    c = sampler.sample(flow_oracle(1.0), noise, labels, generator=gens(6, 4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Row 2 alone, with its own generator, is the same sample: the noise does not depend on the batch.
    alone = sampler.sample(flow_oracle(1.0), noise[2:3], labels[2:3], generator=gens(5, 4)[2:3])
    assert torch.equal(alone[0], a[2])
    one = sampler.sample(flow_oracle(1.0), noise, labels, generator=torch.Generator().manual_seed(9))
    assert torch.equal(one, sampler.sample(flow_oracle(1.0), noise, labels, generator=torch.Generator().manual_seed(9)))


@pytest.mark.parametrize("last_step", ["mean", "euler", None])
def test_euler_maruyama_calls_on_step_once_per_evaluation(last_step):
    sampler = EulerMaruyamaSampler(steps=6, last_step=last_step)
    calls, steps = [], []
    sampler.sample(flow_oracle(0.0, calls=calls), torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long),
                   on_step=lambda i, n: steps.append((i, n)))
    n = 6 if last_step else 5
    assert steps == [(i, n) for i in range(n)]
    assert np.allclose(calls, sampler.timesteps(), atol=1e-6)


# ---------------------------------------------------------------------------------------------- DDPM

def test_space_timesteps_and_respaced_betas():
    kept = space_timesteps(1000, 250)
    assert len(kept) == 250 and kept[:4] == [0, 4, 8, 12] and kept[-1] == 999  # round(i·999/249)
    assert space_timesteps(1000, 1000) == list(range(1000)) and space_timesteps(1000, 1) == [0]
    base = linear_betas(1000)
    alphas_cum = torch.cumprod(1 - base, 0)
    for steps in (250, 50, 7):
        kept = space_timesteps(1000, steps)
        betas = respaced_betas(base, kept)
        assert torch.allclose(torch.cumprod(1 - betas, 0), alphas_cum[kept], rtol=1e-12, atol=0)
    assert torch.allclose(respaced_betas(base, list(range(1000))), base, rtol=1e-9, atol=0)  # all kept: the base chain
    assert DDPMSampler(steps=250).timesteps() == space_timesteps(1000, 250)[::-1]


def test_learned_range_endpoints():
    sampler = DDPMSampler(steps=10)
    sched = sampler.schedule()
    ones = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    for k in (0, 1, 5, 9):
        lo = sampler.log_variance(k, -ones, sched)
        hi = sampler.log_variance(k, ones, sched)
        mid = sampler.log_variance(k, 0 * ones, sched)
        assert lo.item() == pytest.approx(float(sched["posterior_log_variance_clipped"][k]), abs=1e-12)
        assert hi.item() == pytest.approx(math.log(float(sched["betas"][k])), abs=1e-12)
        assert mid.item() == pytest.approx((lo.item() + hi.item()) / 2, abs=1e-12)
    # β̃ = β·(1 − ᾱ_prev)/(1 − ᾱ); its log is clipped at k = 0 to that of k = 1 (DiT posterior_log_variance_clipped).
    post = sched["betas"] * (1 - sched["alphas_cum_prev"]) / (1 - sched["alphas_cum"])
    assert post[0] == 0 and torch.allclose(sched["posterior_log_variance_clipped"][1:], post[1:].log())
    assert sched["posterior_log_variance_clipped"][0] == sched["posterior_log_variance_clipped"][1]
    fixed = DDPMSampler(steps=10, learned_sigma=False)
    assert fixed.log_variance(3, None, sched) == pytest.approx(math.log(float(sched["betas"][3])))  # FIXED_LARGE


def test_ddpm_point_mass_is_exact():
    """With an exact ε for a point mass x0 = μ, x̂0 = μ at every step and the last step returns it."""
    noise = torch.randn(8, 2, 4, 4, generator=torch.Generator().manual_seed(4))
    for sampler, learned in ((DDPMSampler(steps=20), 0.3), (DDPMSampler(steps=20, learned_sigma=False), None)):
        x = sampler.sample(eps_oracle(s=0.0, learned=learned), noise, torch.zeros(8, dtype=torch.long), generator=gens(1, 8))
        assert torch.allclose(x, torch.full_like(x, MU), atol=1e-5)


def test_ddpm_recovers_gaussian():
    """Mean μ for every variance choice. The exact reverse variance for Gaussian data lies between β̃ (v = −1)
    and β (v = +1), so with 100 of 1000 steps the two endpoints bracket s; with all 1000 steps both give s."""
    noise = torch.randn(400, 1, 4, 4, generator=torch.Generator().manual_seed(5))
    labels = torch.zeros(400, dtype=torch.long)

    def run(steps, learned):
        sampler = DDPMSampler(steps=steps, learned_sigma=learned is not None)
        return sampler.sample(eps_oracle(learned=learned), noise, labels, generator=torch.Generator().manual_seed(6))

    stds = {}
    for learned in (-1.0, 0.0, 1.0, None):
        x = run(100, learned)
        assert x.mean().item() == pytest.approx(MU, abs=0.02)
        stds[learned] = x.std().item()
    assert stds[-1.0] < stds[0.0] < stds[1.0] and stds[-1.0] < S < stds[1.0]
    assert stds[None] == pytest.approx(S, rel=0.05)  # FIXED_LARGE
    for learned in (-1.0, 1.0):
        x = run(1000, learned)
        assert x.mean().item() == pytest.approx(MU, abs=0.02) and x.std().item() == pytest.approx(S, rel=0.03)


def test_ddpm_determinism_and_on_step():
    sampler = DDPMSampler(steps=12)
    noise = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(7))
    labels = torch.zeros(3, dtype=torch.long)
    calls, steps = [], []
    a = sampler.sample(eps_oracle(learned=0.0, calls=calls), noise, labels, on_step=lambda i, n: steps.append((i, n)),
                       generator=gens(2, 3))
    assert steps == [(i, 12) for i in range(12)] and calls == sampler.timesteps()
    assert torch.equal(a, sampler.sample(eps_oracle(learned=0.0), noise, labels, generator=gens(2, 3)))
    assert not torch.equal(a, sampler.sample(eps_oracle(learned=0.0), noise, labels, generator=gens(3, 3)))
    with pytest.raises(ValueError, match="output channels"):
        sampler.sample(eps_oracle(), noise, labels)


# ------------------------------------------------------------------------------------------- pruning

SAMPLERS = {
    "sit-sde": (lambda: EulerMaruyamaSampler(steps=6, t_start=0.0, t_end=1.0), None, False),
    "repa-sde-interval": (lambda: EulerMaruyamaSampler(steps=6, t_start=1.0, t_end=0.0), (0.0, 0.7), False),
    "dit-ddpm": (lambda: DDPMSampler(steps=6), None, True),
}


@torch.no_grad()
@pytest.mark.parametrize("sampler_name", list(SAMPLERS))
def test_pruning_schedule_with_stochastic_samplers_matches_oracle(sampler_name):
    """Hooks vs weight-zeroed adaLN columns (tests/test_pruning.py's Oracle), bit-exact, with shared noise."""
    make_sampler, interval, learn_sigma = SAMPLERS[sampler_name]
    model = randomized_dit(tiny_config(NUM_CLASSES, hidden=32, depth=2, in_channels=1, learn_sigma=learn_sigma), seed=3)
    spec = PruneSpec(mode="tail", tau=0.3, mask="global", schedule="last:2")
    mask = class_mean_mask(model, spec, 0.0)
    labels = torch.tensor([1, 4, 8])
    noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with pruned(model, spec, mask=mask, null_class=NUM_CLASSES) as pruner:
        hooked = make_sampler().sample(guided_denoiser(model, NUM_CLASSES, 4.0, None, interval), noise, labels,
                                       on_step=pruner.on_step, generator=gens(0, 3))
    oracle = Oracle(model, spec, mask)
    expected = make_sampler().sample(guided_denoiser(oracle, NUM_CLASSES, 4.0, None, interval), noise, labels,
                                     on_step=oracle.on_step, generator=gens(0, 3))
    baseline = make_sampler().sample(guided_denoiser(model, NUM_CLASSES, 4.0, None, interval), noise, labels,
                                     generator=gens(0, 3))
    assert torch.equal(hooked, expected)
    assert not torch.equal(hooked, baseline)
    assert pruner.pruned_steps == [4, 5]


def test_generator_sampler_names(tmp_path):
    import dtviz
    from dtviz.errors import DtvizInputError
    from dtviz.sampling.generate import SAMPLER_DEFAULTS, Generator, SampleSettings

    sit = Generator(dtviz.load(save_tiny_folder(str(tmp_path / "sit"), family="sit"), device="cpu"))
    assert type(sit.sampler(name="sde")).__name__ == "EulerMaruyamaSampler" and sit.sampler().__class__.__name__ == "EulerFlowSampler"
    settings = SampleSettings(seed=4, steps=4, sampler="sde")
    labels = [0, 3, 5, 9]
    whole = sit.sample(labels, settings)
    assert np.array_equal(whole, sit.sample(labels, settings))  # seeded: repeatable
    assert np.allclose(sit.sample(labels, settings, batch_size=1), whole, atol=1e-5)  # per-sample noise
    assert not np.array_equal(whole, sit.sample(labels, SampleSettings(seed=4, steps=4)))
    with pytest.raises(DtvizInputError, match="euler or sde or ode or heun"):
        sit.sampler(name="ddpm")
    assert SAMPLER_DEFAULTS["dit"]["name"] == "ddpm" and SAMPLER_DEFAULTS["dit"]["steps"] == 250  # DiT's sample.py
    dit = Generator(dtviz.load(save_tiny_folder(str(tmp_path / "dit"), family="dit"), device="cpu"))
    s = dit.sampler()
    assert isinstance(s, DDPMSampler) and s.steps == 4 and not s.learned_sigma  # sidecar steps, model without sigma
    images = dit.sample([1, 2], SampleSettings(seed=1))
    assert images.shape == (2, 8, 8, 1) and np.array_equal(images, dit.sample([1, 2], SampleSettings(seed=1)))
    assert type(dit.sampler(name="ddim")).__name__ == "DDIMSampler"
