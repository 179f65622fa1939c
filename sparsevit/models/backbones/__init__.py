"""Backbones: :class:`SparseSwinTransformer`, composed of the window ops of :mod:`sparsevit.ops`."""
from .sparse_swin import SparseSwinTransformer  # noqa: F401

__all__ = ['SparseSwinTransformer']
