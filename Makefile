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

.PHONY: help install lock protos lint lint-py lint-protos lint-deploy deploy-tools format test test-fast dev bench bench-tools clean
.PHONY: clients web browser-tools
.PHONY: openapi lint-openapi system-tools

help:
	@echo "make dev      install and start the whole suite (embedded Redis + MongoDB)"
	@echo "make test     lint + all tests"
	@echo "make install  create .venv, install the hash-locked deps, generate stubs"
	@echo "make lock     re-resolve requirements/*.txt from pyproject.toml (needs PyPI)"
	@echo "make protos   regenerate Python stubs from protos/"
	@echo "make openapi  regenerate openapi.json (the HTTP contract) from the route table"
	@echo "make lint     ruff, mypy, buf lint + breaking, the HTTP API's breaking-change guard"
	@echo "make lint-deploy  compose/prometheus checks (also run by the tests)"
	@echo "make clients  build the TypeScript client (clients/typescript) from openapi.json"
	@echo "make web      build the web app (web/dist), served by the gateway at /app/"
	@echo "make browser-tools  install Debian's chromium for the browser test (as root)"
	@echo "make bench    run the benchmarks under bench/ (make bench-tools installs wrk, h2load)"

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

openapi: $(VENV)/.installed
	$(BIN)/python -m tools.openapi write

protos: $(VENV)/.installed
	$(BIN)/python -m tools.gen_protos

minequest/README: $(PROTOS) $(VENV)/.installed tools/gen_protos.py
	$(BIN)/python -m tools.gen_protos

$(BUF): package.json
	@if command -v npm >/dev/null; then npm install --silent --no-audit --no-fund && touch $(BUF); \
	 else echo "npm not found: skipping buf (install Node.js to lint the contracts)"; fi

lint: lint-py lint-protos lint-openapi

# The HTTP API's breaking-change guard, against the same base as buf breaking.
lint-openapi: install
	$(BIN)/python -m tools.openapi_breaking

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

# Debian's chromium for the browser test of the web app (tests/e2e/test_web_app.py
# drives it with playwright-core); without it that test says so and skips.
browser-tools:
	apt-get install -y --no-install-recommends chromium

# The TypeScript HTTP client (clients/typescript): types generated from
# openapi.json (openapi-typescript), built with tsc into dist/. npm ci runs
# again only when a package-lock.json changes.
CLIENT_TS := clients/typescript
WEB := web
NPM_CI = { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --silent --no-audit --no-fund; }

clients:
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ to build $(CLIENT_TS)"; exit 1; }
	cd $(CLIENT_TS) && $(NPM_CI) && npm run --silent generate && npm run --silent build

# The web app (web/, Vite) on that client, into web/dist: the gateway serves
# it at /app/. Without npm it says so and builds nothing (make dev goes on).
web:
	@if command -v npm >/dev/null; then \
	  $(MAKE) --no-print-directory clients && cd $(WEB) && $(NPM_CI) && npm run --silent build; \
	else echo "npm not found: the web app is not built, /app/ will say so (install Node.js 20+, then make web)"; fi

# Validators for compose.yaml and deploy/ (Debian/Ubuntu, as root): without
# them lint-deploy says so and skips. prometheus brings promtool, and
# prometheus-alertmanager brings amtool; both servers also run the alert drill
# (tests/e2e/test_ops_drill.py). Their packaged services are not started here.
deploy-tools:
	apt-get install -y --no-install-recommends docker-compose prometheus prometheus-alertmanager

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not e2e"

# The web app is built first when npm can (make web); when it cannot, the
# suite starts anyway and /app/ says how to build it.
dev: install
	@$(MAKE) --no-print-directory web || echo "make web failed: the web app is not built; /app/ says so (the rest starts anyway)"
	$(BIN)/python -m tools.dev

# Every benchmark, one after the other (never at the same time), each a
# module run with `python -m bench.<name>` (README, Benchmarks); about 12
# minutes. They need wrk (make bench-tools) and the bench extra.
bench: install
	$(PIP) install --require-hashes -r requirements/bench.txt
	$(BIN)/python -m bench.gateway_overhead
	$(BIN)/python -m bench.clicks
	$(BIN)/python -m bench.ghz --suite
	$(BIN)/python -m bench.wallet

# Every Debian package the tests and benchmarks use (as root): the deploy
# validators and alert drill, chromium for the browser test, wrk and h2load.
# CI runs it first (.ci/run); without these the tests that need them skip.
system-tools:
	apt-get update -qq
	$(MAKE) --no-print-directory deploy-tools browser-tools bench-tools

# The load generators the benchmarks drive (Debian/Ubuntu, as root): wrk for
# HTTP, h2load (nghttp2-client) for gRPC without ghz.
bench-tools:
	apt-get install -y --no-install-recommends wrk nghttp2-client

clean:
	rm -rf $(VENV) minequest node_modules .mypy_cache .ruff_cache .pytest_cache \
	  $(CLIENT_TS)/node_modules $(CLIENT_TS)/dist $(CLIENT_TS)/build-test $(CLIENT_TS)/src/generated \
	  $(WEB)/node_modules $(WEB)/dist $(WEB)/build-test
