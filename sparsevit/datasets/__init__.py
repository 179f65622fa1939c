"""Datasets: the embedded synthetic COCO-format shapes dataset used by the demo and the tests."""
from .synthetic import SYNTHETIC_CLASSES, generate_synthetic_coco, synthetic_cfg_options

__all__ = ['SYNTHETIC_CLASSES', 'generate_synthetic_coco', 'synthetic_cfg_options']
