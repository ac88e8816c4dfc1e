# Minequest — the verbs CI and the README use.
#   make dev    install everything and run the whole suite on embedded stores
#   make test   lint, then every test (unit, integration, end-to-end)
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROTOS := $(shell find protos -name '*.proto')
BUF := node_modules/.bin/buf
# Every dependency, transitive ones included, pinned with hashes (tools/lock.sh).
LOCK := requirements/dev.txt
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check

.PHONY: help install lock protos lint lint-py lint-protos lint-deploy deploy-tools format test test-fast dev bench clean

help:
	@echo "make dev      install and start the whole suite (embedded Redis + MongoDB)"
	@echo "make test     lint + all tests"
	@echo "make install  create .venv, install the hash-locked deps, generate stubs"
	@echo "make lock     re-resolve requirements/*.txt from pyproject.toml (needs PyPI)"
	@echo "make protos   regenerate Python stubs from protos/"
	@echo "make lint     ruff, mypy, buf lint + breaking"
	@echo "make lint-deploy  compose/prometheus checks (also run by the tests)"
	@echo "make bench    run the benchmarks under bench/"

install: $(VENV)/.installed minequest/README

# The lock is installed with --require-hashes: a file that is not the one
# locked is refused. The package itself goes in without its deps (the lock has
# them) and without build isolation, so its build backend is the locked one.
$(VENV)/.installed: pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11+ is required ($(PYTHON) is $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
	  { echo "cannot create a virtualenv: on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 1; }
	$(PIP) install --require-hashes -r $(LOCK)
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $@

lock: $(VENV)/.installed
	tools/lock.sh

protos: $(VENV)/.installed
	$(BIN)/python -m tools.gen_protos

minequest/README: $(PROTOS) $(VENV)/.installed tools/gen_protos.py
	$(BIN)/python -m tools.gen_protos

$(BUF): package.json
	@if command -v npm >/dev/null; then npm install --silent --no-audit --no-fund && touch $(BUF); \
	 else echo "npm not found: skipping buf (install Node.js to lint the contracts)"; fi

lint: lint-py lint-protos

lint-py: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

lint-protos: $(BUF)
	@if [ -x $(BUF) ]; then $(BUF) lint protos && tools/buf_breaking.sh; \
	 else echo "buf not installed: contract lint skipped"; fi

# The test suite runs this too (tests/unit/test_dev_deploy.py), so `make
# test` does not repeat it here; this verb is for checking deploy/ alone.
lint-deploy:
	tools/check_compose.sh

# Validators for compose.yaml and deploy/ (Debian/Ubuntu, as root): without
# them lint-deploy says so and skips.
deploy-tools:
	apt-get install -y --no-install-recommends docker-compose prometheus

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not e2e"

dev: install
	$(BIN)/python -m tools.dev

bench: install
	@ls bench/*.py >/dev/null 2>&1 || { echo "no benchmarks yet"; exit 0; }
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) minequest node_modules .mypy_cache .ruff_cache .pytest_cache
