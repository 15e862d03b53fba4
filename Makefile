# Two loops: `make test-unit` (seconds, no servers) and `make test` (the README's test command: installs
# everything, builds or reuses the stack binaries, runs unit, integration and end-to-end tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: install test test-unit test-integration stack-build demo bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

test-unit: install
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

# Builds the collector (ocb) and Jaeger (go install) into a cache outside the clone, installs prometheus and
# redis-server from Debian when missing. A second run rebuilds nothing.
stack-build: install
	$(BIN)/otel-llm stack build

test: install stack-build
	$(BIN)/pytest -q tests $(PYTEST_ARGS)

demo: install
	$(BIN)/otel-llm demo

bench: install
	$(BIN)/python bench/run_all.py

lint: install
	$(BIN)/ruff check otel_llm tests bench

clean:
	rm -rf $(VENV) build *.egg-info
