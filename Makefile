# Two commands matter on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: setup run test test-fast ui daemon lint typecheck format schema

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

run: setup
	$(PY) -m recomart_pipeline run

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

ui: setup
	mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/dagster dev

daemon: setup
	mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/dagster-daemon run

lint: setup typecheck
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy over recomart_pipeline ([tool.mypy] in pyproject.toml; strict on the core modules).
typecheck: setup
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

schema: setup
	$(PY) -m recomart_pipeline schema --output pipeline_config.schema.json
