from .sparse_swin import SparseSwinTransformer  # noqa: F401

__all__ = ['SparseSwinTransformer']
