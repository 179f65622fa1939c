"""sparsevit: SparseViT window activation pruning for Swin Transformer, as an mmdetection 2.28 plugin.

Importing this package registers ``SparseSwinTransformer`` (alias ``SparseViT``) into mmdet's ``BACKBONES`` and
the Sparsity-Aware Adaptation hook into mmcv's ``HOOKS`` (configs do it via ``custom_imports``).
"""
from . import schedule  # noqa: F401  (plain Python, importable without mmdet)

__version__ = '0.1.0'

try:  # the registries need mmcv/mmdet; schedule and search stay importable without them
    from .models import *  # noqa: F401,F403
    from .hooks import *  # noqa: F401,F403
except ImportError as err:  # pragma: no cover - only without mmcv/mmdet installed
    if 'mmcv' not in str(err) and 'mmdet' not in str(err):
        raise
