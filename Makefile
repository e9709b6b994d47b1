# lambdastack — `make up` starts the local stack with demo data; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
LS := $(VENV)/bin/lambdastack
PYTEST_ARGS ?=
# `make test` spreads the suite over this many pytest-xdist workers, each on its own test stack
# (tests/conftest.py: the next LSTACK_TEST_SLOT) with whole modules as work units (tests/schedule.py)
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

.DEFAULT_GOAL := help
.PHONY: help venv jars up down status test test-unit test-integration test-chaos lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==26.3
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	@echo "compiling the feed's kernels (numba; cached under lambdastack/__pycache__)"
	$(PY) -c 'from lambdastack.candidate_features import warm; warm()'
	@touch $@

venv: $(VENV)/.installed ## create the virtualenv and install the pinned dependencies

jars: venv ## resolve Kafka and the Flink Kafka connector from Maven Central
	$(LS) stack fetch

up: jars ## start Kafka, Redis, load demo data, run the batch layer, start the speed job, the API and Prometheus
	$(LS) up

down: ## stop everything `make up` started
	@if [ -x $(LS) ]; then $(LS) down; else echo "nothing to stop (no virtualenv)"; fi

status: venv ## what runs where
	$(LS) stack status

test: jars ## install what is missing, start the services the tests need, run unit, integration and chaos tests
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-unit: venv ## unit tests only (no service)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: jars ## integration tests against real Kafka, Redis, Spark and Flink
	$(PY) -m pytest -m integration $(XDIST) $(PYTEST_ARGS)

test-chaos: jars ## the fault-injection tests (hostile clients, ...) against the real services
	$(PY) -m pytest -m chaos $(XDIST) $(PYTEST_ARGS)

MOVIELENS ?= ../shared/datasets/ml-latest-small
RESULTS := bench/results
.PHONY: bench
bench: jars ## Kafka + Redis up, then the batch, speed and serving benchmarks + the MovieLens replay -> bench/results/REPORT.md
	@rc=0; \
	$(LS) stack up || exit 1; \
	$(LS) bench batch --movielens $(MOVIELENS) --json $(RESULTS)/batch.json || rc=1; \
	$(LS) bench speed --seconds 20 --repeat 3 --json $(RESULTS)/speed.json || rc=1; \
	$(LS) bench serving --json $(RESULTS)/serving.json || rc=1; \
	$(LS) eval replay $(MOVIELENS) --split 0.8 --k 10 --json $(RESULTS)/eval.json || rc=1; \
	$(LS) report --results $(RESULTS) || rc=1; \
	exit $$rc

SOAK_MINUTES ?= 30
.PHONY: soak
soak: jars ## the whole stack for SOAK_MINUTES (30) at 1,000 events/s and 200 feeds/s -> bench/results/soak.json
	$(LS) bench soak --minutes $(SOAK_MINUTES) --json $(RESULTS)/soak.json

lint: venv ## ruff (lint and format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv ## apply ruff's formatting and fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean: down ## remove the state directory (data, logs, jars) and caches
	rm -rf .state .pytest_cache .mypy_cache .ruff_cache
