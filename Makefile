# Two commands do all set-up on a fresh machine:
#   make run    installs what is missing and launches the dashboard on the built-in model
#   make test   installs what is missing (Chromium too, for the browser test) and runs every test
# PYTHON is the interpreter to start from; PY the one that runs dtviz: PYTHON itself when it is a
# venv/conda env that is not externally managed (PEP 668), otherwise the project's .venv (scripts/setup.sh).
PYTHON ?= python3
PY = $(shell PYTHON=$(PYTHON) bash scripts/setup.sh --which)
HOST ?= 127.0.0.1
PORT ?= 8501

.PHONY: run test bench setup

setup:
	PYTHON=$(PYTHON) bash scripts/setup.sh

run: setup
	$(PY) -m dtviz serve --host $(HOST) --port $(PORT)

test:
	PYTHON=$(PYTHON) bash scripts/setup.sh --browser
	$(PY) -m pytest

bench: setup
	$(PY) bench/run.py
