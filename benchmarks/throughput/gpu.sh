#!/bin/sh
# The GPU figures of benchmarks/RESULTS.md (history: benchmarks/results/gpu.md) in one run, on a machine
# with one CUDA GPU and a python3 that has torch, torchvision and pyarrow. The lake's own dependencies that
# such a machine may lack (deltalake, pydantic) can come as wheels in .whl/ (Python 3.12 wheels: see
# benchmarks/results/gpu.md).
#
#     sh benchmarks/throughput/gpu.sh [OUT_DIR]     (from the repository root)
#
# step at the seed's geometry (2048 px, input head /8, ResNet-50, 32 a GPU) and at the demo's (96 px, /2),
# each in the three memory layouts of model.with_layout; the reader on seed-size patches with 1, 2, 4 and
# 8 threads (and the host's memory copy rate, its ceiling), then with 4 and 8 at a cluster's shuffle buffer
# (256) and batch (32); embedding at 2048 px and at 96 px.
set -eu
out=${1:-.}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="lib:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision, pyarrow; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'torchvision', torchvision.__version__, 'pyarrow', pyarrow.__version__)"
nproc
python3 -c "import numpy as np, time; a = np.ones(2**31, np.uint8); b = a.copy(); t = [time.perf_counter(), np.copyto(b, a), time.perf_counter()][::2]; print('host memory copy GB/s', round(2 * a.nbytes / (t[1] - t[0]) / 1e9, 1))"
layouts="channels_last backbone contiguous"
python3 -m benchmarks.throughput.train --config conf/local.yaml --skip-reader --patch-px 2048 --head-downsample 8 --batch 32 \
  --steps 20 --layouts $layouts --workers 1 2 4 8 --seed-samples 512 | tee "$out/train_2048.json"
python3 -m benchmarks.throughput.train --config conf/local.yaml --skip-reader --patch-px 64 --batch 4 --steps 1 \
  --workers 4 8 --seed-samples 512 --seed-batch 32 --shuffle-buffer 256 | tee "$out/reader_cluster_settings.json"
python3 -m benchmarks.throughput.train --config conf/local.yaml --skip-reader --patch-px 96 --head-downsample 2 --batch 64 \
  --steps 50 --layouts $layouts --seed-px 0 | tee "$out/train_96.json"
python3 -m benchmarks.throughput.embed --patch-px 2048 --head-downsample 8 --batch 64 --repeats 10 | tee "$out/embed_2048.json"
python3 -m benchmarks.throughput.embed --patch-px 96 --head-downsample 2 --batch 1024 --repeats 20 | tee "$out/embed_96.json"
