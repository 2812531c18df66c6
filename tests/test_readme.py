"""The README is a front door: short, its generated numbers current, its links alive, and every command of its
first-hour walkthrough runs (in a fresh folder, as a user would paste it)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def readme() -> str:
    with open(README, encoding="utf-8") as fh:
        return fh.read()


def walkthrough() -> list[str]:
    block = re.search(r"<!-- walkthrough -->\n```bash\n(.*?)```", readme(), re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_fits_on_a_screen_and_links_exist():
    text = readme()
    assert len(text.splitlines()) <= 150
    for link in re.findall(r"\]\(((?:docs|assets)/[^)#]+)", text):
        assert os.path.exists(os.path.join(ROOT, link)), link
    for doc in os.listdir(os.path.join(ROOT, "docs")):
        if doc.endswith(".md"):
            assert f"docs/{doc}" in text, f"docs/{doc} is not linked from the README"


def test_generated_blocks_are_current():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "docs_numbers.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_walkthrough_commands(tmp_path):
    commands = walkthrough()
    assert len(commands) >= 6 and all(c.startswith("dtviz ") for c in commands)
    for command in commands:
        started = time.perf_counter()
        args = shlex.split(command)[1:]
        done = subprocess.run([sys.executable, "-m", "dtviz", *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600, env={**os.environ, "PYTHONPATH": ROOT})
        assert done.returncode == 0, (command, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, command
        print(f"{command}: {time.perf_counter() - started:.1f} s")
    for made in ("hist.png", "projection.svg", os.path.join("samples", "grid.png"), os.path.join("sweep", "table.csv"),
                 "claims.md"):
        assert os.path.getsize(tmp_path / made) > 0, made
    table = (tmp_path / "sweep" / "table.csv").read_text()
    assert "nullkept" in table and "head_k8_every" in table  # both null-row variants, as the command asks


def test_the_python_example_runs_and_every_top_level_name_resolves(tmp_path):
    """The README's library example, pasted as a user would, and each name of dtviz.__all__ (loaded lazily: a name
    whose module moved would otherwise fail only when first used)."""
    block = re.search(r"```python\n(.*?)```", readme(), re.S).group(1)
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stderr[-2000:]
    assert len([line for line in done.stdout.splitlines() if line.split(" ", 1)[0] in
                ("holds", "partly", "does")]) >= 8  # one line per statistics claim, each starting with its verdict
    import dtviz

    for name in dtviz.__all__:
        assert getattr(dtviz, name) is not None, name


def test_the_library_page_example_runs(tmp_path):
    """docs/library.md's example, verbatim, in a fresh folder (it writes the variance view's PNGs there)."""
    with open(os.path.join(ROOT, "docs", "library.md"), encoding="utf-8") as fh:
        block = re.search(r"```python\n(.*?)```", fh.read(), re.S).group(1)
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stderr[-2000:]
    assert any(name.endswith(".png") for name in os.listdir(tmp_path))


def test_the_dashboard_reference_states_the_code_s_constants():
    """docs/dashboard.md's numbers are the constants the pages use (a changed constant fails here, not silently)."""
    from dtviz.analysis.blocks import AVERAGED_MAX_ROWS
    from dtviz.analysis.tsne import OPENTSNE_FFT_FROM
    from dtviz_app.access import SWEEP_EVERY_S
    from dtviz_app.prompt_picker import URL_MAX_CHARS, URL_MAX_PROMPTS

    with open(os.path.join(ROOT, "docs", "dashboard.md"), encoding="utf-8") as fh:
        text = " ".join(fh.read().split())
    for stated in (f"averaged over at most {AVERAGED_MAX_ROWS} evenly spaced rows",
                   f"at most {URL_MAX_PROMPTS} prompts / {URL_MAX_CHARS} characters",
                   f"Barnes–Hut gradients below {OPENTSNE_FFT_FROM:,} points".replace(",", " "),
                   f"a sweep every {SWEEP_EVERY_S:g} s"):
        assert stated in text, stated


def test_the_walkthrough_s_claims_comment_counts_the_plan_s_runs():
    """"(N runs of 32 samples)": the number of sampling runs the scorecard's plan makes (baseline, tail and head
    with null rows pruned and kept, y only, random draws, first-step and last-K)."""
    from dtviz.evaluation.claim_sampling import SamplingPlan, plan_runs

    runs = plan_runs(SamplingPlan(classes=tuple(range(32))), tau=0.01, dim=512, steps=6)
    assert f"({len(runs)} runs of 32 samples)" in readme()
