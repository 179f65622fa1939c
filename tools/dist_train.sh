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
CONFIG=$1
GPUS=$2
if ! [[ "$GPUS" =~ ^[1-9][0-9]*$ ]]; then
  echo "dist_train.sh: error: GPUS must be a positive integer (processes per node), got '$GPUS'" >&2
  exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi

PYTHONPATH="$ROOT":${PYTHONPATH:-} \
"$PYTHON" -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --seed 0 \
    --launcher pytorch "${@:3}"
