"""Datasets: the embedded synthetic shapes used by the demo and the tests, as COCO instance segmentation
(:mod:`.synthetic`) and as mmsegmentation semantic segmentation (:mod:`.synthetic_seg`)."""
from .synthetic import SYNTHETIC_CLASSES, generate_synthetic_coco, synthetic_cfg_options
from .synthetic_seg import SEG_CLASSES, SEG_PALETTE, WIDE_SCENE, generate_synthetic_seg, synthetic_seg_cfg_options

__all__ = ['SYNTHETIC_CLASSES', 'generate_synthetic_coco', 'synthetic_cfg_options', 'SEG_CLASSES', 'SEG_PALETTE',
           'WIDE_SCENE', 'generate_synthetic_seg', 'synthetic_seg_cfg_options']
