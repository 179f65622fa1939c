"""Build a detector config's backbone without downloading weights, as SparseViT, with a checkpoint's weights.

The one home of "the config's backbone with random weights" (:func:`backbone_cfg`: ``init_cfg`` and
``pretrained`` removed, optionally as ``SparseSwinTransformer``, ``--pruning-ratios`` applied) and of
:func:`build_sparse_backbone` (with a detector checkpoint's backbone weights), used by the deployment and latency
tools, the experiments' latency driver and the kept-window analysis. Everything that can go wrong with the user's
input raises ``ValueError`` with a one-line message.
"""
import ast
import json
from typing import Optional, Tuple

import torch
from mmcv import Config
from mmdet.models import build_backbone

from ..schedule import genes_to_ratios, normalize_pruning_ratios
from ..utils.checkpoint import backbone_weights, load_state
from ..utils.config import SPARSE_BACKBONES

#: Backbones that can run as ``SparseSwinTransformer`` (same arguments and weights).
SWIN_BACKBONES = ('SwinTransformer', ) + SPARSE_BACKBONES


def parse_ratios(text: str, depths):
    """``--pruning-ratios`` text (a float, a per-stage or per-block list in JSON/Python, or a gene dict) -> per-block
    ratios for ``depths``; ValueError on anything invalid."""
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f'--pruning-ratios {text!r} is neither JSON nor a Python literal; expected a float, '
                             'a list per stage, a list of per-block lists or a gene dict') from None
    if isinstance(value, dict):
        return genes_to_ratios(value, depths)
    return normalize_pruning_ratios(value, depths)


def backbone_cfg(cfg: Config, sparse: bool = False, ratios_text: Optional[str] = None) -> dict:
    """``cfg.model.backbone`` as a dict that builds without a download: ``init_cfg`` and ``pretrained`` removed (the
    weights stay random, as latency needs, or a checkpoint's are loaded afterwards).

    Args:
        sparse: as ``SparseSwinTransformer``: a dense mmdet ``SwinTransformer`` becomes the sparse one with the same
            arguments (and weights); another backbone is a ValueError.
        ratios_text: ``--pruning-ratios`` (:func:`parse_ratios`), which needs a Swin backbone: a dense
            ``SwinTransformer`` becomes ``SparseSwinTransformer``, a sparse one keeps its registered name.
    """
    if 'model' not in cfg or 'backbone' not in cfg.model:
        raise ValueError('the config has no model.backbone')
    bb = dict(cfg.model.backbone)
    bb.pop('init_cfg', None)
    bb.pop('pretrained', None)
    if sparse:
        if bb.get('type') not in SWIN_BACKBONES:
            raise ValueError(f"model.backbone.type is {bb.get('type')!r}; only Swin backbones {SWIN_BACKBONES} can "
                             'run with window pruning')
        bb['type'] = 'SparseSwinTransformer'
    if ratios_text is not None:
        if bb.get('type') not in SWIN_BACKBONES:
            raise ValueError(f"--pruning-ratios needs a Swin backbone {SWIN_BACKBONES}, got {bb.get('type')!r}")
        if bb['type'] == 'SwinTransformer':
            bb['type'] = 'SparseSwinTransformer'
        bb['pruning_ratios'] = parse_ratios(ratios_text, bb.get('depths', (2, 2, 6, 2)))
    return bb


def build_sparse_backbone(cfg: Config, checkpoint: Optional[str] = None,
                          ratios_text: Optional[str] = None) -> Tuple[torch.nn.Module, dict]:
    """The config's backbone as a ``SparseSwinTransformer`` in eval mode (:func:`backbone_cfg` with ``sparse``),
    with the checkpoint's backbone weights; without a checkpoint the weights are the random init.

    Returns:
        (backbone, the backbone config it was built from).
    """
    bb = backbone_cfg(cfg, sparse=True, ratios_text=ratios_text)
    backbone = build_backbone(bb)
    if checkpoint is not None:
        load_state(backbone, backbone_weights(checkpoint), checkpoint, what="the config's backbone")
    return backbone.eval(), bb
