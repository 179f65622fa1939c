# The README's two commands: `make demo` and `make test`. Both set up `.venv` first (idempotent).
PY := .venv/bin/python
IMG_SIZE ?= 672
BATCH ?= 4
DEVICE ?= cpu

.PHONY: env test demo demo-seg benchmark benchmark-seg experiments gpu-check clean-demo clean-demo-seg

env:
	bash tools/setup_env.sh

test: env
	$(PY) -m pytest -q tests

demo: env
	bash tools/demo.sh

# The same pipeline for semantic segmentation (mmseg UperNet, synthetic 256x512 data): work_dirs/demo_seg/.
demo-seg: env
	DEMO_TASK=seg bash tools/demo.sh

benchmark: env
	$(PY) tools/benchmark_backbone.py --img_size $(IMG_SIZE) --batch-size $(BATCH) --device $(DEVICE)

# Whole UperNet Swin-T latency at 512x1024, batch 1 and 2: dense vs uniform and searched sparsity (~25 min on 2 CPU cores).
benchmark-seg: env
	$(PY) tools/benchmark_segmentor.py

# The paper's comparisons at matched latency on the embedded data (not part of `make test`; ~1 h on 2 CPU cores).
experiments: env
	bash tools/experiments.sh

# On a machine with a CUDA GPU: the tests marked `cuda`, then the backbone benchmark on CUDA (fp32 and fp16).
gpu-check: env
	bash tools/gpu_check.sh

clean-demo:
	rm -rf work_dirs/demo data/sparsevit_demo

clean-demo-seg:
	rm -rf work_dirs/demo_seg data/sparsevit_demo_seg
