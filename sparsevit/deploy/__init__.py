"""Deployment: the config's backbone built for a tool (:mod:`.build`), ONNX export checked in onnxruntime
(:mod:`.onnx`, needs the optional ``onnx``/``onnxruntime`` packages, imported only by that module; a config's
backbone exported, checked and timed: :mod:`.export`, ``tools/export_onnx.py``), the latency of a config's backbone
or detector (:mod:`.latency`, ``tools/measure_latency.py``) and the backbone benchmark over precisions and runtimes
(:mod:`.benchmark`, ``tools/benchmark_backbone.py``). Whether half precision keeps the same windows is an
analysis: :mod:`sparsevit.analysis.selection_agreement`."""
