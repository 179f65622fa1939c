#!/usr/bin/env bash
# Idempotent environment set-up for sparsevit: `.venv` (Python 3.11) in the repo root with torch, a locally
# built mmcv-full 1.7.2 (wheel cached outside the repo), mmdet 2.28.2, mmsegmentation 0.30.0, torchpack and mpi4py
# over Open MPI 4.
# Every step checks first and does nothing when already satisfied, so `make test` / `make demo` call it always.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY_BIN="${PYTHON:-python3.11}"
CACHE="${SPARSEVIT_CACHE:-$HOME/.cache/sparsevit}"
TORCH_VER=2.14.1
TV_VER=0.29.1
MMCV_VER=1.7.2
log() { echo "[setup] $*"; }
die() { echo "[setup] error: $*" >&2; exit 1; }

# 1. Open MPI 4 (torchpack dist-run needs mpirun; mpi4py needs mpicc).
if ! command -v mpirun >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Open MPI (openmpi-bin, libopenmpi-dev)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev >/dev/null
  else
    die "Open MPI 4 is missing: install it (e.g. 'sudo apt-get install openmpi-bin libopenmpi-dev') and rerun"
  fi
fi

# 2. The virtualenv.
if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PY_BIN" >/dev/null 2>&1 || PY_BIN=python3
  "$PY_BIN" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null \
    || die "Python 3.11 is required (set PYTHON=/path/to/python3.11)"
  log "creating $VENV"
  "$PY_BIN" -m venv "$VENV"
fi
PY="$VENV/bin/python"
# Pin torch for every install so no dependency resolution can swap it for another release.
PIN="$VENV/sparsevit-constraints.txt"
printf 'torch==%s\ntorchvision==%s\n' "$TORCH_VER" "$TV_VER" > "$PIN"
PIP=("$PY" -m pip install -q --disable-pip-version-check -c "$PIN")
has() { "$PY" - "$@" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, _, want = spec.partition('==')
    have = version(name)
    if want and have.split('+')[0] != want:
        sys.exit(1)
PYEOF
}

# 3. torch (CUDA build from PyPI on users' machines; the local copy here).
if ! has "torch==$TORCH_VER" "torchvision==$TV_VER"; then
  log "installing torch $TORCH_VER, torchvision $TV_VER"
  "${PIP[@]}" "torch==$TORCH_VER" "torchvision==$TV_VER"
fi

# 4. Build tools and pure-Python dependencies (torch 2.14 itself needs setuptools>=77; see step 5).
if ! has "numpy" "pycocotools" "torchpack==0.3.1" "mpi4py" "pytest" "matplotlib" "terminaltables" "ninja" \
    || ! "$PY" -c 'import numpy, setuptools, sys; sys.exit(numpy.__version__ >= "2" or int(setuptools.__version__.split(".")[0]) < 77)'; then
  log "installing build tools and dependencies"
  "${PIP[@]}" wheel ninja "numpy<2" "setuptools>=77.0.3" -r "$ROOT/requirements.txt"
fi

# 5. mmcv-full from the sdist (C++20 for torch >= 2.10 headers), cached by torch version and CUDA.
WITH_CUDA=cpu
if command -v nvcc >/dev/null 2>&1 && "$PY" -c 'import torch,sys; sys.exit(not torch.cuda.is_available())'; then
  WITH_CUDA="cu$("$PY" -c 'import torch; print(torch.version.cuda.replace(".", ""))')"
fi
KEY="mmcv_full-$MMCV_VER-torch$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')-$WITH_CUDA"
if ! has "mmcv-full==$MMCV_VER" || [ "$(cat "$VENV/.mmcv-build-key" 2>/dev/null)" != "$KEY" ] \
    || ! "$PY" -c 'import mmcv.ops' 2>/dev/null; then
  WHEEL_DIR="$CACHE/$KEY"
  if ! ls "$WHEEL_DIR"/mmcv_full-*.whl >/dev/null 2>&1; then
    log "building mmcv-full $MMCV_VER ($WITH_CUDA) from source: about 12 minutes on 2 CPU cores, once per machine"
    BUILD="$(mktemp -d)"
    # mmcv's setup.py imports pkg_resources (also when pip reads its metadata): use setuptools<70 while
    # downloading and building, then give torch back the setuptools>=77 it requires.
    trap '"$PY" -m pip install -q --disable-pip-version-check "setuptools>=77.0.3" >/dev/null 2>&1' EXIT
    "$PY" -m pip install -q --disable-pip-version-check --no-deps "setuptools<70"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: "mmcv-full==$MMCV_VER" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-full-"$MMCV_VER".tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-full-$MMCV_VER"
    sed -i -E 's/-std=c\+\+1[0-9x]/-std=c++20/g' "$SRC/setup.py"
    export MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}"
    [ "$WITH_CUDA" != cpu ] && export FORCE_CUDA=1
    mkdir -p "$WHEEL_DIR.tmp"
    (cd "$SRC" && "$PY" -m pip wheel -q --disable-pip-version-check --no-build-isolation --no-deps . -w "$WHEEL_DIR.tmp")
    "$PY" -m pip install -q --disable-pip-version-check "setuptools>=77.0.3"
    trap - EXIT
    rm -rf "$WHEEL_DIR" && mv "$WHEEL_DIR.tmp" "$WHEEL_DIR" && rm -rf "$BUILD"
  fi
  log "installing cached $(basename "$WHEEL_DIR"/mmcv_full-*.whl)"
  "${PIP[@]}" --no-deps --force-reinstall "$WHEEL_DIR"/mmcv_full-*.whl
  "${PIP[@]}" addict yapf==0.40.1 packaging pyyaml opencv-python-headless "numpy<2"
  echo "$KEY" > "$VENV/.mmcv-build-key"
fi

# 6. mmdet, mmsegmentation (pure Python; its MMCV_MAX is 1.8.0, so it runs on mmcv-full 1.7.2) and this package
#    (editable).
if ! has "mmdet==2.28.2"; then
  log "installing mmdet 2.28.2"
  "${PIP[@]}" "mmdet==2.28.2" "numpy<2"
fi
if ! has "mmsegmentation==0.30.0"; then
  log "installing mmsegmentation 0.30.0"
  "${PIP[@]}" "mmsegmentation==0.30.0" "numpy<2"
fi
if ! has "sparsevit"; then
  log "installing sparsevit (editable)"
  "${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"
fi

# 7. The optional deploy extra (pip install -e .[deploy]: ONNX export checked in onnxruntime), pinned as setup.py's
#    DEPLOY_REQUIRES and installed with numpy<2 (onnx/onnxruntime would otherwise pull numpy 2, which breaks mmcv 1.x).
#    SPARSEVIT_DEPLOY=0 skips it.
DEPLOY=(onnx==1.23.2 onnxruntime==1.32.0 onnxscript==0.7.2 onnx-ir==1.1.0 ml_dtypes==0.5.4)
if [ "${SPARSEVIT_DEPLOY:-1}" != 0 ] && ! has "${DEPLOY[@]}"; then
  log "installing the deploy extra: ${DEPLOY[*]}"
  "${PIP[@]}" "${DEPLOY[@]}" "numpy<2"
fi
"$PY" -c 'import numpy, sys; sys.exit(numpy.__version__ >= "2")' || die "numpy $("$PY" -c 'import numpy; print(numpy.__version__)') is installed: mmcv 1.x needs numpy<2 (pip install 'numpy<2')"
log "environment ready: $VENV"
