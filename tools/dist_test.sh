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
exec bash "$(dirname "$0")/dist_launch.sh" dist_test.sh "$3" test.py "$1" "$2" --launcher pytorch "${@:4}"
