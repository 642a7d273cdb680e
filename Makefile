# TransferSearch: `make demo` runs the main job, `make test` the whole test suite,
# `make bench` the performance measurements. Each creates .venv and installs
# what it needs first, so they work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The benchmark tables: $TRANSFERSEARCH_DATA if set, else the shared copy beside the project.
SHARED_DATA := $(abspath ../shared/data/transnas-bench-101)
ifeq ($(strip $(TRANSFERSEARCH_DATA)),)
  ifneq ($(wildcard $(SHARED_DATA)/SHA256SUMS),)
    export TRANSFERSEARCH_DATA := $(SHARED_DATA)
  endif
endif

.PHONY: install demo test lint pytest bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[trainer,dev]'
	@touch $@

demo: install
	$(BIN)/transfersearch run examples/local-demo.yaml --out runs/local-demo --agents runs/agents

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: lint pytest

bench: install
	$(BIN)/transfersearch bench env --space micro --task class_object
	$(BIN)/transfersearch bench env --space macro --task class_object
	$(BIN)/transfersearch bench learner --space micro --task class_scene --updates 1000

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
