"""Deployment helpers: half-precision selection checks (:mod:`.precision`) and ONNX export (:mod:`.onnx`, needs the
optional ``onnx``/``onnxruntime`` packages, imported only by that module)."""
from .precision import compare_selections, record_selections, stage_selection

__all__ = ['compare_selections', 'record_selections', 'stage_selection']
