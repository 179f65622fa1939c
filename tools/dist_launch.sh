#!/usr/bin/env bash
# Shared by dist_train.sh and dist_test.sh: torch's launcher over NPROC processes per node, like mmdet's scripts.
#   bash tools/dist_launch.sh NAME NPROC SCRIPT [script args]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT. CPU-only machines run NPROC processes over gloo.
# The interpreter is $PYTHON, else the repo's .venv, else python.
set -euo pipefail
NAME=$1
NPROC=$2
SCRIPT=$3
if ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
  echo "$NAME: error: GPUS must be a positive integer (processes per node), got '$NPROC'" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
PYTHONPATH="$ROOT":${PYTHONPATH:-} \
"$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" \
    --master_port="${PORT:-29500}" \
    "$ROOT/tools/$SCRIPT" "${@:4}"
