"""The releases' flow samplers (dtviz.sampling.flow), CFG ≤ 1, --noise and the release seed convention.

Each sampler is checked against an independent float64 re-implementation of its release's loop, written here
from SiT ``transport/`` and REPA ``samplers.py`` on an analytic velocity field (v = a(t)·x + b(t), any a, b),
and dopri5 against the closed-form solution of a linear ODE. Generator-level tests run real tiny DiTs.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import dtviz
from dtviz.cli.main import main
from dtviz.errors import DtvizInputError
from dtviz.sampling.flow import AdaptiveFlowSampler, HeunFlowSampler, flow_sampler
from dtviz.sampling.flow_sde import EulerMaruyamaSampler, diffusion_coefficient
from dtviz.sampling.generate import Generator, SampleSettings
from dtviz.pruning.spec import PruneSpec
from dtviz.sampling.samplers import EulerFlowSampler, guided_denoiser
from tests.factories import randomized_dit, save_checkpoint, tiny_config
from tests.cli_output import error_lines

SHAPE = (3, 1, 4, 4)


def linear_field(t_dtype=torch.float64):
    """v(x, t) = (0.3 + t)·x − 0.5·t (any smooth affine field; t is the model's own t)."""

    def v(x, t, y=None):
        tt = t.double().view(-1, 1, 1, 1)
        return ((0.3 + tt) * x.double() - 0.5 * tt).to(x.dtype)

    return v


def ref_v(x, t):
    return (0.3 + t) * x - 0.5 * t


def ref_v32(x, t):
    """The field as the network sees it: t handed over in float32, as SiT and REPA do."""
    return ref_v(x, float(np.float32(t)))


def fixed_noise(n_steps: int, shape=SHAPE, seed=7):
    """A callable noise source (samplers.randn_rows accepts one) replaying a pre-drawn list, and that list."""
    g = torch.Generator().manual_seed(seed)
    draws = [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(n_steps)]
    it = iter(draws)
    return (lambda like: next(it).to(like.dtype)), draws


def x0(seed=3):
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------------------- each sampler vs its formula

@pytest.mark.parametrize("t_start,t_end", [(1.0, 0.0), (0.0, 1.0)])
def test_heun_matches_repa_loop(t_start, t_end):
    steps = 7
    ts = np.linspace(t_start, t_end, steps + 1)
    x = x0().clone()
    for i in range(steps):  # REPA euler_sampler(heun=True), float64
        d = ref_v(x, ts[i])
        x_next = x + (ts[i + 1] - ts[i]) * d
        if i < steps - 1:
            x_next = x + (ts[i + 1] - ts[i]) * (0.5 * d + 0.5 * ref_v(x_next, ts[i + 1]))
        x = x_next
    calls = []
    out = HeunFlowSampler(steps, t_start, t_end).sample(linear_field(), x0(), None, on_step=lambda i, n: calls.append((i, n)))
    assert torch.allclose(out, x, rtol=0, atol=1e-12)
    assert calls == [(i, 2 * steps - 1) for i in range(2 * steps - 1)]  # pruning counts network evaluations


def test_dopri5_matches_closed_form():
    """dx/dt = λ·x + c from t = 0 to 1: x(1) = e^λ·x0 + c·(e^λ − 1)/λ."""
    lam, c = -1.3, 0.4
    exact = math.exp(lam) * x0() + c * (math.exp(lam) - 1) / lam
    field = lambda x, t, y: lam * x + c  # noqa: E731
    tight = AdaptiveFlowSampler(steps=2, method="dopri5", atol=1e-8, rtol=1e-8).sample(field, x0(), None)
    assert torch.allclose(tight, exact, rtol=0, atol=1e-6)
    evals = []
    default = AdaptiveFlowSampler().sample(field, x0().float(), None, on_step=lambda i, n: evals.append((i, n)))
    assert torch.allclose(default.double(), exact, rtol=0, atol=2e-3)  # SiT's tolerances: atol 1e-6, rtol 1e-3
    assert evals[0] == (0, 0) and [i for i, _ in evals] == list(range(len(evals)))  # evaluations counted, n unknown
    with pytest.raises(DtvizInputError, match="torchdiffeq"):
        AdaptiveFlowSampler(method="nonsense")
    with pytest.raises(DtvizInputError, match="more than 5 network evaluations"):
        AdaptiveFlowSampler(atol=1e-12, rtol=1e-12, max_evaluations=5).sample(field, x0(), None)


def sit_sde_reference(x, draws, steps, form, norm, last_step, h=0.04):
    """SiT transport sample_sde + integrators.sde (Euler), linear path, float64: t = linspace(0, 1 − h, steps)."""
    ts = np.linspace(0, 1 - h, steps)
    dt = ts[1] - ts[0]

    def score(v, x, t):  # ICPlan.get_score_from_velocity: α = t, α̇ = 1, σ = 1 − t, σ̇ = −1
        return (t * v - x) / ((1 - t) ** 2 + t * (1 - t))

    def w(t):
        return {"sigma": norm * (1 - t), "constant": norm, "linear": norm * (1 - t),
                "decreasing": 0.25 * (norm * math.cos(math.pi * t) + 1) ** 2,
                "increasing-decreasing": norm * math.sin(math.pi * t) ** 2}[form]

    for i, t in enumerate(ts[:-1]):
        v = ref_v32(x, t)
        x = x + (v + w(t) * score(v, x, t)) * dt + math.sqrt(2 * w(t)) * draws[i] * math.sqrt(dt)
    t1, v = ts[-1], ref_v32(x, ts[-1])
    if last_step == "mean":
        return x + (v + w(t1) * score(v, x, t1)) * h
    if last_step == "euler":
        return x + v * h
    if last_step == "tweedie":
        return x / t1 + (1 - t1) ** 2 / t1 * score(v, x, t1)
    return x


@pytest.mark.parametrize("form", ["sigma", "constant", "linear", "decreasing", "increasing-decreasing"])
@pytest.mark.parametrize("last_step", ["mean", "euler", "tweedie", None])
def test_sit_sde_matches_reference(form, last_step):
    steps, norm = 9, 0.7
    source, draws = fixed_noise(steps)
    sampler = EulerMaruyamaSampler(steps=steps, diffusion_form=form, diffusion_scale=norm, last_step=last_step)
    out = sampler.sample(linear_field(), x0(), None, generator=source)
    assert torch.allclose(out, sit_sde_reference(x0(), draws, steps, form, norm, last_step), rtol=0, atol=1e-11)


def sit_heun_sde_reference(x, draws, steps, form, norm, last_step, h=0.04):
    """SiT integrators.sde.__Heun_step (sample.py SDE --sampling-method Heun), linear path, float64, then SiT's
    last step on the Heun result: noise first, x̂ = x + √(2w(t))·dW, K1 = drift(x̂, t), K2 = drift(x̂ + dt·K1, t + dt)."""
    ts = np.linspace(0, 1 - h, steps)
    dt = ts[1] - ts[0]

    def w(t):
        return {"sigma": norm * (1 - t), "constant": norm, "linear": norm * (1 - t),
                "decreasing": 0.25 * (norm * math.cos(math.pi * t) + 1) ** 2,
                "increasing-decreasing": norm * math.sin(math.pi * t) ** 2}[form]

    def drift(x, t):  # v + w·score, score = (t·v − x) / ((1 − t)² + t·(1 − t))
        v = ref_v32(x, t)
        return v + w(t) * (t * v - x) / ((1 - t) ** 2 + t * (1 - t))

    for i, t in enumerate(ts[:-1]):
        xhat = x + math.sqrt(2 * w(t)) * draws[i] * math.sqrt(dt)
        k1 = drift(xhat, t)
        k2 = drift(xhat + dt * k1, t + dt)
        x = xhat + 0.5 * dt * (k1 + k2)
    t1, v = ts[-1], ref_v32(x, ts[-1])
    if last_step == "mean":
        return x + drift(x, t1) * h
    if last_step == "tweedie":
        return x / t1 + (1 - t1) ** 2 / t1 * (t1 * v - x) / ((1 - t1) ** 2 + t1 * (1 - t1))
    return x


@pytest.mark.parametrize("form", ["sigma", "constant", "decreasing", "increasing-decreasing"])
@pytest.mark.parametrize("last_step", ["mean", "tweedie", None])
def test_sit_heun_sde_matches_reference(form, last_step):
    steps, norm = 9, 0.7
    source, draws = fixed_noise(steps)
    sampler = flow_sampler("sde", steps, {"method": "Heun", "diffusion_form": form, "diffusion_norm": norm,
                                          "last_step": last_step}, 0.0, 1.0)
    calls = []
    out = sampler.sample(linear_field(), x0(), None, generator=source, on_step=lambda i, n: calls.append((i, n)))
    expected = sit_heun_sde_reference(x0(), draws, steps, form, norm, last_step)
    assert torch.allclose(out, expected, rtol=0, atol=1e-11)
    n_eval = 2 * (steps - 1) + (1 if last_step else 0)  # two drifts per stochastic step, one last step
    assert calls == [(i, n_eval) for i in range(n_eval)] and len(sampler.timesteps()) == n_eval
    euler = flow_sampler("sde", steps, {"diffusion_form": form, "diffusion_norm": norm, "last_step": last_step}, 0.0, 1.0)
    assert not torch.allclose(euler.sample(linear_field(), x0(), None, generator=fixed_noise(steps)[0]), out, atol=1e-4)
    with pytest.raises(DtvizInputError, match="euler or heun"):
        flow_sampler("sde", steps, {"method": "rk4"}, 0.0, 1.0)


@pytest.mark.parametrize("path", ["linear", "cosine"])
def test_repa_sde_matches_reference(path):
    """REPA euler_maruyama_sampler: t = linspace(1, 0.04, n) then 0; drift v − ½·2t·score; path linear or cosine."""
    steps = 8
    source, draws = fixed_noise(steps)
    ts = list(np.linspace(1.0, 0.04, steps)) + [0.0]

    def score(v, x, t):
        if path == "linear":
            a, da, s, ds = 1 - t, -1.0, t, 1.0
        else:
            a, s = math.cos(t * math.pi / 2), math.sin(t * math.pi / 2)
            da, ds = -math.pi / 2 * math.sin(t * math.pi / 2), math.pi / 2 * math.cos(t * math.pi / 2)
        r = a / da
        return (r * v - x) / (s ** 2 - r * ds * s)

    x = x0().clone()
    for i in range(steps - 1):
        t, dt = ts[i], ts[i + 1] - ts[i]
        v = ref_v32(x, t)
        x = x + (v - 0.5 * 2 * t * score(v, x, t)) * dt + math.sqrt(2 * t) * draws[i] * math.sqrt(abs(dt))
    t, dt = ts[-2], ts[-1] - ts[-2]
    v = ref_v32(x, t)
    x = x + dt * (v - 0.5 * 2 * t * score(v, x, t))
    sampler = flow_sampler("sde", steps, {"path": path}, 1.0, 0.0)
    assert sampler.diffusion_form == "linear"  # REPA's g² = 2t
    assert torch.allclose(sampler.sample(linear_field(), x0(), None, generator=source), x, rtol=0, atol=1e-11)


def test_diffusion_forms_known_values():
    assert diffusion_coefficient("sigma", 0.25, 2.0) == pytest.approx(1.5)
    assert diffusion_coefficient("decreasing", 0.0, 1.0) == pytest.approx(1.0)
    assert diffusion_coefficient("decreasing", 1.0, 1.0) == pytest.approx(0.0)
    assert diffusion_coefficient("increasing-decreasing", 0.5, 3.0) == pytest.approx(3.0)
    assert diffusion_coefficient("SBDM", 0.25) == pytest.approx(3.0)
    with pytest.raises(DtvizInputError, match="SBDM"):
        EulerMaruyamaSampler(diffusion_form="SBDM")
    with pytest.raises(DtvizInputError, match="diffusion form"):
        EulerMaruyamaSampler(diffusion_form="quadratic")


# ------------------------------------------------------------------------------- learned sigma (item 1)

@pytest.mark.parametrize("name", ["euler", "heun", "ode", "sde"])
@pytest.mark.parametrize("t_start,t_end", [(0.0, 1.0), (1.0, 0.0)], ids=["sit", "repa"])
def test_learn_sigma_samples_with_every_flow_sampler(name, t_start, t_end):
    """SiT's forward drops the sigma half: a 2C-channel network samples as its first C channels."""
    model = randomized_dit(tiny_config(num_classes=4, in_channels=1, learn_sigma=True, hidden=32), seed=2)
    noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3])
    sampler = flow_sampler(name, 4, {}, t_start, t_end)
    denoise = guided_denoiser(model, 4, 2.0, None)
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(2)]  # noqa: E731
    out = sampler.sample(denoise, noise, labels, generator=gens())
    halved = lambda x, t, y, **kw: denoise(x, t, y, **kw)[:, :1]  # noqa: E731
    assert out.shape == noise.shape and torch.isfinite(out).all()
    assert torch.allclose(out, sampler.sample(halved, noise, labels, generator=gens()), atol=1e-6)


@pytest.mark.parametrize("sampler", ["euler", "sde", "ode", "heun"])
def test_cli_samples_learn_sigma_sit(tmp_path, capsys, sampler):
    ckpt = save_checkpoint(randomized_dit(tiny_config(num_classes=4, in_channels=3, learn_sigma=True)).state_dict(),
                           str(tmp_path / "ck" / "sit.pt"), "train")
    code = main(["sample", ckpt, "--family", "sit", "--sampler", sampler, "--steps", "3", "--classes", "1,2",
                 "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    code = main(["sample", ckpt, "--family", "sit", "--sampler", "sde:diffusion_form=nope", "--steps", "3",
                 "--classes", "1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(error_lines(err)) == 1 and "Traceback" not in err and "diffusion form" in err


# ------------------------------------------------------------------------------------ CFG ≤ 1 (item 11)

@pytest.mark.parametrize("cfg,rows", [(1.0, 2), (0.5, 2), (1.5, 4)])
def test_cfg_at_most_one_runs_one_conditional_forward(cfg, rows):
    model = randomized_dit(tiny_config(num_classes=4, in_channels=1, learn_sigma=False), seed=1)
    batches = []
    model.register_forward_pre_hook(lambda m, args: batches.append((args[0].shape[0], args[2].tolist())))
    EulerFlowSampler(steps=3).sample(guided_denoiser(model, 4, cfg), torch.zeros(2, 1, 8, 8), torch.tensor([1, 2]))
    assert [b for b, _ in batches] == [rows] * 3
    if rows == 2:
        assert all(labels == [1, 2] for _, labels in batches)  # the null class never runs


# ------------------------------------------------------------------------------ noise and seeds (item 12)

def pixel_generator(tmp_path, family="sit", learn_sigma=True):
    ckpt = save_checkpoint(randomized_dit(tiny_config(num_classes=4, in_channels=3, learn_sigma=learn_sigma)).state_dict(),
                           str(tmp_path / "ck" / f"{family}.pt"), "train")
    return Generator(dtviz.load(ckpt, family=family, device="cpu")), ckpt


def test_release_seed_convention_is_a_direct_manual_seed_draw(tmp_path):
    gen, _ = pixel_generator(tmp_path)
    labels, seed = [1, 2, 0], 11
    settings = SampleSettings(seed=seed, steps=4, sampler="sde", seed_convention="release")
    # SiT sample.py: torch.manual_seed(seed); model built (its init draws); z = randn(n, C, L, L); the SDE's
    # th.randn(x.size()) of the doubled CFG batch at each of its steps − 1 stochastic steps.
    torch.manual_seed(seed)
    type(gen.model)(gen.model.config)
    z = torch.randn(3, 3, 8, 8)
    draws = [torch.randn(6, 3, 8, 8)[:3].double() for _ in range(3)]
    it = iter(draws)
    denoise = guided_denoiser(gen.model, 4, gen.defaults["cfg_scale"], 3)
    expected = EulerMaruyamaSampler(steps=4).sample(denoise, z, torch.tensor(labels), generator=lambda like: next(it))
    to_images = gen._to_images
    assert np.allclose(gen.sample(labels, settings), to_images(expected), atol=1e-6)
    assert np.array_equal(gen.sample(labels, settings), gen.sample(labels, settings))
    per_sample = gen.sample(labels, SampleSettings(seed=seed, steps=4, sampler="sde"))
    assert not np.allclose(per_sample, to_images(expected), atol=1e-3)
    # The ODE draws nothing after z: release = z passed as noise=.
    ode = SampleSettings(seed=seed, steps=4, sampler="euler")
    assert np.allclose(gen.sample(labels, SampleSettings(seed=seed, steps=4, sampler="euler", seed_convention="release")),
                       gen.sample(labels, ode, noise=z), atol=1e-6)


def test_release_seed_convention_replays_sit_heun_sde(tmp_path):
    """SiT's __Heun_step draws th.randn(x.size()) once per stochastic step, as Euler does: same draws, same order."""
    gen, _ = pixel_generator(tmp_path)
    labels, seed = [1, 2, 0], 11
    torch.manual_seed(seed)
    type(gen.model)(gen.model.config)
    z = torch.randn(3, 3, 8, 8)
    it = iter([torch.randn(6, 3, 8, 8)[:3].double() for _ in range(3)])
    denoise = guided_denoiser(gen.model, 4, gen.defaults["cfg_scale"], 3)
    expected = EulerMaruyamaSampler(steps=4, method="heun").sample(denoise, z, torch.tensor(labels),
                                                                   generator=lambda like: next(it))
    settings = SampleSettings(seed=seed, steps=4, sampler="sde:method=heun", seed_convention="release")
    assert np.allclose(gen.sample(labels, settings), gen._to_images(expected), atol=1e-6)


def test_release_seed_convention_refused_where_not_replayed(tmp_path):
    gen, _ = pixel_generator(tmp_path, family="mg")
    with pytest.raises(DtvizInputError, match="--noise"):
        gen.sample([0], SampleSettings(seed_convention="release"))


def test_noise_round_trip_and_refusals(tmp_path, capsys):
    gen, ckpt = pixel_generator(tmp_path, family="dit", learn_sigma=True)
    z = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    path = tmp_path / "z.pt"
    torch.save(z, path)
    settings = SampleSettings(seed=0, steps=5, sampler="ddim")
    direct = gen.sample([1, 2], settings, noise=z)
    assert not np.allclose(direct, gen.sample([1, 2], settings), atol=1e-3)  # the noise is really used
    assert main(["sample", ckpt, "--family", "dit", "--sampler", "ddim", "--steps", "5", "--classes", "1,2",
                 "--noise", str(path), "--out", str(tmp_path / "out")]) == 0
    from PIL import Image

    from dtviz.sampling.generate import to_uint8

    written = np.stack([np.asarray(Image.open(tmp_path / "out" / f"{i:06d}_class{c:04d}.png")) for i, c in enumerate([1, 2])])
    assert np.abs(written.astype(int) - to_uint8(direct).astype(int)).max() <= 1
    with pytest.raises(DtvizInputError, match=r"shape \(2, 3, 8, 8\)"):
        gen.sample([1, 2], settings, noise=torch.randn(2, 3, 8, 4))
    torch.save({"z": z}, tmp_path / "dict.pt")
    assert main(["sample", ckpt, "--family", "dit", "--classes", "1,2", "--noise", str(tmp_path / "dict.pt"),
                 "--out", str(tmp_path / "out2")]) == 2
    assert "one tensor" in capsys.readouterr().err


def test_adaptive_ode_counts_evaluations_and_refuses_last_k(tmp_path):
    gen, _ = pixel_generator(tmp_path)
    assert gen.defaults["name"] == "ode" and gen.sampler().adaptive  # SiT sample.py ODE: dopri5
    with pytest.raises(DtvizInputError, match="adaptive ODE"):
        gen.sample([0], SampleSettings(steps=4), prune=PruneSpec(tau=0.1, schedule="last:2"))
    first = gen.sample([0], SampleSettings(steps=4), prune=PruneSpec(tau=0.1, schedule="first"))
    assert first.shape == (1, 8, 8, 3)


def test_cli_reports_an_internal_error_in_one_sentence(tmp_path, capsys, monkeypatch):
    """A bug (here injected: a RuntimeError from inside sampling) reaches the user as one sentence, exit 2;
    DTVIZ_DEBUG=1 re-raises it with its traceback."""
    _, ckpt = pixel_generator(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("The size of tensor a (4) must match the size of tensor b (8)\nat dimension 1")

    monkeypatch.setattr(Generator, "sample", broken)
    argv = ["sample", ckpt, "--family", "sit", "--classes", "1", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and "internal error (RuntimeError: The size of tensor a" in err and "DTVIZ_DEBUG" in err
    monkeypatch.setenv("DTVIZ_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(argv)


def test_heun_corrector_guidance_judged_at_step_start():
    """REPA euler_sampler(heun=True) decides CFG for both evaluations of a step by t_cur: with the interval
    t ≤ 0.6 on the grid 1, .75, .5, .25, 0 the corrector at t = .5 of the step from .75 runs unguided."""
    model = randomized_dit(tiny_config(num_classes=4, in_channels=1, learn_sigma=False), seed=1)
    rows = []
    model.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    HeunFlowSampler(4, 1.0, 0.0).sample(guided_denoiser(model, 4, 2.0, None, (0.0, 0.6)), torch.zeros(2, 1, 8, 8),
                                        torch.tensor([1, 2]))
    assert rows == [2, 2, 2, 2, 4, 4, 4]


def test_release_seed_convention_replays_lightningdit_inference(tmp_path):
    """LightningDiT inference.py: torch.manual_seed(global_seed) after the model is built; z = torch.randn(n, C, L, L);
    y = torch.randint(0, num_classes, (n,)); CFG doubles z without drawing; its ODE draws nothing more."""
    from tests.factories import randomized_lightningdit, save_model_folder, tiny_lightningdit_config

    model = randomized_lightningdit(tiny_lightningdit_config(10, hidden=32, depth=2, in_channels=3), seed=5)
    source = dtviz.load(save_model_folder(tmp_path / "m", model, "lightningdit", {"steps": 4}), device="cpu")
    gen, labels, seed = Generator(source), [0, 3, 7], 7
    torch.manual_seed(seed)
    z = torch.randn(3, 3, 8, 8)
    torch.randint(0, source.num_classes, (3,))
    after = torch.get_rng_state()
    ode = gen.sampler_names[0]
    ours = gen.sample(labels, SampleSettings(seed=seed, sampler=ode, seed_convention="release"))
    assert torch.equal(torch.get_rng_state(), after)  # the same draws, in the same order, and nothing more
    np.testing.assert_allclose(ours, gen.sample(labels, SampleSettings(seed=seed, sampler=ode), noise=z), atol=1e-6)
    assert np.abs(ours - gen.sample(labels, SampleSettings(seed=seed + 1, sampler=ode, seed_convention="release"))).max() > 1e-3
    assert "sde" in gen.sampler_names  # dtviz offers it; inference.py has no SDE mode: no step noise to replay
    with pytest.raises(DtvizInputError, match="ODE only"):
        gen.sample(labels, SampleSettings(seed=seed, sampler="sde", seed_convention="release"))


def test_release_seed_convention_refuses_mdt_which_never_seeds(tmp_path):
    from tests.factories import randomized_mdt, save_model_folder, tiny_mdt_config

    model = randomized_mdt(tiny_mdt_config(10, hidden=32, depth=2, in_channels=3))
    gen = Generator(dtviz.load(save_model_folder(tmp_path / "m", model, "mdt", {"steps": 4}), device="cpu"))
    with pytest.raises(DtvizInputError, match=r"never seeds torch.*--noise"):
        gen.sample([0], SampleSettings(seed_convention="release"))
