# sandboxd — the two commands are `make run` (set up everything, run an example job)
# and `make test` (lint, types, the whole suite against the real engine).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-16)

.PHONY: help setup venv engine images run test lint typecheck bench clean

help:
	@echo "make run    set up everything (venv, Docker engine, images) and run an example job"
	@echo "make test   ruff, mypy --strict and the whole test suite against the real engine"
	@echo "make lint | typecheck | images | bench | clean"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# A Docker engine (installed and started when none answers) and debootstrap.
engine:
	scripts/setup-host

# Base and language images, rebuilt only when their recipe's hash changed. Every
# language, or for local work python (the core suite's) and a SANDBOXD_LANGUAGES subset,
# whose other languages' fixture and hostile cases the suite then skips (CI builds all).
comma := ,
IMAGE_LANGS := $(if $(SANDBOXD_LANGUAGES),$(sort python $(subst $(comma), ,$(SANDBOXD_LANGUAGES))),)

images: venv engine
	$(BIN)/sandboxd images build $(IMAGE_LANGS)

setup: venv engine images

run: setup
	$(BIN)/sandboxd run examples/python/two-fer

lint: venv
	$(BIN)/ruff check sandboxd tests
	$(BIN)/ruff format --check sandboxd tests

typecheck: venv
	$(BIN)/mypy sandboxd

test: lint typecheck engine images
	$(BIN)/python -m pytest

# The goals' benches save their figures in bench/data/, which bench/plot.py draws.
bench: setup
	$(BIN)/python bench/warm_path.py
	$(BIN)/python bench/sqs_path.py --json bench/data/latency.json
	$(BIN)/python bench/sqs_calls.py --json bench/data/sqs_calls.json
	$(BIN)/python bench/throughput.py --rounds 3 --sweep 1,2,3,4 --json bench/data/throughput.json
	$(BIN)/python bench/rss.py --json bench/data/rss.json
	$(BIN)/python bench/reset.py
	$(BIN)/python bench/large_suite.py
	$(BIN)/python bench/languages.py --json bench/data/languages.json
	$(BIN)/python bench/plot.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
	@echo "images are kept; remove them with: docker rmi \$$(docker images -q 'sandboxd/*')"
