#!/usr/bin/env bash
# The whole SparseViT pipeline on the embedded synthetic shapes dataset (`make demo` calls this after setting up
# the environment): synthetic data -> dense training -> Sparsity-Aware Adaptation -> which windows L2 selection
# keeps (tools/analyze_windows.py on the dense and the SAA weights) -> latency-constrained evolutionary search ->
# finetune of the found configuration -> test (the sparse model in fp32 and in bf16, and fp32 vs bf16 kept windows
# with tools/check_precision.py), then the README-style table (config, latency vs mmdet's Swin and vs our dense
# backbone, bbox mAP, mask mAP), the bf16 mAP next to fp32, the kept-window tables and the picture of the kept
# windows. About 20 minutes on 2 CPU cores.
#
# DEMO_TASK=seg (`make demo-seg`): the same pipeline for semantic segmentation (mmseg 0.30) on the synthetic
# semantic-segmentation data (`make_synthetic_data.py --task seg`, 256x512 images, data/sparsevit_demo_seg): dense
# UperNet with the narrow Swin -> SAA -> search (mIoU x100) -> finetune -> test with --eval mIoU (fp32 and bf16) ->
# latencies of the backbone (batch 4) and of the whole segmentor (batch 1, as tools/test.py runs it) at the data's
# 256x512, interleaved; the report gives mIoU and mAcc (no targets), the segmentor's latency and the backbone's
# share, and the picture the predicted label map beside the kept windows; under work_dirs/demo_seg/. The kept-window
# analysis and the fp32/bf16 window check work on COCO instance annotations and detectors: skipped (logged). The
# search times the data's size: 256x512, batch 4. About 20 minutes on 2 CPU cores.
#
# Everything goes under work_dirs/demo/ in mmdet's layout (one work dir per config: logs, checkpoints,
# eval_*.json; the sparse model's bf16 evaluation in its bf16/), plus latency/*.json, search/, precision_bf16.json,
# kept_windows_{dense,saa}.{json,md}, sparsity.png, results.md, results.json and logs/ (each step's console output). A step whose outputs exist is
# skipped; DEMO_FORCE=1 (or removing work_dirs/demo) redoes all.
#
# Environment knobs: DEMO_TASK (det or seg; det), DEMO_DIR (work_dirs/demo; seg: work_dirs/demo_seg), DEMO_DATA
# (data/sparsevit_demo; seg: data/sparsevit_demo_seg), DEMO_STYLE (scene: textured
# objects on smooth backgrounds with distractors, the image statistics L2 window selection presumes, tested as an
# image statistic; flat: flat-filled shapes on a noisy background, the data of the demos before; the dense mAP target
# 0.5 was set on flat data, scene data's dense mAP is reported without one: see the README's demo section),
# DEMO_NP (2: search processes),
# DEMO_SEED (0), DEMO_MAX_FRAC / DEMO_MIN_FRAC (0.85 / 0.6: the search's latency band as fractions of the dense
# SparseViT backbone's latency as the search itself predicts it: `--max 0.85x --min 0.6x`, so a change of machine
# speed before or during the search cannot move the band off the search space), DEMO_LATENCY_ROUNDS (3:
# interleaved measurements per config, median reported), PYTHON (.venv/bin/python). Smaller runs (a smoke test):
# DEMO_NUM_TRAIN / DEMO_NUM_VAL (the generator's image counts; seg 200 / 50), DEMO_SEARCH_ITERS (40),
# DEMO_SEARCH_IMAGES (det 50, seg 40), and for seg DEMO_SEG_SIZE ("256 512": the images' height and width; the
# configs' pipelines, the latency input and the search's side follow it) and DEMO_SEG_ITERS (the configs' 300:
# dense iterations; SAA and finetune a third of them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -x "$ROOT/.venv/bin/python" ]; then
  export PATH="$ROOT/.venv/bin:$PATH"  # torchpack/mpirun start `python` from the PATH
fi
PY="${PYTHON:-python}"
TASK="${DEMO_TASK:-det}"
NP="${DEMO_NP:-2}"
SEED="${DEMO_SEED:-0}"
STYLE="${DEMO_STYLE:-scene}"
MAX_FRAC="${DEMO_MAX_FRAC:-0.85}"
MIN_FRAC="${DEMO_MIN_FRAC:-0.6}"
FORCE="${DEMO_FORCE:-0}"
ROUNDS="${DEMO_LATENCY_ROUNDS:-3}"
SEARCH_ITERS="${DEMO_SEARCH_ITERS:-40}"

log() { echo "[demo $(date +%T)] $*"; }
die() { echo "[demo] error: $*" >&2; exit 1; }

# What differs between the tasks: configs, data, metrics, input sizes, the latency scopes, the steps that apply.
# *_OPTS: --cfg-options of each training step (beyond the data's); SCOPES / BATCHES / SUFFIXES: the latency
# measurements of a config, each scope at its batch into NAME${SUFFIX}_rR.json (the backbone: NAME_rR.json, as the
# detection demo always wrote them).
DATA_ARGS=() SIZE_OPTS=() DENSE_OPTS=() SAA_OPTS=() FT_OPTS=() VIS_OPTS=()
case "$TASK" in
  det)
    OUT="${DEMO_DIR:-work_dirs/demo}"
    DATA="${DEMO_DATA:-data/sparsevit_demo}"
    IMG=(224)  # the demo configs' fixed input size
    SEARCH_IMG=(224)
    SEARCH_IMAGES="${DEMO_SEARCH_IMAGES:-50}"
    DENSE_CFG=configs/demo/mask_rcnn_swin_demo.py
    SAA_CFG=configs/demo/mask_rcnn_sparsevit_saa_demo.py
    SPARSE_CFG=configs/demo/mask_rcnn_sparsevit_demo.py
    DATA_OPTIONS=synthetic.synthetic_cfg_options
    EVAL=(bbox segm)
    DENSE_ROW="dense Swin (mmdet)"
    VAL_IMAGE="$DATA/val/000000.png"
    SCOPES=(backbone) BATCHES=(4) SUFFIXES=("")
    LATENCY_PROTOCOL=(--num-warmup 5 --num-repeats 30)
    DATA_MARK="$STYLE"
    ;;
  seg)
    OUT="${DEMO_DIR:-work_dirs/demo_seg}"
    DATA="${DEMO_DATA:-data/sparsevit_demo_seg}"
    read -r -a IMG <<< "${DEMO_SEG_SIZE:-256 512}"  # height width of the images, the latency input
    [ "${#IMG[@]}" = 2 ] || die "DEMO_SEG_SIZE must be 'HEIGHT WIDTH', got '${DEMO_SEG_SIZE:-}'"
    SEARCH_IMG=("${IMG[@]}")  # the search times the data's size (H W)
    SEARCH_IMAGES="${DEMO_SEARCH_IMAGES:-40}"
    DENSE_CFG=configs/demo/upernet_swin_demo_seg.py
    SAA_CFG=configs/demo/upernet_sparsevit_saa_demo_seg.py
    SPARSE_CFG=configs/demo/upernet_sparsevit_demo_seg.py
    DATA_OPTIONS=synthetic_seg.synthetic_seg_cfg_options
    DATA_ARGS=(--task seg --img-size "${IMG[@]}")
    EVAL=(mIoU)
    DENSE_ROW="dense Swin (mmseg)"
    VAL_IMAGE="$DATA/img_dir/val/000000.png"
    SCOPES=(backbone segmentor) BATCHES=(4 1) SUFFIXES=("" _segmentor)  # the segmentor as test.py runs it
    # fewer forwards than det's 5 + 30: two scopes per config, at 2.6x det's pixels
    LATENCY_PROTOCOL=(--num-warmup 3 --num-repeats 20)
    DATA_MARK="$STYLE ${IMG[0]}x${IMG[1]}"
    if [ "${IMG[*]}" != "256 512" ]; then  # the configs' pipelines are for 256x512 images
      H="${IMG[0]}" W="${IMG[1]}"
      SIZE_OPTS=("data.train.pipeline.2.img_scale=($W,$H)" "data.train.pipeline.5.size=($H,$W)"
        "data.val.pipeline.1.img_scale=($W,$H)" "data.test.pipeline.1.img_scale=($W,$H)")
    fi
    if [ -n "${DEMO_SEG_ITERS:-}" ]; then  # dense N iterations, SAA and finetune N / 3 (the configs' proportions)
      N="$DEMO_SEG_ITERS" N3=$(( DEMO_SEG_ITERS / 3 > 0 ? DEMO_SEG_ITERS / 3 : 1 ))
      DENSE_OPTS=("runner.max_iters=$N" "checkpoint_config.interval=$N")
      SAA_OPTS=("runner.max_iters=$N3" "checkpoint_config.interval=$N3")
      FT_OPTS=("${SAA_OPTS[@]}")
    fi
    ;;
  *) die "DEMO_TASK must be det or seg, got '$TASK'" ;;
esac
NAME_OF() { basename "$1" .py; }
DENSE_DIR="$OUT/$(NAME_OF "$DENSE_CFG")"
SAA_DIR="$OUT/$(NAME_OF "$SAA_CFG")"
SEARCH_DIR="$OUT/search"
LOGS="$OUT/logs"
START=$(date +%s)
STEP=0
NSTEPS=11

# run NAME CMD...: run a step with its console output in $LOGS/NAME.log (progress lines echoed); on failure show
# the log's tail and stop.
run() {
  local name="$1"; shift
  local logfile="$LOGS/$name.log" t0=$(date +%s) status=0
  "$@" >"$logfile" 2>&1 &
  local pid=$!
  local shown='Epoch \[[0-9]+\]\[(50|100)/|Iter \[[0-9]*00/|\[search\] (band|best|latency table:|wrote .*\.py)|'
  shown+='latency of|drawn'
  local short='s/.*((Epoch \[[0-9]+\]|Iter )\[[0-9]+\/[0-9]+\]).*eta: ([0-9:]+), time: ([0-9.]+),.* loss: ([0-9.]+).*/'
  short+='\1 loss \5, \4 s\/iter, eta \3/; s/^/    /'
  tail -n +1 -f "$logfile" --pid "$pid" 2>/dev/null | grep --line-buffered -E "$shown" | sed -u -E "$short" || true
  wait "$pid" || status=$?
  if [ "$status" != 0 ]; then
    echo "---- last lines of $logfile ----" >&2
    tail -n 25 "$logfile" >&2
    die "step '$name' failed (exit $status): $*"
  fi
  echo "$name $(( $(date +%s) - t0 ))" >> "$OUT/timings.txt"
}

# step TITLE: announce the next step
step() { STEP=$((STEP + 1)); log "step $STEP/$NSTEPS: $*"; }

# fresh OUTPUT: true when OUTPUT must be (re)made; once one step runs, every later step runs too
REUSED=0
fresh() {
  if [ "$FORCE" = 1 ] || [ ! -e "$1" ]; then FORCE=1; return 0; fi
  log "  (reusing $1; DEMO_FORCE=1 redoes it)"
  REUSED=$((REUSED + 1))
  return 1
}

# measure NAME CONFIG [NAME CONFIG ...]: latency of each config in $ROUNDS interleaved rounds (the machine's load
# changes over time; the table uses the median of the rounds), each scope of $LATENCY in turn (the backbone; for
# seg also the whole segmentor) -> $OUT/latency/NAME{,_segmentor}_r{1..}.json
measure() {
  local round i k
  for ((i = 1; i < $#; i += 2)); do  # no stale rounds in the median
    for k in "${!SCOPES[@]}"; do rm -f "$OUT/latency/${!i}${SUFFIXES[k]}"_r*.json; done
  done
  for round in $(seq 1 "$ROUNDS"); do
    for ((i = 1; i < $#; i += 2)); do
      local name="${!i}" j=$((i + 1))
      for k in "${!SCOPES[@]}"; do
        local file="$OUT/latency/${name}${SUFFIXES[k]}_r$round.json"
        run "latency_${name}${SUFFIXES[k]}_r$round" "$PY" tools/measure_latency.py "${!j}" --img_size "${IMG[@]}" \
          --scope "${SCOPES[k]}" --batch-size "${BATCHES[k]}" --no-progress "${LATENCY_PROTOCOL[@]}" --json "$file"
      done
    done
  done
}

# runs NAME: the comma-separated latency files of NAME's rounds, every scope
runs() {
  local files=() k
  for k in "${!SCOPES[@]}"; do files+=("$OUT/latency/$1${SUFFIXES[k]}"_r*.json); done
  local IFS=,; echo "${files[*]}"
}

mkdir -p "$OUT" "$LOGS" "$OUT/latency"
: > "$OUT/timings.txt"
# outputs of other data (style; seg: also size) are not reused (a work dir without the marker predates the
# styles: flat)
PREVIOUS_STYLE="$(cat "$OUT/style.txt" 2>/dev/null || { [ -e "$DENSE_DIR/latest.pth" ] && echo flat; } || true)"
if [ -n "$PREVIOUS_STYLE" ] && [ "$PREVIOUS_STYLE" != "$DATA_MARK" ]; then
  log "$OUT holds results on $PREVIOUS_STYLE data: every step is redone for $DATA_MARK data"
  FORCE=1
fi
echo "$DATA_MARK" > "$OUT/style.txt"
command -v "$PY" >/dev/null 2>&1 || die "no python: run 'make demo' (it creates .venv) or set PYTHON"
"$PY" -c 'import sparsevit, mmdet, mmcv.ops' 2>/dev/null \
  || die "the environment is not ready (import sparsevit, mmdet, mmcv.ops failed): run 'bash tools/setup_env.sh'"
[ "$TASK" = det ] || "$PY" -c 'import mmseg' 2>/dev/null \
  || die "DEMO_TASK=seg needs mmsegmentation (import mmseg failed): run 'bash tools/setup_env.sh'"
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # mpirun (torchpack dist-run) as root
fi

step "synthetic data ($DATA_MARK) -> $DATA"
[ -z "${DEMO_NUM_TRAIN:-}" ] || DATA_ARGS+=(--num-train "$DEMO_NUM_TRAIN")
[ -z "${DEMO_NUM_VAL:-}" ] || DATA_ARGS+=(--num-val "$DEMO_NUM_VAL")
run data "$PY" tools/make_synthetic_data.py --out "$DATA" --seed "$SEED" --style "$STYLE" \
  ${DATA_ARGS[@]+"${DATA_ARGS[@]}"}
# --cfg-options pointing the demo configs at $DATA (one place defines them: sparsevit.datasets.synthetic and
# synthetic_seg), then the pipelines' size for seg images of another size
read -r -a DATA_OPTS <<< "$("$PY" -W ignore -c "import importlib, sys
module, name = sys.argv[2].rsplit('.', 1)
options = getattr(importlib.import_module(f'sparsevit.datasets.{module}'), name)(sys.argv[1])
print(' '.join(f'{k}={v}' for k, v in options.items()))" "$DATA" "$DATA_OPTIONS" 2>/dev/null)"
[ "${#DATA_OPTS[@]}" -gt 0 ] || die "could not build the --cfg-options for $DATA"
DATA_OPTS+=(${SIZE_OPTS[@]+"${SIZE_OPTS[@]}"})
[ "$TASK" = det ] || VIS_OPTS=(--cfg-options "${DATA_OPTS[@]}")

step "dense training of $DENSE_CFG -> $DENSE_DIR"
if fresh "$DENSE_DIR/latest.pth"; then
  run train_dense "$PY" tools/train.py "$DENSE_CFG" --work-dir "$DENSE_DIR" --seed "$SEED" --no-validate \
    --cfg-options "${DATA_OPTS[@]}" ${DENSE_OPTS[@]+"${DENSE_OPTS[@]}"}
fi

step "Sparsity-Aware Adaptation ($SAA_CFG) -> $SAA_DIR"
if fresh "$SAA_DIR/latest.pth"; then
  run train_saa "$PY" tools/train.py "$SAA_CFG" --work-dir "$SAA_DIR" --seed "$SEED" --no-validate \
    --cfg-options "${DATA_OPTS[@]}" load_from="$DENSE_DIR/latest.pth" ${SAA_OPTS[@]+"${SAA_OPTS[@]}"}
fi

step "which windows L2 selection keeps: dense and SAA weights, uniform 0.5 and 0.7 -> $OUT/kept_windows_*.json"
KEPT=()
if [ "$TASK" = seg ]; then
  log "  (seg: skipped: tools/analyze_windows.py measures the windows on COCO instance annotations)"
else
  for kind in dense saa; do
    ckpt_dir="$DENSE_DIR"; [ "$kind" = saa ] && ckpt_dir="$SAA_DIR"
    if fresh "$OUT/kept_windows_$kind.json"; then
      run "kept_windows_$kind" "$PY" tools/analyze_windows.py "$SPARSE_CFG" "$ckpt_dir/latest.pth" --split val \
        --ratios 0.5 0.7 --num-images 40 --random-seeds 3 --json "$OUT/kept_windows_$kind.json" \
        --markdown "$OUT/kept_windows_$kind.md" --cfg-options "${DATA_OPTS[@]}"
    fi
  done
  KEPT=(--kept-windows "SAA weights (L2 selection as the search and the sparse model use it)"
    "$OUT/kept_windows_saa.json" --kept-windows "dense weights" "$OUT/kept_windows_dense.json")
fi

step "latency-constrained evolutionary search ($NP processes, band ${MIN_FRAC}x to ${MAX_FRAC}x the dense backbone) -> $SEARCH_DIR"
SEARCH=(tools/search.py "$SPARSE_CFG" "$SAA_DIR/latest.pth" --max "${MAX_FRAC}x" --min "${MIN_FRAC}x"
  --work-dir "$SEARCH_DIR" --iters "$SEARCH_ITERS" --population 8 --parents 3 --mutation-prob 0.1 --seed "$SEED"
  --num-images "$SEARCH_IMAGES" --img_size "${SEARCH_IMG[@]}" --batch-size 4 --num-warmup 3 --num-repeats 10
  --latency-table "$SEARCH_DIR/latency_table.json" --no-progress --cfg-options "${DATA_OPTS[@]}")
BEST_CFG="$SEARCH_DIR/sparsevit_max${MAX_FRAC}x_min${MIN_FRAC}x.py"
if fresh "$BEST_CFG"; then
  rm -f "$SEARCH_DIR"/search_max"${MAX_FRAC}"x_min"${MIN_FRAC}"x* "$SEARCH_DIR/latency_table.json"  # fresh, no resume
  if [ "$NP" -gt 1 ] && command -v torchpack >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1; then
    QUOTED=()  # torchpack runs the command through a shell: quote once more (seg sizes: img_scale=(W,H))
    for arg in "${SEARCH[@]}"; do QUOTED+=("$(printf '%q' "$arg")"); done
    run search torchpack dist-run -np "$NP" python "${QUOTED[@]}"
  else
    log "  (torchpack/mpirun unavailable or DEMO_NP=1: one process)"
    run search "$PY" "${SEARCH[@]}"
  fi
fi
[ -f "$BEST_CFG" ] || BEST_CFG="$(ls -t "$SEARCH_DIR"/sparsevit_max*_min*.py 2>/dev/null | head -n 1 || true)"
[ -n "$BEST_CFG" ] && [ -f "$BEST_CFG" ] || die "the search wrote no sparsevit_max*_min*.py in $SEARCH_DIR"
BEST_NAME="$(basename "$BEST_CFG" .py)"
FT_DIR="$OUT/$BEST_NAME"
log "  found: $BEST_CFG"

step "finetune of the found configuration -> $FT_DIR"
if fresh "$FT_DIR/latest.pth"; then
  run finetune "$PY" tools/train.py "$BEST_CFG" --work-dir "$FT_DIR" --seed "$SEED" --no-validate \
    --cfg-options "${DATA_OPTS[@]}" load_from="$SAA_DIR/latest.pth" ${FT_OPTS[@]+"${FT_OPTS[@]}"}
fi

EVAL_TEXT="${EVAL[*]}"
step "test (${EVAL_TEXT// / + } on the synthetic val split; the sparse model also in bf16)"
# NAME:CONFIG:CHECKPOINT_DIR:OUTPUT_DIR:DTYPE
for run_spec in "dense:$DENSE_CFG:$DENSE_DIR:$DENSE_DIR:fp32" "saa:$SPARSE_CFG:$SAA_DIR:$SAA_DIR:fp32" \
    "sparse:$BEST_CFG:$FT_DIR:$FT_DIR:fp32" "sparse_bf16:$BEST_CFG:$FT_DIR:$FT_DIR/bf16:bf16"; do
  IFS=: read -r name cfg ckpt_dir dir dtype <<< "$run_spec"
  if fresh "$(ls "$dir"/eval_*.json 2>/dev/null | head -n 1)"; then
    run "test_$name" "$PY" tools/test.py "$cfg" "$ckpt_dir/latest.pth" --eval "${EVAL[@]}" --dtype "$dtype" \
      --work-dir "$dir" --out "$dir/results.pkl" --cfg-options "${DATA_OPTS[@]}"
  fi
done

step "fp32 vs bf16 window selection of the sparse model -> $OUT/precision_bf16.json"
PRECISION=()
if [ "$TASK" = seg ]; then
  log "  (seg: skipped: tools/check_precision.py compares the windows of a detector on COCO val images)"
elif [ -f tools/check_precision.py ]; then
  if fresh "$OUT/precision_bf16.json"; then
    # exit 1 (windows differ on the same input) is a result for the report's checks, not a failed step
    run check_precision bash -c '"$@"; rc=$?; [ "$rc" -le 1 ] || exit "$rc"' _ "$PY" tools/check_precision.py \
      "$BEST_CFG" "$FT_DIR/latest.pth" --dtype bf16 --num-images 8 --json "$OUT/precision_bf16.json" \
      --cfg-options "${DATA_OPTS[@]}"
  fi
  PRECISION=(--precision-check "$OUT/precision_bf16.json")
else
  log "  (tools/check_precision.py not found: skipped)"
fi

SCOPES_TEXT="$(for k in "${!SCOPES[@]}"; do printf '%s batch %s, ' "${SCOPES[k]}" "${BATCHES[k]}"; done)"
step "latencies, $ROUNDS interleaved rounds (${IMG[0]}x${IMG[-1]}, ${SCOPES_TEXT%, }): dense Swin, dense SparseViT," \
  "the sparse result"
if fresh "$OUT/latency/${BEST_NAME}${SUFFIXES[-1]}_r$ROUNDS.json"; then
  measure swin_dense "$DENSE_CFG" sparsevit_dense "$SPARSE_CFG" "$BEST_NAME" "$BEST_CFG"
fi

step "visualisation of the kept windows -> $OUT/sparsity.png"
run visualize "$PY" tools/visualize_sparsity.py "$BEST_CFG" "$FT_DIR/latest.pth" "$VAL_IMAGE" \
  --out "$OUT/sparsity.png" ${VIS_OPTS[@]+"${VIS_OPTS[@]}"}

step "results"
WALL=(--wall-time "$(( $(date +%s) - START ))")
[ "$REUSED" = 0 ] || WALL=()  # outputs of an earlier run were reused: this run's time means nothing
"$PY" tools/demo_report.py \
  --row "$DENSE_ROW" "$DENSE_CFG" "$DENSE_DIR" "$(runs swin_dense)" \
  --row "SparseViT SAA, dense" "$SPARSE_CFG" "$SAA_DIR" "$(runs sparsevit_dense)" \
  --row "SparseViT searched + finetuned" "$BEST_CFG" "$FT_DIR" "$(runs "$BEST_NAME")" \
  --own-dense "SparseViT SAA, dense" \
  --bf16 "SparseViT searched + finetuned" "$FT_DIR/bf16" ${PRECISION[@]+"${PRECISION[@]}"} \
  ${KEPT[@]+"${KEPT[@]}"} --data-style "$STYLE" --markdown "$OUT/results.md" --json "$OUT/results.json" \
  ${WALL[@]+"${WALL[@]}"}
log "done in $(( ($(date +%s) - START) / 60 )) min: $OUT/results.md, $OUT/sparsity.png, per-step seconds in $OUT/timings.txt"
