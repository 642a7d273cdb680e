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

.PHONY: install demo demo-own-data demo-paper test lint pytest bench clean crds kubectl prometheus reproduce reproduce-full reproduce-matrix

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[trainer,dev]'
	@touch $@

# The product's search with a zoo agent against every baseline, about a minute (no pretraining).
demo: install
	$(BIN)/transfersearch run examples/demo.yaml --out runs/demo

# Your own data, piloted on scikit-learn's digits (1,797 8x8 images): the zoo agent's online
# search, local search and random search, 12 trainings each (width 16, 2 epochs, the images
# resized to 32x32 so the networks' reductions do not shrink them to 1x1 at once), one table.
# A fresh cache each time, so every training is paid (and timed) again.
demo-own-data: install
	$(BIN)/transfersearch datasets export digits --out runs/demo-own-data/digits.npz
	rm -rf runs/demo-own-data/cache
	$(BIN)/transfersearch search --dataset runs/demo-own-data/digits.npz --space micro \
	  --agent zoo --mode online --budget 12 --width 16 --epochs 2 --resolution 32 \
	  --compare local,random --cache runs/demo-own-data/cache

# The paper's protocol (pretrain, then fine-tune with free target queries): about 3 minutes.
demo-paper: install
	$(BIN)/transfersearch run examples/local-demo.yaml --out runs/local-demo --agents runs/agents

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: install kubectl prometheus
	$(BIN)/pytest

# The operator's process test drives it with kubectl; Debian ships it as kubernetes-client.
kubectl:
	@command -v kubectl >/dev/null || { [ "$$(id -u)" = 0 ] \
	  && apt-get update -qq && apt-get install -y -qq kubernetes-client >/dev/null; } \
	  || echo "kubectl is missing: install Debian's kubernetes-client"

# The alert rules are tested with promtool and the dashboard against a real Prometheus server.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; } \
	  || echo "prometheus/promtool are missing: install Debian's prometheus package"

# The CRD is generated from the pydantic models; a test fails when this is stale.
crds: install
	$(BIN)/python -m transfersearch_operator.crd > crds/transfersearch.io_transfersearches.yaml
	$(MAKE) chart-sync

# Helm templates can read only files inside the chart, so the chart keeps byte-identical
# copies of the CRD, the alert rules and the dashboard; tests/deploy/test_chart.py fails when a
# copy differs from its source.
.PHONY: chart-sync
CHART := charts/transfersearch
chart-sync:
	cp crds/transfersearch.io_transfersearches.yaml $(CHART)/crds/
	cp observability/prometheus-rules.yaml observability/grafana-dashboard.json $(CHART)/files/

test: lint pytest

bench: install
	$(BIN)/transfersearch bench env --space micro --task class_object
	$(BIN)/transfersearch bench env --space macro --task class_object
	$(BIN)/transfersearch bench learner --space micro --task class_scene --updates 1000
	$(BIN)/transfersearch bench learner --space macro --task class_scene --updates 1000
	$(BIN)/transfersearch bench metrics --space micro --task class_scene --updates 600 --rounds 3
	$(BIN)/transfersearch bench checkpoint --space micro --task class_scene
	$(BIN)/transfersearch bench search --space micro --task class_object --budget 100
	$(BIN)/transfersearch bench quality --space micro --source class_scene --target class_object
	$(BIN)/transfersearch bench training --widths 8,16,64 --epochs 2

# The studies. Both are resumable: rerun the same command after an interruption.
# make reproduce: the micro leave-one-task-out study (3 seeds, 5 searches per seed and budget)
# and the paper's protocol on its four tasks (3 seeds), about an hour on 2 cores (measured
# 2026-12-02: 57 min with WORKERS=2 after a 3 min install, 35 min of it the LOTO study).
# make reproduce-full WORKERS=N: both studies in both spaces with 5 seeds, the LOTO one with 10
# searches, single-source agents and the zoo's all-task agents (docs/results/), then the zoo.
WORKERS ?= $(shell nproc)
LOTO_FLAGS ?= --seeds 3 --budgets 25,50,100,200 --searches 5
LOTO_FULL_FLAGS ?= --seeds 5 --budgets 25,50,100,200 --searches 10 --source-searches 3 --all-tasks
REPRO_FLAGS ?= --seeds 3 --steps 1200 --honest-steps 400 --caps 100,300,1000 --searches 100
reproduce: install
	$(BIN)/transfersearch study loto --space micro $(LOTO_FLAGS) --workers $(WORKERS) \
	  --out runs/loto-micro
	$(BIN)/transfersearch study paper --space micro --seeds 3 --workers $(WORKERS) \
	  --out runs/paper-micro

# The earlier transfer matrix (docs/results/matrix-micro): the paper's protocol and capped training.
reproduce-matrix: install
	$(BIN)/transfersearch matrix --space micro --tasks class_object,class_scene,jigsaw,autoencoder \
	  $(REPRO_FLAGS) --workers $(WORKERS) --out runs/matrix-micro

reproduce-full: install
	for space in micro macro; do \
	  $(BIN)/transfersearch study loto --space $$space $(LOTO_FULL_FLAGS) --workers $(WORKERS) \
	    --out runs/loto-$$space || exit 1; \
	  $(BIN)/transfersearch study paper --space $$space --seeds 5 --workers $(WORKERS) \
	    --out runs/paper-$$space || exit 1; \
	done
	$(BIN)/transfersearch zoo build --study runs/loto-micro --study runs/loto-macro --out runs/zoo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
