from .backbones import SparseSwinTransformer  # noqa: F401

__all__ = ['SparseSwinTransformer']
