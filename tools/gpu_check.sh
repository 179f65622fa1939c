#!/usr/bin/env bash
# `make gpu-check`: the checks that need a CUDA GPU, in one command.
#   1. the tests marked `cuda` (tests/test_cuda.py: CUDA == CPU forward in fp32, fp16/bf16 autocast keeps the
#      fp32 windows, the latency/benchmark tools on CUDA, a training run under mmdet's fp16 with the SAA hook, a
#      1-process nccl group through torchpack);
#   2. the backbone benchmark on CUDA, fp32 and fp16 (672x672, batch 4: mmdet dense, ours dense, cfg1/2/3,
#      uniform 0.6), CUDA-synchronised, with the original's 500 warm-up + 500 timed forwards per model and its
#      trimmed mean, printed as one table (also written to work_dirs/gpu_check/benchmark.json).
# Without a CUDA GPU it says so in one line and exits 0. Knobs: PYTHON (.venv/bin/python), GPU_CHECK_OUT
# (work_dirs/gpu_check), GPU_CHECK_ARGS (extra benchmark arguments, e.g. "--num-warmup 50 --num-repeats 50").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
OUT="${GPU_CHECK_OUT:-work_dirs/gpu_check}"
if [ -x "$ROOT/.venv/bin/python" ]; then
  export PATH="$ROOT/.venv/bin:$PATH"  # torchpack and mpirun start `python` from the PATH
fi

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu-check: no CUDA GPU visible to PyTorch (torch.cuda.is_available() is False): nothing to check"
  exit 0
fi
GPU="$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)')"
echo "[gpu-check] $GPU"

echo "[gpu-check] 1/2: tests marked cuda"
"$PY" -m pytest -q -m cuda tests

echo "[gpu-check] 2/2: backbone benchmark on CUDA (fp32, fp16; 500 warm-up + 500 timed rounds, trimmed mean)"
mkdir -p "$OUT"
# shellcheck disable=SC2086
"$PY" tools/benchmark_backbone.py --device cuda --img_size 672 --batch-size 4 --columns eager-fp32,eager-fp16 \
  --num-warmup 500 --num-repeats 500 --stat trimmed-mean --json "$OUT/benchmark.json" ${GPU_CHECK_ARGS:-}
