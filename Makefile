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

.PHONY: install demo test lint pytest bench clean crds kubectl prometheus reproduce reproduce-full

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

# The transfer study (issue 4): the 4-task micro matrix with 3 seeds, about an hour on 2 cores.
# Resumable: rerun the same command after an interruption. More: make reproduce-full WORKERS=16
WORKERS ?= $(shell nproc)
REPRO_FLAGS ?= --seeds 3 --steps 1200 --honest-steps 400 --caps 100,300,1000 --searches 100
reproduce: install
	$(BIN)/transfersearch matrix --space micro --tasks class_object,class_scene,jigsaw,autoencoder \
	  $(REPRO_FLAGS) --workers $(WORKERS) --out runs/matrix-micro

reproduce-full: install
	for space in micro macro; do \
	  $(BIN)/transfersearch matrix --space $$space \
	    --tasks class_object,class_scene,jigsaw,room_layout,segmentsemantic,normal,autoencoder \
	    --seeds 5 --steps 5000 --honest-steps 1000 --workers $(WORKERS) --out runs/matrix-full-$$space \
	    || exit 1; \
	done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
