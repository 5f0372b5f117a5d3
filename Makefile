# Quick start:  make repro   (set up .venv from the lock file, run the whole pipeline)
#               make test    (the test suite)
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.lock | cut -c1-12)
# Stage commands and DVC queue workers use the `python`/`dvc` first on PATH: the venv's.
export PATH := $(BIN):$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv repro test test-fast lint exps ui promote browser-deps lock clean-venv bench-accuracy bench

$(STAMP): requirements.lock
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing pinned dependencies from requirements.lock (first time: a few minutes)"
	@$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock \
		2> >(grep -v "^WARNING: Location" >&2)
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)

repro: venv
	dvc repro

# The browser test needs Debian's chromium: installed here by browser-deps (apt, root/sudo).
test: venv browser-deps
	pytest

test-fast: venv
	pytest -m "not slow"

lint: venv
	ruff check .
	mypy

# The whole pipeline on the saved ETH and BTC CSVs, price and log_return targets (~1 h on 2 cores).
bench-accuracy: venv
	python bench/accuracy.py

# Speed: train vs plain Keras, cold/no-op repro, start-up, backtest, peak RSS (~10 min).
bench: venv
	python bench/speed.py

# The MLflow UI on the project's store, on 127.0.0.1; prints (and, with a display, opens)
# the URL of the pipeline experiment's runs table.   PORT=5050 make ui   for another port.
# dvc exp show folds every column into `…` at 120 columns (it shows every params.yaml key and
# one hash column per dependency): show what differs, without the dependency hashes.
exps: venv
	dvc exp show --only-changed --drop 'Created|.*/|models'

ui: venv
	python -m stages.ui --port $${PORT:-5000}

# Point alias `champion` of <ticker>-lstm at the model a run trained (or at a version):
#   make promote RUN=<mlflow run id>     make promote VERSION=3
promote: venv
	@test -n "$(RUN)$(VERSION)" || { echo "usage: make promote RUN=<mlflow run id>  (or VERSION=<n>)" >&2; exit 2; }
	python -m stages.promote $(if $(RUN),--run $(RUN),--version $(VERSION))

# Debian's chromium for the browser test (tests/integration/test_browser.py); apt needs
# root or sudo. A no-op when chromium is already there.
browser-deps:
	@command -v chromium >/dev/null || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian's chromium (apt-get)"; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@chromium --version 2>/dev/null

# Re-pin after editing requirements.in (needs `uv`: pip install uv).
lock:
	uv pip compile requirements.in --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 -o requirements.lock

clean-venv:
	rm -rf $(VENV)
