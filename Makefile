# Two loops: `make test-unit` (seconds, no servers) and `make test` (the README's test command: installs
# everything, builds or reuses the stack binaries, runs unit, integration and end-to-end tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
# Our Go modules under collector/: the collector components (collector/<component>/go.mod) and the Kubernetes
# manifests' offline checker (collector/kubernetes/validate/go.mod).
GO_MODULES := $(patsubst %/go.mod,%,$(wildcard collector/*/go.mod collector/*/*/go.mod))

.PHONY: install test test-unit test-go test-integration stack-build demo bench lint generate clean

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

# go vet and go test for each Go module under collector/; go.mod is never rewritten (-mod=readonly), and the Go
# build cache (~/.cache/go-build) stays warm between runs, so a second run takes seconds.
test-go:
	@for module in $(GO_MODULES); do \
		echo "go vet + go test: $$module"; \
		(cd $$module && GOFLAGS=-mod=readonly $(GO) vet ./... && GOFLAGS=-mod=readonly $(GO) test ./...) || exit 1; \
	done

test: install stack-build test-go
	$(BIN)/pytest -q tests $(PYTEST_ARGS)

demo: install
	$(BIN)/otel-llm demo

bench: install
	$(BIN)/python bench/run_all.py

# Every generated file (collector config blocks, rules.json, the dashboard, the Kubernetes ConfigMap), in order:
# the ConfigMap copies the collector configs the first two rewrite. Each has `--check`; a unit test fails on drift.
GENERATORS := otel_llm.ottl otel_llm.sampling otel_llm.semconv_export otel_llm.dashboard otel_llm.stack.kubernetes

generate: install
	@for module in $(GENERATORS); do $(BIN)/python -m $$module --write || exit 1; done

lint: install
	$(BIN)/ruff check otel_llm tests bench

clean:
	rm -rf $(VENV) build *.egg-info
