"""dtviz.capture / dtviz.prune on the documented recipes (run verbatim from docs/capture.md) and trajectory sources.

Known answers: the captured c of every row and step equals c computed independently from the model's own
embedders at the recorded timesteps; the CFG halves are labelled as said. Pruning equals the oracle of zeroed
weight columns in the consuming Linear layers (bit-exact in float32: SiLU(0) = 0), for every / first / last-K.
"""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import dtviz
from dtviz.errors import DtvizInputError
from dtviz.pruning.spec import PruneSpec
from dtviz.sources.trajectory import Trajectory, TrajectorySource, read_trajectory
from tests.test_pruning import Oracle, reference_keep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "docs", "capture.md")  # the recipes live in the capture page of the docs


def recipes() -> dict[str, str]:
    text = open(README, encoding="utf-8").read()
    return dict(re.findall(r"<!-- recipe: (\w+) -->\n```python\n(.*?)```", text, re.S))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Every README recipe executed in one fresh namespace, in a temp folder (where they write their files)."""
    folder = tmp_path_factory.mktemp("recipes")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        ns: dict = {}
        for name, code in recipes().items():
            exec(compile(code, f"README recipe {name}", "exec"), ns)
    finally:
        os.chdir(cwd)
    ns["folder"] = folder
    return ns


def test_readme_has_the_three_recipes():
    assert set(recipes()) == {"dit", "uvit", "pose"}


# ================================================================================ capture: known answers

@torch.no_grad()
def test_dit_capture_equals_embedders(ran):
    model, classes, src = ran["model"], ran["classes"], ran["source"]
    traj = src.trajectory
    ts = torch.linspace(999, 0, 10).round()
    assert traj.array.shape == (3, 10, 32) and src.info.class_names == ["class 1", "class 3", "class 7"]
    np.testing.assert_array_equal(traj.timesteps, ts.double().numpy())
    assert not traj.null.any() and traj.meta["cfg"] == "first-half"
    for k, t in enumerate(ts):
        c = (model.t_embedder(t.repeat(3)) + model.y_embedder.embedding_table(classes)).numpy()  # (3, d), no CFG batch
        np.testing.assert_allclose(traj.array[:, k], c, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(src.embeddings(t=k), c, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(src.embeddings(), traj.array[:, 0])  # default: step 0 = t0


@torch.no_grad()
def test_uvit_capture_is_time_plus_class_token(ran):
    uvit, labels, src = ran["uvit"], ran["labels"], ran["uvit_source"]
    assert src.trajectory.array.shape == (4, 8, 16)
    for k, t in enumerate(torch.linspace(1, 0, 8)):
        c = uvit.time_embed(t.repeat(4)[:, None]) + uvit.label_emb(labels)
        np.testing.assert_allclose(src.embeddings(t=k), c.numpy(), rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_pose_capture_is_encoder_plus_time(ran):
    m, poses, src = ran["pose_model"], ran["poses"], ran["pose_source"]
    for k, t in enumerate(torch.linspace(1, 0, 6)):
        c = m.pose_encoder(poses) + m.t_embed(t.repeat(5)[:, None])
        np.testing.assert_allclose(src.embeddings(t=k), c.numpy(), rtol=1e-5, atol=1e-6)
    assert src.class_names == [f"pose {i}" for i in range(5)]


class Recorder(torch.nn.Module):
    """The identity, so what it 'outputs' is exactly the batch it is given."""

    def forward(self, x):
        return x


@pytest.mark.parametrize("cfg,cond_half", [("first-half", "first"), ("second-half", "first"), ("both", "first"),
                                           ("both", "second"), ("none", "first")])
def test_cfg_halves_labelled(tmp_path, cfg, cond_half):
    rec = Recorder()
    cond, uncond = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[-1.0, -2.0], [-3.0, -4.0]])
    batch = torch.cat([uncond, cond]) if cfg == "second-half" or cond_half == "second" else torch.cat([cond, uncond])
    with dtviz.capture(rec, tmp_path / "h.traj.npz", labels=["a", "b"] if cfg != "none" else list("abcd"), cfg=cfg,
                       cond_half=cond_half, timestep=torch.tensor([5.0, 5.0, 5.0, 5.0])):
        for _ in range(2):
            rec(batch)
    traj = read_trajectory(str(tmp_path / "h.traj.npz"))
    got = dict(zip(traj.labels, traj.array[:, 1]))
    if cfg == "none":
        assert traj.labels == list("abcd") and not traj.null.any()
        return
    np.testing.assert_array_equal(got["a"], cond[0].numpy())
    np.testing.assert_array_equal(got["b"], cond[1].numpy())
    if cfg == "both":
        np.testing.assert_array_equal(got["a (null)"], uncond[0].numpy())
        assert traj.null.tolist() == [label.endswith("(null)") for label in traj.labels]
        src = dtviz.load(str(tmp_path / "h.traj.npz"))
        assert src.class_names == ["a", "b"] and "null" in src.info.family_note  # null rows never in the statistics
    else:
        assert traj.labels == ["a", "b"]
    np.testing.assert_array_equal(traj.timesteps, [5.0, 5.0])


def test_capture_refusals(tmp_path):
    rec = Recorder()
    with pytest.raises(DtvizInputError, match="even number"):
        with dtviz.capture(rec, cfg="first-half"):
            rec(torch.zeros(3, 2))
    with pytest.raises(DtvizInputError, match="select="):
        with dtviz.capture(rec):
            rec(torch.zeros(3, 2, 2))
    with pytest.raises(DtvizInputError, match="same number of steps"):
        with dtviz.capture(rec, tmp_path / "x.traj.npz", labels=lambda: state["names"]):
            state = {"names": ["a", "b"]}
            rec(torch.zeros(2, 2))
            state["names"] = ["a", "c"]
            rec(torch.zeros(2, 2))
    with pytest.raises(DtvizInputError, match="never called"):
        with dtviz.capture(rec, tmp_path / "y.traj.npz"):
            pass
    assert not os.path.exists(tmp_path / "x.traj.npz")
    assert not rec._forward_hooks and not rec._forward_pre_hooks


# ================================================================================ prune: column oracle

class CountingOracle(Oracle):
    """tests.test_pruning.Oracle (weight-zeroed copies), told the step by counting its own forwards."""

    def __init__(self, model, spec, mask, num_steps):
        super().__init__(model, spec, mask)
        self.calls, self.total = 0, num_steps

    def forward(self, x, t, y):
        self.on_step(self.calls, self.total)
        self.calls += 1
        return super().forward(x, t, y)


@torch.no_grad()
@pytest.mark.parametrize("schedule,steps", [("every", list(range(10))), ("first", [0]), ("last:3", [7, 8, 9])])
@pytest.mark.parametrize("mask_kind", ["global", "per-sample"])
@pytest.mark.parametrize("prune_null", [False, True])
def test_dit_prune_equals_zeroed_columns(ran, schedule, steps, mask_kind, prune_null):
    model, sample, src = ran["model"], ran["sample"], ran["source"]
    spec = PruneSpec(mode="tail", tau=0.5, mask=mask_kind, schedule=schedule, prune_null=prune_null)
    mask = reference_keep(src.embeddings().astype(np.float64).mean(0), spec) if mask_kind == "global" else None
    assert mask is None or 0 < (~mask).sum() < len(mask)
    with dtviz.prune(ran["adaln"], spec, what="input", mask=src if mask_kind == "global" else None, num_steps=10,
                     cfg="first-half") as pruner:
        hooked = sample(model)
    assert pruner.pruned_steps == steps
    expected = sample(CountingOracle(model, spec, mask, 10))
    assert torch.equal(hooked, expected)
    assert not torch.equal(hooked, sample(model))


@torch.no_grad()
def test_readme_dit_prune_result(ran):
    """The recipe's own pruned run (last:3, global from the trajectory's step 0) equals the oracle."""
    spec = PruneSpec(mode="tail", tau=0.5, schedule="last:3")
    mask = reference_keep(ran["source"].embeddings().astype(np.float64).mean(0), spec)
    assert torch.equal(ran["pruned"], ran["sample"](CountingOracle(ran["model"], spec, mask, 10)))
    assert ran["pruner"].pruned_steps == [7, 8, 9]


@torch.no_grad()
def test_pose_prune_per_sample_equals_zeroed_columns(ran):
    m, poses = ran["pose_model"], ran["poses"]
    spec = PruneSpec(mode="tail", tau=0.3, mask="per-sample", schedule="first")

    def oracle(x, t, pose):  # step 0 only: each row through a copy with its own columns zeroed
        if oracle.calls == 0:
            c = (m.pose_encoder(pose) + m.t_embed(t[:, None])).double().numpy()
            out = torch.empty_like(x)
            for r in range(len(x)):
                z = copy.deepcopy(m)
                for ada in z.ada:
                    ada[1].weight[:, torch.from_numpy(~reference_keep(c[r], spec))] = 0
                out[r] = z(x, t, pose)[r]
        else:
            out = m(x, t, pose)
        oracle.calls += 1
        return out

    oracle.calls = 0
    assert torch.equal(ran["pose_pruned"], ran["sample_pose"](oracle))
    assert not torch.equal(ran["pose_pruned"], ran["sample_pose"](m))


def test_prune_refusals(ran):
    with pytest.raises(DtvizInputError, match="num_steps"):
        with dtviz.prune(ran["adaln"], PruneSpec(tau=0.5, schedule="last:2"), what="input", mask=ran["source"]):
            pass
    with pytest.raises(DtvizInputError, match="keep-mask"):
        with dtviz.prune(ran["adaln"], PruneSpec(tau=0.5), what="input"):
            pass
    with pytest.raises(DtvizInputError, match="num_steps=3"):
        with dtviz.prune(ran["adaln"], PruneSpec(tau=0.5, mask="per-sample"), what="input", num_steps=3, cfg="first-half"):
            ran["sample"](ran["model"], steps=4)
    assert all(not m._forward_pre_hooks for m in ran["adaln"])


# ================================================================================ trajectory source, CLI, app

def test_trajectory_file_and_cli(ran, tmp_path, capsys):
    path = str(ran["folder"] / "dit.traj.npz")
    plain = str(tmp_path / "renamed.npz")  # detected by its member, whatever the name
    with open(path, "rb") as src, open(plain, "wb") as dst:
        dst.write(src.read())
    assert isinstance(dtviz.load(plain), TrajectorySource)
    np.save(tmp_path / "m.npy", np.random.default_rng(0).normal(size=(5, 7)))  # plain matrices keep working
    assert dtviz.load(str(tmp_path / "m.npy")).embeddings().shape == (5, 7)
    with pytest.raises(DtvizInputError, match="whole number in"):
        ran["source"].embeddings(t=10)
    with pytest.raises(DtvizInputError, match="part y\\+t"):
        ran["source"].embeddings(part="y")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "dtviz", "stats", path, "--step", "3", "--json"], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    from dtviz.analysis.stats import ConditionStats
    row = ConditionStats().fit(ran["source"].embeddings(t=3)).table_row()
    assert s["num_classes"] == 3 and s["step"] == 3 and s["t"] == 3
    assert s["npr"]["mean_vector"] == pytest.approx(row["npr"]["mean_vector"])
    from dtviz.cli.main import main

    assert main(["stats", path, "--step", "12"]) == 2  # in-process: one sentence, exit 2
    assert main(["stats", "builtin", "--step", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "whole number in [0, 9]" in err[0] and "--step reads a captured trajectory" in err[1]


def test_trajectory_budget_checked_before_reading(tmp_path, monkeypatch):
    from dtviz.sources import budgets

    Trajectory(np.zeros((4, 3, 8), np.float32), list("abcd"), np.arange(3.0), np.zeros(4, bool)).save(str(tmp_path / "b.traj.npz"))
    monkeypatch.setattr(budgets, "MAX_MATRIX_BYTES", 200)
    with pytest.raises(DtvizInputError, match="budget"):
        dtviz.load(str(tmp_path / "b.traj.npz"))


@pytest.mark.parametrize("members,message", [
    (dict(timesteps=np.array(["a", "b", "c"])), "numeric timesteps"),
    (dict(labels=np.array(["x", "y"])), "one label per row .* \\(4 rows\\), but found 2"),
    (dict(trajectory=np.zeros((4, 3)), timesteps=np.zeros(0)), "rows × steps × d"),
    (dict(trajectory=np.full((4, 3, 2), np.nan)), "NaN"),
])
def test_bad_trajectory_files_are_one_sentence(tmp_path, members, message):
    base = dict(trajectory=np.zeros((4, 3, 2), np.float32), labels=np.array(list("abcd")), timesteps=np.arange(3.0),
                null=np.zeros(4, bool))
    path = tmp_path / "bad.traj.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **{**base, **members})
    with pytest.raises(DtvizInputError, match=message):
        dtviz.load(str(path))


def test_dynamics_over_every_step(ran):
    from dtviz.analysis.dynamics import stats_over_t
    from dtviz.analysis.stats import ConditionStats

    src = ran["source"]
    series = stats_over_t(src, n=src.steps)
    assert series["t"].tolist() == list(range(10))
    for k in (0, 9):
        row = ConditionStats().fit(src.embeddings(t=k)).table_row()
        assert series["cosine_mean"][k] == pytest.approx(row["cosine"]["mean"])
        assert series["npr_mean_vector"][k] == pytest.approx(row["npr"]["mean_vector"])
        c_bar = src.embeddings(t=k).astype(np.float64).mean(0)
        a = np.abs(c_bar / (1 + np.exp(-c_bar)))  # SiLU, written out: what adaLN reads
        assert series["npr_silu_mean_vector"][k] == pytest.approx(a.sum() ** 2 / (a ** 2).sum() / a.size, rel=1e-6)


def test_app_on_a_trajectory_has_a_step_slider(tmp_path):
    """AppTest (as tests/test_app.py): the sidebar's Step slider replaces t, follows the URL key ``step``, and
    the pages render at that step; the Dynamics page plots every captured step."""
    pytest.importorskip("streamlit")
    import dtviz_app
    from tests.test_app import new_app, ok

    rng = np.random.default_rng(0)
    scale = np.r_[np.full(4, 2.0), np.full(28, 0.003)]  # 4 head dims, a tail below τ = 0.01
    shared = np.linspace(0, 3, 5)[None, :, None] * (scale > 1)  # a shared direction that grows: cosine rises over steps
    array = (rng.normal(size=(40, 5, 32)) * scale + shared).astype(np.float32)
    path = Trajectory(array, [f"pose {i}" for i in range(40)], np.linspace(1, 0, 5), np.zeros(40, bool),
                      {"what": "input", "module": "Sequential", "cfg": "none"}).save(str(tmp_path / "poses.traj.npz"))
    at = new_app(src=path, step=3)
    at.run()
    ok(at)
    slider = at.slider(key="step")
    assert slider.label == "Step" and slider.value == 3 and slider.max == 4
    assert not [s for s in at.slider if s.key == "t"]  # no timestep slider
    line = at.main.caption[0].value
    assert "step 3 of 5 (timestep 0.25)" in line, line
    assert at.query_params["step"] in ("3", ["3"])
    slider.set_value(0).run()
    ok(at)
    assert "step" not in at.query_params  # the default (t0) is left out of the link
    # the pages that read c (projection: t-SNE takes ~15 s here; blocks needs adaLN weights and says so)
    for module in [p[0] for p in dtviz_app.PAGES if p[0] not in ("dynamics", "projection", "blocks")] + ["dynamics"]:
        at.switch_page(dtviz_app.view_path(module)).run()
        ok(at)
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("over the sampling steps" in spec for spec in titles), "no per-step curves on the dynamics page"
