#!/usr/bin/env bash
# Distributed training with torch's launcher, as mmdet's tools/dist_train.sh:
#   bash tools/dist_train.sh CONFIG GPUS [train.py args]
# GPUS processes per node (CPU-only machines: GPUS processes over gloo). Multi-node: NNODES, NODE_RANK,
# MASTER_ADDR, PORT. The interpreter is $PYTHON, else the repo's .venv, else python.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "dist_train.sh: error: usage: bash tools/dist_train.sh CONFIG GPUS [train.py args]" >&2
  exit 2
fi
exec bash "$(dirname "$0")/dist_launch.sh" dist_train.sh "$2" train.py "$1" --seed 0 --launcher pytorch "${@:3}"
