# Two commands matter on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

# The lock files pin every package for Python 3.11 on Linux x86_64 (what CI and `make run`
# use): requirements-dev.txt = runtime + the dev extra; requirements.txt = runtime only,
# constrained to the dev lock so `make run` gets exactly the versions the tests ran with.
# The existing lock is uv's preference: `make lock` changes only what pyproject.toml changed;
# `make lock LOCK_ARGS=--upgrade` (or `--upgrade-package NAME`) moves versions on.
UV ?= $(VENV)/bin/uv
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu
LOCK_ARGS ?=
define compile_locks
	$(UV) pip compile --quiet $(LOCK_ARGS) pyproject.toml --extra dev $(LOCK_TARGET) -o requirements-dev.txt
	$(UV) pip compile --quiet $(LOCK_ARGS) pyproject.toml -c requirements-dev.txt $(LOCK_TARGET) -o requirements.txt
endef

.PHONY: setup setup-dev run test test-fast ui daemon lint typecheck format schema lock check-lock

# Lean venv: the runtime lock, then the project itself without resolving anything again.
setup: $(VENV)/.runtime-installed
# Runtime + tests, linters, type checker and the lock tool.
setup-dev: $(VENV)/.dev-installed

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime-installed: requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

run: setup
	$(PY) -m recomart_pipeline run

test: setup-dev
	$(PY) -m pytest -n auto --dist worksteal

test-fast: setup-dev
	$(PY) -m pytest -m "not slow" -n auto

# The instance settings are versioned in .dagster_home/dagster.yaml; another DAGSTER_HOME
# gets a copy unless it has its own.
ui: setup
	mkdir -p $(DAGSTER_HOME)
	test -e $(DAGSTER_HOME)/dagster.yaml || cp .dagster_home/dagster.yaml $(DAGSTER_HOME)/
	$(VENV)/bin/dagster dev

daemon: setup
	mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/dagster-daemon run

lint: setup-dev typecheck
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy over recomart_pipeline ([tool.mypy] in pyproject.toml; strict on the core modules).
typecheck: setup-dev
	$(VENV)/bin/mypy

format: setup-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

schema: setup
	$(PY) -m recomart_pipeline schema --output pipeline_config.schema.json

# Re-resolve the lock files after editing pyproject.toml's dependencies (commit both).
lock: setup-dev
	$(compile_locks)

# CI: the committed locks are what `make lock` gives now. Compiled in a scratch folder with
# copies of pyproject.toml and the locks (the same relative paths, so the same header and
# annotations), leaving the work tree alone.
check-lock: setup-dev
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	cp pyproject.toml requirements.txt requirements-dev.txt "$$scratch"/ && \
	( cd "$$scratch" && $(MAKE) --no-print-directory -f $(CURDIR)/Makefile \
	    UV=$(abspath $(UV)) LOCK_ARGS= compile-locks-here ) && \
	if diff -u requirements-dev.txt "$$scratch"/requirements-dev.txt && \
	   diff -u requirements.txt "$$scratch"/requirements.txt; then \
	  echo "lock files are current"; \
	else \
	  echo "requirements.txt / requirements-dev.txt do not match pyproject.toml:" \
	       "run 'make lock' and commit both files" >&2; exit 1; \
	fi

# Internal: compile_locks in the current directory (used by check-lock).
.PHONY: compile-locks-here
compile-locks-here:
	$(compile_locks)
