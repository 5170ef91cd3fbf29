# aceorch developer targets. Every target is idempotent and fast when its work is already done:
# `make test` on a machine with the packages, the images and the venv spends seconds on setup.
#
#   make test    system + docker + postgres + images + venv + lint + swarm, then the whole pytest suite in two lanes
#                side by side (scripts/test-lanes.sh; CI: .ci/run)
#   make run     the service (`aceorch serve`); builds the images only if a Docker engine already answers
#   make clean   removes every managed engine container (`aceorch engines prune`) when a Docker engine answers
#   make lint    ruff, mypy --strict, import-linter
#   make chaos   the chaos-marked tests only
#   make bench   the benchmark (bench/run.sh)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.aceorch-installed
PYTEST_ARGS ?=

.PHONY: help venv system docker postgres images lint test run clean bench chaos swarm

help:
	@echo "targets: venv system docker postgres images lint test run clean bench chaos swarm"

# Create the venv if missing; reinstall only when pyproject.toml is newer than the stamp.
venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ ! -x $(BIN)/python ]; then echo "make: creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# Debian packages: docker.io, debootstrap, jq, chromium, lnav, faketime, postgresql (apt-get only when one is missing).
system:
	@scripts/ensure-system.sh
	@scripts/ensure-compose.sh >/dev/null

# A Docker engine that answers: an existing one is used as is; otherwise dockerd is started (.cache/dockerd.log).
docker: system
	@scripts/ensure-docker.sh

# aceorch/base:bookworm (debootstrap, offline), aceorch/engine-sim and aceorch/gluetun-sim (rebuilt on sim changes).
images: docker venv
	@scripts/build-images.sh
	@scripts/build-orchestrator-image.sh

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	@if [ -f .importlinter ]; then $(BIN)/lint-imports; fi

# PostgreSQL's server binaries (and, as root, the postgres user). The tests start a throwaway cluster from them
# on a free local port for the session and stop it afterwards (tests/pg_fixtures.py).
postgres: system
	@scripts/ensure-postgres.sh >/dev/null

# The swarm tests (tests/swarm) bring a 3-node lab swarm up with scripts/swarm-lab.sh and remove it at their end:
# dockerds in network namespaces, beside the host's engine and untouched by it. This step says whether a lab can
# run here (root, dockerd, nsenter, the images) and removes a lab left broken by an interrupted run.
swarm: docker images
	@scripts/swarm-lab.sh check

# Playwright's Python package comes with the venv; its browser is Debian's /usr/bin/chromium
# (never `playwright install`).
test: system docker postgres images venv lint swarm
	scripts/test-lanes.sh $(PYTEST_ARGS)

# Never installs or starts Docker: with no engine answering, aceorch runs (RUNTIME=auto picks the process runtime).
# With no TARGET_IMAGE in the environment or .env, `make run` is a demo on the bundled engine simulator, and its
# engines are removed when it stops (ENGINES_ON_EXIT=stop, unless the environment or .env sets it).
run: venv
	@if docker info >/dev/null 2>&1; then scripts/build-images.sh; \
	else echo "make run: no Docker engine answers; not building images"; fi
	@if [ -z "$${TARGET_IMAGE:-}" ] && ! grep -Eqs '^[[:space:]]*(export[[:space:]]+)?TARGET_IMAGE=[^[:space:]#]' .env; then \
		export TARGET_IMAGE=aceorch/engine-sim:latest ACEORCH_DEMO=1; \
		if [ -z "$${ENGINES_ON_EXIT:-}" ] && ! grep -Eqs '^[[:space:]]*(export[[:space:]]+)?ENGINES_ON_EXIT=[^[:space:]#]' .env; then \
			export ENGINES_ON_EXIT=stop; fi; fi; \
	exec $(BIN)/aceorch serve

# Engines left running by a stopped aceorch (ENGINES_ON_EXIT=keep): remove them. Without Docker there are none.
clean: venv
	@if docker info >/dev/null 2>&1; then $(BIN)/aceorch engines prune; \
	else echo "make clean: no Docker engine answers; no engine containers to remove"; fi

bench: venv
	@if [ -x bench/run.sh ]; then exec bench/run.sh; else exec $(BIN)/python -m bench; fi

chaos: system docker images venv
	$(BIN)/pytest -m chaos $(PYTEST_ARGS)
