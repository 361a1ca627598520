# The two commands a newcomer runs: `make demo` and `make test`. Each builds the
# virtual environment from constraints.txt the first time (about a minute).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-clock test-busy ui bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,demo,deploy]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bedrock-usage demo

ui: $(STAMP)
	$(BIN)/bedrock-usage ui

# Three pytest workers on two cores: most tests wait on processes of their own (measured
# in benchmarks/RESULTS.md, session 18: 8 min 57 s against 10 min 47 s with two).
TEST_WORKERS ?= 3

test: $(STAMP)
	$(BIN)/ruff check bedrock_usage bedrock_usage_tests benchmarks
	$(BIN)/pytest -n $(TEST_WORKERS) --durations=15

# What a developer runs between edits: everything but the end-to-end tests (marked e2e).
test-fast: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not e2e"

# The whole suite with the wall clock of every Python process it starts moved three years
# ahead, then ten months back (bedrock_usage_tests/clock/sitecustomize.py, time-machine;
# PYTHONPATH absolute, since the deployment's processes start in folders of their own).
# No test may depend on the day it runs.
test-clock: $(STAMP)
	PYTHONPATH=$(CURDIR)/bedrock_usage_tests/clock TEST_CLOCK_SHIFT_DAYS=1100 $(BIN)/pytest -n $(TEST_WORKERS) -p no:cacheprovider
	PYTHONPATH=$(CURDIR)/bedrock_usage_tests/clock TEST_CLOCK_SHIFT_DAYS=-300 $(BIN)/pytest -n $(TEST_WORKERS) -p no:cacheprovider

# The end-to-end tests while a CPU burner keeps every core busy (deadlines x3).
test-busy: $(STAMP)
	$(BIN)/python -m bedrock_usage_tests.busy_machine -- $(BIN)/pytest -n $(TEST_WORKERS) -m e2e -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/ingestion.py

clean:
	rm -rf $(VENV) .bedrock_usage
