#!/usr/bin/env bash
# Installs what dtviz needs into the current Python. Idempotent; a torch you already have (e.g. a
# CUDA build) is kept, otherwise the CPU build is installed. `--browser` also installs Debian's
# Chromium + ChromeDriver for the browser test when they are missing (needs root / apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing torch (CPU build)"
  "$PY" -m pip install --quiet "torch==2.13.0" || "$PY" -m pip install --quiet "torch>=2.4"
fi
# Everything else: skipped when it is all importable already (a second `make run` starts at once).
if ! "$PY" -c "import streamlit, plotly, pandas, PIL, matplotlib, fontTools, sklearn, umap, diffusers, safetensors, pytest, selenium" >/dev/null 2>&1; then
  echo "setup: installing requirements.txt"
  "$PY" -m pip install --quiet -r requirements.txt
fi
if ! "$PY" -m pip show dtviz >/dev/null 2>&1; then
  # the `dtviz` command; without build isolation when setuptools is already there (no download)
  "$PY" -m pip install --quiet --no-deps --no-build-isolation -e . 2>/dev/null || "$PY" -m pip install --quiet --no-deps -e .
fi

if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "setup: installing chromium + chromium-driver for the browser test"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup: no /usr/bin/chromium and no root apt-get: the browser test will be skipped"
  fi
fi
