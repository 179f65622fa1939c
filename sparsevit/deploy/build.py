"""Build a detector config's SparseViT backbone (with a checkpoint's backbone weights) for the deployment tools.

Shared by ``tools/check_precision.py`` and ``tools/export_onnx.py``. Everything that can go wrong with the user's
input raises ``ValueError`` with a one-line message.
"""
import ast
import json
import os.path as osp
from typing import Optional, Tuple

import torch
from mmcv import Config
from mmdet.models import build_backbone

from ..schedule import genes_to_ratios, normalize_pruning_ratios
from ..utils.config import SPARSE_BACKBONES, apply_sparsevit_cfg

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


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """The config with ``--cfg-options`` merged and the top-level ``pruning_ratios`` applied."""
    if not osp.isfile(path):
        raise ValueError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg or 'backbone' not in cfg.model:
        raise ValueError(f'{path} has no model.backbone')
    apply_sparsevit_cfg(cfg)
    return cfg


def backbone_state_dict(path: str) -> dict:
    """The ``backbone.*`` weights of a detector checkpoint, prefix removed."""
    if not osp.isfile(path):
        raise ValueError(f'checkpoint not found: {path}')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
    except Exception as err:  # pickle, zip and torch errors alike: one line
        raise ValueError(f'cannot read checkpoint {path}: {type(err).__name__}: {err}') from None
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'{path} is not a checkpoint (no state_dict)')
    weights = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    if not weights:
        raise ValueError(f'{path} has no backbone weights (no key starts with "backbone.")')
    return weights


def build_sparse_backbone(cfg: Config, checkpoint: Optional[str] = None,
                          ratios_text: Optional[str] = None) -> Tuple[torch.nn.Module, dict]:
    """The config's backbone as a ``SparseSwinTransformer`` in eval mode, with the checkpoint's backbone weights.

    A dense mmdet ``SwinTransformer`` becomes the sparse one with the same arguments (and weights). Without a
    checkpoint the weights are the random init (no pre-trained download).

    Returns:
        (backbone, the backbone config it was built from).
    """
    bb = cfg.model.backbone.copy()
    if bb.get('type') not in SWIN_BACKBONES:
        raise ValueError(f"model.backbone.type is {bb.get('type')!r}; only Swin backbones {SWIN_BACKBONES} can run "
                         'with window pruning')
    bb['type'] = 'SparseSwinTransformer'
    bb.pop('init_cfg', None)
    bb.pop('pretrained', None)
    if ratios_text is not None:
        bb['pruning_ratios'] = parse_ratios(ratios_text, bb.get('depths', (2, 2, 6, 2)))
    backbone = build_backbone(bb)
    if checkpoint is not None:
        try:
            backbone.load_state_dict(backbone_state_dict(checkpoint), strict=True)
        except RuntimeError as err:  # missing/unexpected keys or shape mismatches
            detail = ' '.join(str(err).split())
            raise ValueError(f'{checkpoint} does not fit the backbone of the config: {detail[:300]}') from None
    return backbone.eval(), bb
