"""Models: the SparseViT backbone (:mod:`.backbones.sparse_swin`), mmdet's Swin Transformer that skips whole
attention windows of low importance; registered into mmdet's ``BACKBONES`` (also as ``SparseViT``)."""
from .backbones import SparseSwinTransformer  # noqa: F401

__all__ = ['SparseSwinTransformer']
