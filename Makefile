# The README's two commands: `make demo` and `make test`. Both set up `.venv` first (idempotent).
PY := .venv/bin/python
IMG_SIZE ?= 672
BATCH ?= 4
DEVICE ?= cpu

.PHONY: env test demo benchmark clean-demo

env:
	bash tools/setup_env.sh

test: env
	$(PY) -m pytest -q tests

demo: env
	bash tools/demo.sh

benchmark: env
	$(PY) tools/benchmark_backbone.py --img_size $(IMG_SIZE) --batch-size $(BATCH) --device $(DEVICE)

clean-demo:
	rm -rf work_dirs/demo data/sparsevit_demo
