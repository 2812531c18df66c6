"""The command line's front (issue 21): help and argument errors before torch loads, no abbreviations, the nearest
flag named, ranges checked, jobs that say their size first, assumptions said by every command, a thread policy."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import dtviz
from dtviz.cli.main import main
from tests.cli_output import error_lines
from tests.factories import save_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args: list[str], **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dtviz", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_help_and_argument_errors_do_not_load_torch():
    code = ("import sys\nfrom dtviz.cli.main import parse\n"
            "for argv in (['--help'], ['sample', '--per-clas', '2', '--out', 'x'], ['stats', '--tau', '-1']):\n"
            "    try:\n        parse(argv)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules, 'streamlit' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "False False", done.stdout + done.stderr


@pytest.mark.parametrize("argv,wanted", [
    (["sample", "builtin", "--per-clas", "2", "--out", "x"], "unrecognized argument '--per-clas'; did you mean --per-class?"),
    (["stats", "builtin", "--jsn"], "unrecognized argument '--jsn'; did you mean --json?"),
    (["stats", "builtin", "--tau", "-1"], "argument --tau: expected a number ≥ 0, but got '-1'"),
    (["sample", "builtin", "--random", "0", "--out", "x"], "argument --random: expected a whole number ≥ 1, but got '0'"),
    (["claims", "builtin", "--samples", "x"], "argument --samples: expected a whole number ≥ 1, but got 'x'"),
    (["plot", "heatmp", "builtin", "--out", "x.png"], "argument VIEW: invalid choice: 'heatmp'"),
])
def test_bad_flags_get_one_sentence(argv, wanted, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert len(lines) == 1 and wanted in lines[0], err


def test_dry_run_says_the_size_and_writes_nothing(tmp_path):
    done = run(["sample", "builtin", "--random", "8", "--per-class", "2", "--out", str(tmp_path / "s"), "--dry-run"])
    assert done.returncode == 0, done.stderr
    line = next(l for l in done.stderr.splitlines() if l.startswith("dtviz: job:"))
    import dtviz
    from dtviz.sampling.generate import Generator

    gen = Generator(dtviz.load("builtin"))  # the shipped model's own default sampler (its config.json)
    evals = len(gen.sampler().timesteps())
    assert f"8 classes × 2 samples × 1 setting = 16 images, {gen.defaults['name']} {evals} evaluations; about" in line, line
    assert not (tmp_path / "s").exists()
    done = run(["sweep", "builtin", "--random", "4", "--mode", "head", "--k", "4,8", "--null-rows", "pruned,kept",
                "--out", str(tmp_path / "w"), "--dry-run"])
    assert done.returncode == 0, done.stderr
    line = next(l for l in done.stderr.splitlines() if l.startswith("dtviz: job:"))
    assert "4 classes × 1 sample × 5 settings = 20 images" in line, line  # baseline + 2 k × 2 null-row choices
    assert not (tmp_path / "w").exists()


def test_every_command_that_loads_a_source_says_its_assumptions(tmp_path):
    """A plain DiT state dict records neither its head count nor whether its last label row is the null row."""
    from tests.factories import randomized_dit, tiny_config

    state = randomized_dit(tiny_config(10, in_channels=1, learn_sigma=False)).state_dict()  # pixels: no VAE needed
    path = save_checkpoint(state, str(tmp_path / "ckpt" / "plain.pt"))
    for args in (["stats", path], ["sample", path, "--family", "dit", "--random", "2", "--out", str(tmp_path / "o"),
                                   "--dry-run"], ["claims", path, "--family", "dit", "--no-sampling"]):
        done = run(args)
        assert done.returncode == 0, done.stderr
        text = done.stdout + done.stderr
        assert "assumed" in text and "--num-heads" in text, (args, text)


def test_threads_flag_and_the_wait_policy(capsys):
    code = ("import os, sys\nfrom dtviz.cli.args import apply_threads\nimport dtviz.cli.main as m\n"
            "args = m.parse(['stats', 'builtin', '--threads', sys.argv[1]])\n"
            "n = apply_threads(args.threads)\nimport torch\n"
            "print(n, torch.get_num_threads(), os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", code, "1"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "1 1 PASSIVE", done.stdout + done.stderr
    # auto: one thread per core idle at start-up (how many are idle depends on what else runs now)
    done = subprocess.run([sys.executable, "-c", code, "auto"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    n, m, policy = done.stdout.split()
    assert n == m and 1 <= int(n) <= os.cpu_count() and policy == "PASSIVE", done.stdout + done.stderr
    assert main(["stats", "builtin", "--threads", "0"]) == 2
    assert "expected a whole number ≥ 1" in capsys.readouterr().err


def test_plot_knows_every_view_without_importing_plotly():
    from dtviz.cli.plot import VIEW_HELP
    from dtviz.plots.gallery import VIEWS

    assert tuple(VIEW_HELP) == VIEWS


@pytest.mark.parametrize("view", ["heatmap", "histogram", "profile", "variance", "dims-below", "projection", "blocks",
                                  "over-t", "training", "samples", "claims"])
def test_plot_writes_every_view(view, tmp_path, capsys):
    out = tmp_path / f"{view}.png"
    args = ["plot", view, "builtin", "--out", str(out)] + (["--classes", "0,1,2,3"] if view == "samples" else [])
    assert main(args) == 0, capsys.readouterr().err  # in-process: the same main() as `dtviz plot`
    written = [p for p in os.listdir(tmp_path) if p.endswith(".png")]
    assert written and all(os.path.getsize(tmp_path / p) > 1000 for p in written), written
    with open(tmp_path / written[0], "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_training_is_the_run_s_series(tmp_path, capsys):
    """The training view draws dynamics.snapshot_series of the run: the built-in's own snapshots by default, any
    folder with --run, and one sentence when the source ships none."""
    import numpy as np

    from dtviz.analysis.dynamics import snapshot_series
    from dtviz.plots.gallery import ViewData, view_figures
    from dtviz.sources.builtins import BUILTINS

    src = dtviz.load("builtin")
    items = view_figures("training", ViewData.of(src))
    assert [i["name"] for i in items] == ["cosine-over-training", "npr-over-training", "size-split-over-training"]
    series = snapshot_series(os.path.join(BUILTINS["builtin"].path, "snapshots"))
    shared = next(t for t in items[2]["figure"].data if t.name.startswith("‖ȳ‖²"))
    assert np.allclose(np.asarray(shared.y, dtype=float)[1:], series["y_shared_sq"][1:])  # step 0: 0, left out on log y
    assert np.isnan(np.asarray(shared.y, dtype=float)[0]) and series["y_shared_sq"][0] == 0
    run = tmp_path / "run"
    run.mkdir()
    for step in (0, 250):
        shutil.copy(os.path.join(BUILTINS["builtin"].path, "snapshots", f"step_{step:06d}.safetensors"), run)
    assert main(["plot", "training", "builtin-wide", "--run", str(run), "--out", str(tmp_path / "t.svg")]) == 0
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith(".svg")) == [
        "t-cosine-over-training.svg", "t-npr-over-training.svg", "t-size-split-over-training.svg"]
    matrix = tmp_path / "E.npy"
    np.save(matrix, np.ones((4, 3), np.float32))
    assert main(["plot", "training", str(matrix), "--out", str(tmp_path / "m.svg")]) == 2
    assert "needs a folder of the run's checkpoints (--run DIR); E.npy ships none" in capsys.readouterr().err


def test_plot_svg_and_pdf(tmp_path):
    for ext, magic in ((".svg", b"<"), (".pdf", b"%PDF")):
        for view in ("histogram", "samples"):
            out = tmp_path / f"{view}{ext}"
            assert main(["plot", view, "builtin", "--out", str(out), "--classes", "0,1"]) == 0
            with open(out, "rb") as fh:
                assert fh.read(64).lstrip().startswith(magic), (view, ext)


def test_a_render_that_does_not_finish_is_stopped_with_one_sentence():
    """kaleido can hang forever when its Chromium dies (plotly/Kaleido#134): render_static kills the worker's process
    group after its timeout and says so in one sentence, leaving no worker behind."""
    import subprocess

    import plotly.graph_objects as go

    from dtviz.errors import DtvizInputError
    from dtviz.plots.gallery import render_static

    with pytest.raises(DtvizInputError) as info:
        render_static(go.Figure(go.Bar(y=[1, 2])), "pdf", 300, 200, timeout=0.05)
    message = str(info.value)
    assert message.startswith("rendering the figure as PDF through kaleido and Chromium did not finish in 0.05 s")
    assert "\n" not in message
    left = subprocess.run(["pgrep", "-f", "dtviz.plots.render_worker pdf 300 200"], capture_output=True, text=True)
    assert left.stdout.strip() == ""
