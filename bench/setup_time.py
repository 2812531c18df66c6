"""How long `make setup` takes in a fresh clone of this checkout, per interpreter (docs/setup.md's table).

    python bench/setup_time.py                                   # /usr/bin/python3 and pyenv's newest 3.11, if present
    python bench/setup_time.py --python /usr/bin/python3 --python ~/.pyenv/versions/3.12.1/bin/python3

Each run: `git clone` of this checkout (HEAD) into a temporary folder, `make setup PYTHON=…` there with no venv or
conda env active, then `import dtviz, torch, streamlit` through the interpreter the Makefile picked. Writes
docs/setup-times.json; then `python scripts/docs_numbers.py` renders the table. pip's download cache is whatever
the machine has (the table says so), so a first install on a new machine also waits for the downloads.
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "setup-times.json")


def default_pythons() -> list[str]:
    found = [p for p in ["/usr/bin/python3"] if os.path.exists(p)]
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.11.*/bin/python3")))
    return found + pyenv[-1:]


def clean_env() -> dict:
    """No venv or conda env active (a fresh shell), so the Makefile decides where to install."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV",
                                                          "PYTHONPATH", "PYTHONHOME")}
    venv_bin = os.path.join(ROOT, ".venv", "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if os.path.abspath(p) != venv_bin)
    return env


def run_setup(python: str, env: dict) -> dict:
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"], capture_output=True,
                             text=True, env=env).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="dtviz-setup-") as tmp:
        clone = os.path.join(tmp, "dtviz")
        subprocess.run(["git", "clone", "-q", ROOT, clone], check=True, env=env)
        load = os.getloadavg()[0]
        start = time.perf_counter()
        done = subprocess.run(["make", "setup", f"PYTHON={python}"], cwd=clone, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        py = subprocess.run(["bash", "scripts/setup.sh", "--which"], cwd=clone, env=dict(env, PYTHON=python),
                            capture_output=True, text=True).stdout.strip()
        py = os.path.join(clone, py) if py and not os.path.isabs(py) else py  # ".venv/bin/python": the clone's
        check = subprocess.run([py or python, "-c", "import dtviz, torch, streamlit; print(torch.__version__)"], cwd=clone,
                               env=env, capture_output=True, text=True)
        return {"python": python, "version": version, "seconds": round(seconds, 1), "setup_ok": done.returncode == 0,
                "venv": bool(py) and py.startswith(os.path.join(clone, ".venv")),
                "torch": check.stdout.strip() if check.returncode == 0 else None, "imports_ok": check.returncode == 0,
                "load_at_start": round(load, 2),
                "tail": "" if done.returncode == 0 else (done.stdout + done.stderr).strip().splitlines()[-1:]}


def os_name() -> str:
    try:
        with open("/etc/os-release") as fh:
            fields = dict(line.rstrip().split("=", 1) for line in fh if "=" in line)
        return fields.get("PRETTY_NAME", "").strip('"') or platform.system()
    except OSError:
        return platform.system()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", action="append", help="an interpreter to start from (repeatable)")
    args = parser.parse_args()
    env = clean_env()
    rows = [run_setup(p, env) for p in (args.python or default_pythons())]
    cache = subprocess.run(["pip3", "cache", "dir"], capture_output=True, text=True, env=env).stdout.strip()
    data = {"date": datetime.date.today().isoformat(), "rows": rows,
            "machine": f"{os_name()}, {os.cpu_count()} cores",
            "pip_cache": bool(cache) and os.path.isdir(cache) and any(os.scandir(cache))}
    with open(OUT, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    for r in rows:
        print(f"{r['python']} ({r['version']}): {r['seconds']} s, venv {r['venv']}, torch {r['torch']}, ok {r['imports_ok']}")
    return 0 if all(r["setup_ok"] and r["imports_ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
