# Two commands do all the set-up on a fresh machine (Python >= 3.11 on the PATH is all it needs):
#   make run   create .venv, install, generate the built-in data, train, register, then serve it
#   make test  create .venv, install, lint and run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run train serve evaluate monitor test lint bench mlflow-ui clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: train serve

train: setup
	@test -f data/leads.csv || $(BIN)/sal generate --rows 50000 --seed 7
	$(BIN)/sal train

serve: setup
	$(BIN)/sal serve --host 127.0.0.1 --port 8000

evaluate: setup
	$(BIN)/sal evaluate

monitor: setup
	$(BIN)/sal monitor

lint: setup
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/train_bench.py

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --port 5000

clean:
	rm -rf mlflow.db mlartifacts mlruns reports sal.db data/leads.csv data/rejects data/from-log .pytest_cache
