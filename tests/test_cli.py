"""The command line: stats --json keys and values, table formats, sample output layout, errors."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import dtviz
from dtviz.analysis import stats
from dtviz.cli.main import main
from tests.factories import family_state, save_checkpoint
from tests.cli_output import error_lines

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JSON_KEYS = {"family", "num_classes", "dim", "t", "part", "tau", "cosine", "pr", "npr", "s_tail", "head_dims", "variance"}


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_stats_json_matches_library(tmp_path, capsys):
    path = save_checkpoint(family_state("repa"), str(tmp_path / "repa.pt"), "train")
    out = run_json(capsys, "stats", path, "--tau", "0.1", "--json")
    assert JSON_KEYS <= out.keys()
    assert out["family"] == "repa" and out["t"] == 1.0 and out["part"] == "y+t" and out["tau"] == 0.1
    assert set(out["cosine"]) == {"mean", "min", "max"}
    for key in ("pr", "npr", "s_tail"):
        assert set(out[key]) == {"mean_vector", "per_class_mean"}
    assert set(out["variance"]) == {"mean", "top20_share"}
    E = dtviz.load(path).embeddings()
    assert out["pr"]["mean_vector"] == pytest.approx(stats.participation_ratio(E.mean(0)), rel=1e-6)
    assert out["npr"]["per_class_mean"] == pytest.approx(stats.participation_ratio(E).mean() / E.shape[1], rel=1e-6)
    assert out["head_dims"] == stats.head_dims(E.astype(np.float64).mean(0), 0.1).tolist()
    assert out["head_dims"] == sorted(out["head_dims"])
    assert out["s_tail"]["mean_vector"] == pytest.approx(1 - len(out["head_dims"]) / out["dim"])
    silu = out["head_through_silu"]  # the 8 largest |c̄_i|, SiLU(x) = x·σ(x) written out here
    c_bar = E.astype(np.float64).mean(0)
    top = np.argsort(-np.abs(c_bar), kind="stable")[:8]
    assert silu["dims"] == top.tolist() and silu["negative"] == int((c_bar[top] < 0).sum())
    assert silu["silu"] == pytest.approx((c_bar[top] / (1 + np.exp(-c_bar[top]))).tolist(), rel=1e-6)


def test_one_row_stats_are_strict_json_with_no_cosine(tmp_path, capsys):
    path = tmp_path / "one.csv"
    path.write_text("a,b\n1,2\n")
    assert main(["stats", str(path), "--json"]) == 0
    s = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert s["cosine"] == {"mean": None, "min": None, "max": None}
    assert s["npr"]["mean_vector"] == pytest.approx((1 + 2) ** 2 / (1 + 4) / 2)  # PR / d of (1, 2)
    assert main(["stats", str(path)]) == 0
    assert "none: it needs at least 2 conditions" in capsys.readouterr().out


def test_stats_options_t_part_family(tmp_path, capsys):
    path = save_checkpoint(family_state("dit"), str(tmp_path / "m.pt"))
    out = run_json(capsys, "stats", path, "--family", "sit", "--t", "0.5", "--part", "y", "--json")
    assert (out["family"], out["t"], out["part"]) == ("sit", 0.5, "y")
    human = main(["stats", path])
    assert human == 0 and "assumed DiT" in capsys.readouterr().out


def test_table_csv_and_json(tmp_path, capsys):
    a = save_checkpoint(family_state("dit", seed=1), str(tmp_path / "a.pt"))
    b = save_checkpoint(family_state("mdt", seed=2), str(tmp_path / "b.pt"))
    rows = run_json(capsys, "table", a, b, "--json")
    assert [r["family"] for r in rows] == ["dit", "mdt"]
    assert main(["table", a, b, "--csv"]) == 0
    parsed = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert float(parsed[1]["cosine_mean"]) == pytest.approx(rows[1]["cosine_mean"])
    assert main(["table", a, b]) == 0
    text = capsys.readouterr().out
    assert "nPR (mean vector)" in text and "Cosine sim." in text


def test_sample_writes_pngs_and_index(tmp_path, capsys):
    out = tmp_path / "samples"
    assert main(["sample", "builtin", "--classes", "3,17", "--per-class", "2", "--steps", "4", "--seed", "5", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "index.csv")))
    assert [r["class_id"] for r in rows] == ["3", "3", "17", "17"]
    names = dtviz.load("builtin").class_names
    assert rows[2]["class_name"] == names[17]
    assert all((out / r["file"]).is_file() for r in rows)
    from PIL import Image

    assert Image.open(out / rows[0]["file"]).size == (16, 16)


def test_sample_writes_an_upscaled_captioned_grid(tmp_path, capsys):
    """grid.png: every tile is its sample PNG enlarged by pixel repetition (×8 by default for 16 px,
    --scale otherwise), with the class name drawn under it; a bad --scale is one sentence."""
    from PIL import Image

    from dtviz.sampling.grid import _caption_lines, _font, sample_grid

    for scale, args in ((8, []), (3, ["--scale", "3"])):
        out = tmp_path / f"x{scale}"
        assert main(["sample", "builtin", "--classes", "3,17", "--per-class", "2", "--steps", "4", "--seed", "5",
                     "--out", str(out), *args]) == 0
        assert "grid.png" in capsys.readouterr().out
        rows = list(csv.DictReader(open(out / "index.csv")))
        assert "grid.png" not in [r["file"] for r in rows]  # index.csv lists the samples only
        grid = np.asarray(Image.open(out / "grid.png").convert("RGB"))
        gap, tile = max(2, scale), 16 * scale
        cols = 4  # 2 classes × 2 samples fit in one row
        for i, r in enumerate(rows):
            sample = np.asarray(Image.open(out / r["file"]).convert("RGB"))
            x = gap + i * (tile + gap)
            block = grid[gap:gap + tile, x:x + tile]
            assert np.array_equal(block, np.repeat(np.repeat(sample, scale, 0), scale, 1))  # nearest neighbour
            caption = grid[gap + tile + 1:, x:x + tile]
            assert (caption < 128).any()  # dark text under the tile
        assert grid.shape[1] == cols * (tile + gap) + gap
    assert main(["sample", "builtin", "--classes", "3", "--scale", "x", "--out", str(tmp_path / "bad")]) == 2  # argparse
    capsys.readouterr()
    assert main(["sample", "builtin", "--classes", "3", "--scale", "0", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "--scale must be a whole number >= 1; got 0." in err and len(error_lines(err)) == 1

    # a long name is cut to two lines that fit the tile, ending in an ellipsis
    from PIL import ImageDraw

    draw, font = ImageDraw.Draw(Image.new("RGB", (1, 1))), _font(12)
    lines = _caption_lines(draw, "LATIN CAPITAL LETTER A WITH CIRCUMFLEX AND ACUTE AND MORE WORDS", font, 128)
    assert len(lines) == 2 and lines[-1].endswith("…") and all(draw.textlength(s, font=font) <= 128 for s in lines)
    one = sample_grid(np.zeros((1, 16, 16, 3), np.uint8), [0], ["a"], scale=1)
    assert one.size[0] == 16 + 2 * 2  # scale 1: the tile at its own size


def test_sample_sampler_switch(tmp_path, capsys):
    from PIL import Image

    def first_png(sampler: str | None) -> np.ndarray:
        out = tmp_path / (sampler or "default")
        extra = ["--sampler", sampler] if sampler else []
        assert main(["sample", "builtin", "--classes", "3", "--steps", "4", "--seed", "5", "--out", str(out), *extra]) == 0
        return np.asarray(Image.open(next(out.glob("*.png"))))

    import dtviz
    from dtviz.sampling.generate import Generator

    names = Generator(dtviz.load("builtin")).sampler_names  # the shipped config.json's sampler first
    assert np.array_equal(first_png(None), first_png(names[0]))  # the built-in model's default
    assert not np.array_equal(first_png(None), first_png("sde"))
    assert main(["sample", "builtin", "--classes", "3", "--sampler", "ddpm", "--out", str(tmp_path / "x")]) == 2
    assert f"samples with {' or '.join(names)}; got 'ddpm'" in capsys.readouterr().err


def test_errors_exit_nonzero_with_one_sentence(tmp_path, capsys):
    assert main(["stats", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dtviz: error: expected") and "does not exist" in err and len(err.splitlines()) == 1
    assert main(["sample", "builtin", "--classes", "1,x", "--out", str(tmp_path / "o")]) == 2
    assert "comma-separated" in capsys.readouterr().err
    assert main(["stats", "builtin", "--t", "3"]) == 2
    assert "[0, 1]" in capsys.readouterr().err


def test_sample_refuses_to_write_into_checkpoint_folder(tmp_path, capsys):
    from tests.factories import randomized_dit, tiny_config
    from safetensors.torch import save_file

    folder = tmp_path / "model"
    folder.mkdir()
    cfg = tiny_config(num_classes=4, in_channels=1, learn_sigma=False)
    save_file({k: v.contiguous() for k, v in randomized_dit(cfg).state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"family": "sit", "model": cfg.to_dict(), "class_names": list("abcd")}))
    before = sorted(os.listdir(folder))
    assert main(["sample", str(folder), "--out", str(folder / "out"), "--steps", "2"]) == 2
    assert "never writes there" in capsys.readouterr().err
    assert sorted(os.listdir(folder)) == before


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "dtviz", "stats", "builtin", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["family"] == "sit"
