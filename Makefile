# Two commands do all set-up on a fresh machine:
#   make run    installs what is missing and launches the dashboard on the built-in model
#   make test   installs what is missing (Chromium too, for the browser test) and runs every test
PYTHON ?= python3
PORT ?= 8501

.PHONY: run test bench setup

setup:
	PYTHON=$(PYTHON) bash scripts/setup.sh

run: setup
	$(PYTHON) -m streamlit run app.py --server.port $(PORT)

test:
	PYTHON=$(PYTHON) bash scripts/setup.sh --browser
	$(PYTHON) -m pytest

bench: setup
	$(PYTHON) bench/run.py
