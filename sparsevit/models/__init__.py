"""Models: the SparseViT backbone (:mod:`.backbones.sparse_swin`), mmdet's Swin Transformer that skips whole
attention windows of low importance; registered into mmdet's ``BACKBONES`` (also as ``SparseViT``) and, when
mmsegmentation is installed, into mmseg's (:mod:`.seg_registry`)."""
from .backbones import SparseSwinTransformer  # noqa: F401
from . import seg_registry  # noqa: F401  (registers the backbone into mmseg's BACKBONES)

__all__ = ['SparseSwinTransformer']
