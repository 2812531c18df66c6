"""``dtviz sweep`` end to end on tiny random SiT-convention model folders, under torchrun too, and the
direction of the paper's head/tail result on the trained built-in model."""
from __future__ import annotations

import csv
import filecmp
import json
import os

import numpy as np
import pytest

from dtviz.cli.main import main
from dtviz.pruning.spec import PruneSpec, global_mask
from dtviz.evaluation.sweep import TABLE_COLUMNS
from tests.test_pruning import save_tiny_folder
from tests.cli_output import error_lines
from torchrun import run_dtviz, why_a_rank_failed


@pytest.fixture(scope="module")
def glyph_folder(tmp_path_factory):
    """16×16 model that ships a (random) glyph classifier, like the built-in layout."""
    return save_tiny_folder(str(tmp_path_factory.mktemp("glyph") / "model"), input_size=16, patch=4, classifier=True, steps=3)


@pytest.fixture(scope="module")
def plain_folder(tmp_path_factory):
    return save_tiny_folder(str(tmp_path_factory.mktemp("plain") / "model"), seed=1, steps=3)


def read_table(out: str) -> list[dict]:
    with open(os.path.join(out, "table.csv"), newline="") as fh:
        return list(csv.DictReader(fh))


def sweep_args(folder: str, out: str, *extra: str) -> list[str]:
    return ["sweep", folder, "--device", "cpu", "--classes", "0,3,7", "--per-class", "2", "--seed", "1",
            "--out", out, *extra]


def test_sweep_end_to_end(glyph_folder, tmp_path, capsys):
    import dtviz

    out = str(tmp_path / "sweep")
    assert main(sweep_args(glyph_folder, out, "--tau", "0,0.3", "--schedule", "every,first,last:2")) == 0
    rows = read_table(out)
    assert set(TABLE_COLUMNS) <= set(rows[0]) and list(rows[0])[:2] == ["setting", "label"]
    assert [r["setting"] for r in rows] == ["baseline", "tail_tau0_every", "tail_tau0_first", "tail_tau0_last2",
                                            "tail_tau0.3_every", "tail_tau0.3_first", "tail_tau0.3_last2"]
    base = rows[0]
    assert base["mode"] == base["tau"] == base["schedule"] == "" and base["removed_dims"] == "0" and base["drift_mse"] == "0"
    source = dtviz.load(glyph_folder, device="cpu")
    removed = int((~global_mask(source, PruneSpec(tau=0.3))).sum())
    assert 0 < removed < source.dim
    for r in rows[1:]:
        # the CFG null rows are pruned too by default (as pruning c inside the forward does)
        assert r["mode"] == "tail" and r["mask"] == "global" and r["k"] == "" and r["prune_null"] == "true"
        if r["tau"] == "0":  # τ = 0 removes nothing: bit-identical samples
            assert (r["removed_dims"], r["drift_mse"], r["drift_psnr"]) == ("0", "0", "inf")
        else:
            assert r["tau"] == "0.3" and int(r["removed_dims"]) == removed
            assert float(r["removed_share"]) == pytest.approx(removed / source.dim, rel=1e-5)
            assert float(r["drift_mse"]) > 0
    for r in rows:  # the model ships a classifier: accuracy is measured for every row
        assert 0.0 <= float(r["class_accuracy"]) <= 1.0 and r["samples"] == "6"
    md = open(os.path.join(out, "table.md"), encoding="utf-8").read()
    assert "| Prune | Threshold τ | # Removed Dims |" in md and f"τ = 0.3 ($t_{{n-2,n}}$) | {removed}/{source.dim}" in md

    # Each setting folder is what `dtviz sample` writes; the baseline is byte-identical to it.
    sample_out = str(tmp_path / "sample")
    assert main(["sample", glyph_folder, "--device", "cpu", "--classes", "0,3,7", "--per-class", "2", "--seed", "1",
                 "--out", sample_out]) == 0
    for r in rows:  # the same files, less `dtviz sample`'s grid.png (sweep folders stay FID-tool clean)
        folder = os.path.join(out, r["setting"])
        assert sorted(os.listdir(folder)) == sorted(set(os.listdir(sample_out)) - {"grid.png"})
        assert filecmp.cmp(os.path.join(folder, "index.csv"), os.path.join(sample_out, "index.csv"), shallow=False)
    names = sorted(set(os.listdir(sample_out)) - {"grid.png"})
    _, mismatch, errors = filecmp.cmpfiles(os.path.join(out, "baseline"), sample_out, names, shallow=False)
    assert mismatch == errors == []
    _, mismatch, _ = filecmp.cmpfiles(os.path.join(out, "tail_tau0_every"), sample_out, names, shallow=False)
    assert mismatch == []
    assert "wrote 7 settings" in capsys.readouterr().out


def test_sweep_k_rows_per_sample_without_classifier(plain_folder, tmp_path):
    out = str(tmp_path / "k")
    assert main(sweep_args(plain_folder, out, "--mode", "head", "--k", "2,4", "--mask", "per-sample", "--null-rows",
                           "pruned,kept", "--sampler", "sde")) == 0
    rows = read_table(out)
    assert [r["setting"] for r in rows] == ["baseline", "head_k2_every_per-sample", "head_k2_every_per-sample_nullkept",
                                            "head_k4_every_per-sample", "head_k4_every_per-sample_nullkept"]
    for r, k, null in zip(rows[1:], ("2", "2", "4", "4"), ("true", "false") * 2):
        assert (r["k"], r["tau"], r["mode"], r["mask"], r["prune_null"]) == (k, "", "head", "per-sample", null)
        kept = " null-kept" if null == "false" else ""
        # a per-sample k removes exactly k dims of every row at every step: mean over the steps and at t0 alike
        assert r["removed_dims"] == r["removed_dims_t0"] == k and r["label"] == f"head k={k} every per-sample{kept}"
    assert all(r["class_accuracy"] == "" for r in rows)  # no classifier: left empty, never faked
    table_md = open(os.path.join(out, "table.md"), encoding="utf-8").read()
    assert "| — |" in table_md and " sde " in table_md


def test_sweep_refuses_bad_output_and_options(plain_folder, tmp_path, capsys):
    inside = os.path.join(plain_folder, "sweep")
    assert main(sweep_args(plain_folder, inside)) == 2
    assert "checkpoint's folder" in capsys.readouterr().err and not os.path.exists(inside)
    out = str(tmp_path / "x")
    for extra, message in ((["--tau", "0.1,abc"], "--tau expects"), (["--k", "2.5"], "--k expects"),
                           (["--schedule", "every,last:0"], "last:K"), (["--per-class", "0"], "--per-class"),
                           (["--classes", "0,99"], "class ids")):
        assert main(sweep_args(plain_folder, out, *extra)) == 2
        err = capsys.readouterr().err
        assert message in err and len(error_lines(err)) == 1
    assert main(sweep_args(plain_folder, out, "--tau", "0.1", "--k", "2")) == 2  # argparse: one of the two
    assert not os.path.exists(out)


def test_world_chunks_are_fixed_whatever_the_process_count():
    from dtviz.evaluation.sweep import World

    def chunks(world):
        return [c.tolist() for c in world.chunks(7, 2)]

    assert chunks(World()) == [[0, 1], [2, 3], [4, 5], [6]]
    assert chunks(World(0, 2)) == [[0, 1], [4, 5]] and chunks(World(1, 2)) == [[2, 3], [6]]
    assert chunks(World(3, 5)) == [[6]] and chunks(World(4, 5)) == []  # a rank may have nothing to do


def test_torchrun_two_processes_match_one(plain_folder, tmp_path):
    extra = ["--tau", "0.2", "--schedule", "every,last:1", "--mask", "per-sample", "--batch-size", "2"]
    one = str(tmp_path / "one")
    assert main(sweep_args(plain_folder, one, *extra)) == 0
    two = str(tmp_path / "two")
    proc = run_dtviz(sweep_args(plain_folder, two, *extra), timeout=180)
    assert proc.returncode == 0, why_a_rank_failed(proc.stderr)
    assert proc.stdout.count("wrote 3 settings") == 1  # only rank 0 writes
    assert open(os.path.join(one, "table.csv")).read() == open(os.path.join(two, "table.csv")).read()
    for setting in ("baseline", "tail_tau0.2_every_per-sample", "tail_tau0.2_last1_per-sample"):
        names = sorted(os.listdir(os.path.join(one, setting)))
        assert names == sorted(os.listdir(os.path.join(two, setting))) and len(names) == 7
        _, mismatch, errors = filecmp.cmpfiles(os.path.join(one, setting), os.path.join(two, setting), names, shallow=False)
        assert mismatch == errors == []


# ------------------------------------------------------------------------- one baseline, progress bar

def test_sweep_samples_the_baseline_once_and_shows_progress(glyph_folder, capsys):
    """τ = 0 under three schedules is one baseline run, not four: counted as forward passes of the real
    tiny model; their rows keep the samples sampling τ = 0 would give; a tqdm bar reports every step."""
    import dtviz
    from dtviz.sampling.generate import Generator, SampleSettings
    from dtviz.evaluation.sweep import prunes_nothing, run_sweep, sweep_specs

    generator = Generator(dtviz.load(glyph_folder, device="cpu"))
    settings = SampleSettings(seed=1, sampler="euler")  # fixed steps: the bar counts each of them
    labels = np.array([0, 3, 7, 7])
    calls = []
    handle = generator.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        steps = []
        generator.sample(labels[:2], settings, batch_size=2, on_step=lambda i, n: steps.append(n))
        per_run = len(calls)  # forward passes of one sampling run of one chunk
        calls.clear()
        specs = sweep_specs("tail", [0.0, 0.3], None, ["every", "first", "last:2"])
        assert [prunes_nothing(s) for s in specs] == [True] * 3 + [False] * 3
        results = run_sweep(generator, specs, labels, settings, batch_size=2)
    finally:
        handle.remove()
    assert per_run > 0 and len(calls) == 2 * (1 + 3) * per_run  # 2 chunks × (baseline + 3 pruned settings)

    # unchanged results: τ = 0 rows are what sampling with τ = 0 gives, bit for bit
    from dtviz.pruning.spec import PruneSpec
    from dtviz.sampling.generate import to_uint8

    sampled = to_uint8(generator.sample(labels, settings, prune=PruneSpec(tau=0.0, schedule="last:2"), batch_size=2))
    for r in results[:4]:
        assert np.array_equal(r.images, sampled) and not r.sample_mse.any()
    assert all(r.sample_mse.mean() > 0 for r in results[4:])
    err = capsys.readouterr().err
    assert "sweep (8 sampling runs)" in err and f"{8 * len(steps)}/{8 * steps[0]}" in err
    assert prunes_nothing(PruneSpec(mode="head", k=0)) and not prunes_nothing(PruneSpec(mode="head", tau=0.0))
