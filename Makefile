# Two commands do all the set-up on a fresh machine (python3 >= 3.11, make, git):
#   make run    serve the API on http://127.0.0.1:8000 (embedded PostgreSQL, migrated)
#   make test   the whole test suite against a real PostgreSQL
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python

# uv installs exactly what uv.lock pins, with the machine's own python3.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
# Precompile the venv: every test and tool process then starts without compiling.
export UV_COMPILE_BYTECODE := 1

.DEFAULT_GOAL := help
.PHONY: help install run gateway test bench lint format

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is required (found: $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(VENV)/.synced ## create .venv from the lock file

run: install ## serve the API (embedded PostgreSQL unless DATABASE_URL is set)
	$(PY) -m lambda_app serve

gateway: install ## serve through the real Lambda handler (API Gateway 2.0 events)
	$(PY) -m lambda_app serve --lambda

# Node.js runs the CDK's jsii runtime (the infrastructure tests) and the CDK CLI.
.PHONY: check-node synth
check-node:
	@command -v node >/dev/null || { echo "Node.js is required (the AWS CDK runs on it): install Node.js 20 or newer, e.g. https://nodejs.org or 'apt-get install nodejs npm'"; exit 1; }

# The CDK CLI pinned by package-lock.json (npx then uses it, offline).
node_modules/.installed: package-lock.json | check-node
	npm ci --no-audit --no-fund
	@touch $@

STAGE ?= dev
synth: install node_modules/.installed ## synthesize the CDK app (hermetic: no AWS credentials needed)
	npx cdk synth -c stage=$(STAGE)

test: install check-node ## run the whole test suite
	$(PY) -m pytest

bench: install ## cold start, warm latency, memory and bundle size (writes benchmarks/results/latest.json)
	$(PY) -m benchmarks

lint: install ## ruff and mypy
	$(VENV)/bin/ruff check lambda_app infra_cdk migrations tests
	$(VENV)/bin/ruff format --check lambda_app infra_cdk migrations tests
	$(VENV)/bin/mypy

format: install ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix lambda_app infra_cdk migrations tests
	$(VENV)/bin/ruff format lambda_app infra_cdk migrations tests
