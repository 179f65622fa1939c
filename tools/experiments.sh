#!/usr/bin/env bash
# `make experiments`: SparseViT's comparisons at matched latency on the small-objects synthetic dataset
# (sparsity vs resolution, sparsity vs width, L2 vs random windows, non-uniform vs uniform, with vs without SAA;
# bootstrap intervals over the val images; the kept-window analysis), one command on a laptop-class CPU (the
# estimate, printed first, is about 61 minutes on 2 cores; measured 48 on 2026-12-02). The pipeline is tools/experiments.py (`run`); this
# wrapper sets up the environment as tools/demo.sh does and passes its arguments on (e.g. `bash
# tools/experiments.sh --dry-run`).
#
# Outputs under work_dirs/experiments/: results.md, results.json, tradeoff.png, plus each step's work dir, logs/
# and done/ (reuse markers). EXPERIMENTS_STYLE=flat uses the data of earlier runs (flat shapes). Knobs: EXPERIMENTS_* (see `python tools/experiments.py run --help`);
# EXPERIMENTS_FORCE=1 redoes everything.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -x "$ROOT/.venv/bin/python" ]; then
  export PATH="$ROOT/.venv/bin:$PATH"  # torchpack/mpirun start `python` from the PATH
fi
PY="${PYTHON:-python}"
command -v "$PY" >/dev/null 2>&1 || { echo "[experiments] error: no python: run 'make experiments' (it creates .venv) or set PYTHON" >&2; exit 2; }
"$PY" -c 'import sparsevit, mmdet, mmcv.ops' 2>/dev/null \
  || { echo "[experiments] error: the environment is not ready (import sparsevit, mmdet, mmcv.ops failed): run 'bash tools/setup_env.sh'" >&2; exit 2; }
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # mpirun (torchpack dist-run) as root
fi
export PYTHON="$(command -v "$PY")"
exec "$PY" tools/experiments.py run "$@"
