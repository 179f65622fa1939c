#!/usr/bin/env bash
# Distributed testing with torch's launcher, as mmdet's tools/dist_test.sh:
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args, e.g. --eval bbox segm]
# GPUS processes per node (CPU-only machines: GPUS processes over gloo). Multi-node: NNODES, NODE_RANK,
# MASTER_ADDR, PORT. The interpreter is $PYTHON, else the repo's .venv, else python.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "dist_test.sh: error: usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
if ! [[ "$GPUS" =~ ^[1-9][0-9]*$ ]]; then
  echo "dist_test.sh: error: GPUS must be a positive integer (processes per node), got '$GPUS'" >&2
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
    "$(dirname "$0")/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch \
    "${@:4}"
