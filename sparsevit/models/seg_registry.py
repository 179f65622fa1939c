"""The backbone in mmsegmentation too: ``SparseSwinTransformer`` (and ``SparseViT``) registered into mmseg 0.30's
``BACKBONES`` when mmseg is importable, so ``type='SparseViT'`` works in an mmseg config (an ``EncoderDecoder``
with UperNet, as mmseg's Swin recipe). The class is the same one mmdet builds: mmseg's ``SwinTransformer`` has
mmdet's module tree and ``state_dict`` keys (its ``absolute_pos_embed``, only with ``use_abs_pos_embed``, is
stored flat, ``[1, N, C]``; the backbone loads that layout too)."""
import importlib.util

from .backbones import SparseSwinTransformer

#: The names the backbone is registered under, in mmdet's and in mmseg's ``BACKBONES``.
NAMES = ('SparseSwinTransformer', 'SparseViT')


def mmseg_available() -> bool:
    """Whether mmsegmentation is installed (without importing it)."""
    return importlib.util.find_spec('mmseg') is not None


def register_in_mmseg() -> bool:
    """Register the backbone into mmseg's ``BACKBONES`` (idempotent); False when mmseg is not installed."""
    if not mmseg_available():
        return False
    from mmseg.models.builder import BACKBONES
    for name in NAMES:
        if BACKBONES.get(name) is None:
            BACKBONES.register_module(name=name, module=SparseSwinTransformer)
    return True


register_in_mmseg()
