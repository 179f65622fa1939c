"""Config handling shared by the tools: the original's top-level keys and early validation.

The original SparseViT configs set ``pruning_ratios = [[...], ...]`` and ``random_sample = True`` at the top
level. :func:`apply_sparsevit_cfg` maps them onto the model (``model.backbone.pruning_ratios``) and the
Sparsity-Aware Adaptation hook, and validates them against the backbone's depths before anything is built, so a
bad value fails with one clear message instead of deep inside training.
"""
from ..schedule import normalize_pruning_ratios

SPARSE_BACKBONES = ('SparseSwinTransformer', 'SparseViT')
SAA_HOOK = 'SparsityAwareAdaptationHook'


def apply_sparsevit_cfg(cfg):
    """Apply top-level ``pruning_ratios`` / ``random_sample`` to an mmcv ``Config`` in place and validate.

    Returns:
        The same config, with ``model.backbone.pruning_ratios`` normalised to one list per stage.

    Raises:
        ValueError: when ratios are malformed or set on a backbone that cannot prune.
    """
    backbone = cfg.model.get('backbone', {})
    depths = tuple(backbone.get('depths', (2, 2, 6, 2)))
    top = cfg.get('pruning_ratios', None)
    if top is not None:
        if backbone.get('type') not in SPARSE_BACKBONES:
            raise ValueError(f"pruning_ratios is set but model.backbone.type is {backbone.get('type')!r}; "
                             f'use one of {SPARSE_BACKBONES}')
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
