# The two commands a newcomer runs: `make demo` and `make test`. Each builds the
# virtual environment from constraints.txt the first time (about a minute).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test ui bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,demo,deploy]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bedrock-usage demo

ui: $(STAMP)
	$(BIN)/bedrock-usage ui

test: $(STAMP)
	$(BIN)/ruff check bedrock_usage bedrock_usage_tests benchmarks
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/ingestion.py

clean:
	rm -rf $(VENV) .bedrock_usage
