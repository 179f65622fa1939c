"""Config handling shared by the tools: the original's top-level keys and early validation.

The original SparseViT configs set ``pruning_ratios = [[...], ...]`` and ``random_sample = True`` at the top
level. :func:`apply_sparsevit_cfg` maps them onto the model (``model.backbone.pruning_ratios``) and the
Sparsity-Aware Adaptation hook, and validates them against the backbone's depths before anything is built, so a
bad value fails with one clear message instead of deep inside training.

The ratios can be given in two places: the original's top-level ``pruning_ratios`` and the backbone argument
``model.backbone.pruning_ratios``. A key counts as *set* when its value is not ``None`` (``None`` is the
backbone's "dense" default, which configs such as ``mask_rcnn_sparsevit.py`` spell out). When only one is set it
is used; when both are set they must describe the same per-block ratios (e.g. ``0`` and the all-zero lists, or the
config ``tools/train.py`` dumps, which holds both): otherwise the config is rejected, naming both values, rather
than one silently overriding the other.

:func:`load_config` is the one way the tools read a config file (``--cfg-options`` merged, these keys applied);
:func:`read_pruning_ratios` reads the top-level ratios of a config file without building it.
"""
import ast
import os.path as osp
from typing import Optional, Sequence

from ..schedule import normalize_pruning_ratios

SPARSE_BACKBONES = ('SparseSwinTransformer', 'SparseViT')
SAA_HOOK = 'SparsityAwareAdaptationHook'


def apply_sparsevit_cfg(cfg):
    """Apply top-level ``pruning_ratios`` / ``random_sample`` to an mmcv ``Config`` in place and validate.

    Returns:
        The same config, with ``model.backbone.pruning_ratios`` normalised to one list per stage.

    Raises:
        ValueError: when ratios are malformed, set on a backbone that cannot prune, or set differently at the top
            level and in ``model.backbone`` (see :func:`check_one_ratio_setting`).
    """
    backbone = cfg.model.get('backbone', {})
    depths = tuple(backbone.get('depths', (2, 2, 6, 2)))
    top = cfg.get('pruning_ratios', None)
    if top is not None:
        if backbone.get('type') not in SPARSE_BACKBONES:
            raise ValueError(f"pruning_ratios is set but model.backbone.type is {backbone.get('type')!r}; "
                             f'use one of {SPARSE_BACKBONES}')
        check_one_ratio_setting(top, backbone.get('pruning_ratios'), depths)
        backbone['pruning_ratios'] = top
    if backbone.get('type') in SPARSE_BACKBONES:
        backbone['pruning_ratios'] = normalize_pruning_ratios(backbone.get('pruning_ratios'), depths)
    if cfg.get('random_sample', False):
        if backbone.get('type') not in SPARSE_BACKBONES:
            raise ValueError(f"random_sample=True needs a sparse backbone ({SPARSE_BACKBONES}), "
                             f"got {backbone.get('type')!r}")
        hooks = list(cfg.get('custom_hooks', []) or [])
        if not any(h.get('type') == SAA_HOOK for h in hooks):
            hooks.append(dict(type=SAA_HOOK))
            cfg.custom_hooks = hooks
    return cfg


def load_config(path: str, cfg_options: Optional[dict] = None, mmdet_values: bool = False,
                require_backbone: bool = False):
    """The mmcv ``Config`` of ``path`` with ``cfg_options`` (``--cfg-options``) merged and the SparseViT keys
    applied (:func:`apply_sparsevit_cfg`).

    Args:
        mmdet_values: resolve mmdet's ``${...}`` values and ``data_root`` first, as mmdet's train/test tools do
            (``replace_cfg_vals``, ``update_data_root``).
        require_backbone: reject a config without ``model.backbone`` (``PATH has no model.backbone``).

    Raises:
        ValueError: a missing file (``config file not found: PATH``), no backbone, or bad SparseViT keys.
    """
    from mmcv import Config
    if not osp.isfile(path):
        raise ValueError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if mmdet_values:
        from mmdet.utils import replace_cfg_vals, update_data_root
        cfg = replace_cfg_vals(cfg)
        update_data_root(cfg)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if require_backbone and ('model' not in cfg or 'backbone' not in cfg.model):
        raise ValueError(f'{path} has no model.backbone')
    return apply_sparsevit_cfg(cfg)


def read_pruning_ratios(path: str) -> list:
    """The top-level ``pruning_ratios`` literal of a config file (as tools/search.py writes them), read without
    building the config. ValueError when the file sets none."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'pruning_ratios' for t in node.targets):
            return ast.literal_eval(node.value)
    raise ValueError(f'{path} sets no pruning_ratios')


def _plain(value):
    """Config values (mmcv ``ConfigDict``/tuples) as plain lists and numbers, for messages and comparison."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def check_one_ratio_setting(top, backbone_ratios, depths: Sequence[int]) -> None:
    """Reject a config whose top-level ``pruning_ratios`` and ``model.backbone.pruning_ratios`` are both set
    (not None) to different per-block ratios.

    Raises:
        ValueError: one line naming both values.
    """
    if top is None or backbone_ratios is None:
        return
    try:
        same = normalize_pruning_ratios(top, depths) == normalize_pruning_ratios(backbone_ratios, depths)
    except ValueError:  # a malformed value: only an identical one is the same setting
        same = _plain(top) == _plain(backbone_ratios)
    if not same:
        raise ValueError(f'pruning_ratios={_plain(top)} (top level) and model.backbone.pruning_ratios='
                         f'{_plain(backbone_ratios)} are both set and differ; set only one of them (the top-level '
                         f'key is the original\'s way)')


def unwrap_model(model):
    """Strip DDP/DataParallel wrappers."""
    return model.module if hasattr(model, 'module') else model


def get_sparse_backbone(model):
    """The model's backbone if it supports ``set_pruning_ratios``; raises ValueError otherwise."""
    backbone = getattr(unwrap_model(model), 'backbone', None)
    if backbone is None or not hasattr(backbone, 'set_pruning_ratios'):
        raise ValueError(f'the model has no sparse backbone ({SPARSE_BACKBONES}); got '
                         f'{type(backbone).__name__}')
    return backbone
