#!/usr/bin/env bash
# Installs what dtviz needs. Idempotent (a second run starts at once).
#
# Where: into the interpreter $PYTHON (default python3) when it is already a virtual environment or a
# conda env and not externally managed (PEP 668); otherwise into a project-local `.venv/` made from it
# (Debian/Ubuntu's own python3, pyenv, a system Python). A torch already importable in $PYTHON is kept:
# a CUDA build makes the venv see the base's packages (--system-site-packages) instead of installing a
# second torch. Without torch and without an NVIDIA GPU (no nvidia-smi), the CPU build is chosen
# explicitly (a CPU wheel from pip's find-links, else PyTorch's CPU index, else the default index).
#
#   scripts/setup.sh            install (prints the interpreter it uses in one line)
#   scripts/setup.sh --browser  also Debian's Chromium + ChromeDriver for the browser test (root apt-get)
#   scripts/setup.sh --which    print the interpreter the Makefile should run, install nothing
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
BASE="${PYTHON:-python3}"
VENV=.venv
TORCH_PIN="torch==2.13.0"
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"

# ---------------------------------------------------------------- which interpreter
# "venv" when $BASE should not be installed into: externally managed, or neither a venv nor conda env.
base_kind() {
  "$BASE" - <<'EOF'
import os, sys, sysconfig
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
is_venv = sys.prefix != sys.base_prefix
is_conda = os.path.isdir(os.path.join(sys.prefix, "conda-meta"))
print("venv" if managed or not (is_venv or is_conda) else "self")
EOF
}

if [ -x "$VENV/bin/python" ]; then
  PY="$VENV/bin/python"
elif [ "$(base_kind)" = "self" ]; then
  PY="$(command -v "$BASE")"
else
  PY="$VENV/bin/python"
fi
if [ "${1:-}" = "--which" ]; then echo "$PY"; exit 0; fi

if [ "$PY" = "$VENV/bin/python" ] && [ ! -x "$PY" ]; then
  # Keep a CUDA torch of the base: the venv then sees the base's site-packages (pip installs only
  # what is missing). Otherwise an isolated venv, so nothing lands in the base interpreter.
  if "$BASE" -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)" >/dev/null 2>&1; then
    echo "setup: $BASE is not a virtual environment; creating $VENV (sharing its CUDA torch: --system-site-packages)"
    "$BASE" -m venv --system-site-packages "$VENV"
  else
    echo "setup: $BASE is externally managed or not a virtual environment; creating and using $VENV"
    if ! "$BASE" -m venv "$VENV"; then
      echo "setup: '$BASE -m venv' failed; on Debian/Ubuntu install it with: apt-get install python3-venv" >&2
      rm -rf "$VENV"; exit 1
    fi
  fi
fi
echo "setup: using $PY"

# ---------------------------------------------------------------- torch
# A local CPU wheel among pip's find-links (this project's CI machines) is taken as is.
local_cpu_wheel() {
  "$PY" - <<'EOF'
import glob, os, subprocess, sys
links = os.environ.get("PIP_FIND_LINKS", "").split()
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
links += [l.split("=", 1)[1].strip("'\" ") for l in out.splitlines() if "find-links" in l.split("=", 1)[0]]
hits = [w for d in links if os.path.isdir(d) for w in glob.glob(os.path.join(d, "torch-*+cpu-*.whl"))]
sys.exit(0 if hits else 1)
EOF
}

if ! "$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found; installing torch from the default index (CUDA build)"
    "$PY" -m pip install "$TORCH_PIN" || "$PY" -m pip install "torch>=2.4"
  elif local_cpu_wheel; then
    echo "setup: no NVIDIA GPU (nvidia-smi absent); installing torch's CPU build from pip's find-links"
    "$PY" -m pip install "$TORCH_PIN"
  else
    echo "setup: no NVIDIA GPU (nvidia-smi absent); installing torch's CPU build from $TORCH_CPU_INDEX"
    "$PY" -m pip install "$TORCH_PIN" --index-url "$TORCH_CPU_INDEX" \
      || "$PY" -m pip install "torch>=2.4" --index-url "$TORCH_CPU_INDEX" \
      || { echo "setup: PyTorch's CPU index failed; installing torch from the default index"; "$PY" -m pip install "torch>=2.4"; }
  fi
fi

# ---------------------------------------------------------------- everything else
# (found, not imported: importing umap compiles numba code for many seconds)
if ! "$PY" -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))" \
     streamlit plotly pandas PIL matplotlib fontTools sklearn umap openTSNE diffusers transformers torchdiffeq \
     safetensors tqdm pytest selenium kaleido >/dev/null 2>&1; then
  echo "setup: installing requirements.txt"
  "$PY" -m pip install -r requirements.txt
fi
# torch-fidelity (dtviz sweep --metrics) without its dependencies: its Inception module needs only torch, and a
# plain install pulls a torchvision that may replace this torch with a CUDA build (dtviz.evaluation.inception loads the
# module without torchvision).
if ! "$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch_fidelity') is None)" >/dev/null 2>&1; then
  echo "setup: installing torch-fidelity (--no-deps)"
  "$PY" -m pip install --no-deps "torch-fidelity>=0.4"
fi
# the `dtviz` command, from this checkout (a dtviz installed elsewhere, e.g. another clone, is replaced)
if ! (cd / && "$PY" -c "import importlib.util as u, os, sys; s = u.find_spec('dtviz'); sys.exit(0 if s and os.path.dirname(os.path.dirname(os.path.abspath(s.origin))) == sys.argv[1] else 1)" "$ROOT") >/dev/null 2>&1 \
   || [ ! -x "$(dirname "$PY")/dtviz" ]; then
  # without build isolation when setuptools is already there (no download)
  "$PY" -m pip install --quiet --no-deps --no-build-isolation -e . 2>/dev/null || "$PY" -m pip install --quiet --no-deps -e .
fi

# ---------------------------------------------------------------- browser test
if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "setup: installing chromium + chromium-driver for the browser test"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup: no /usr/bin/chromium and no root apt-get: the browser test will be skipped"
  fi
fi
