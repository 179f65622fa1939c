"""Analytic backbone MACs against torch's FLOP counter, on dense and pruned forwards of a tiny SparseViT."""
from functools import partial

import pytest
import torch

from sparsevit.analysis.compute import (SwinSettings, backbone_macs, block_macs, counted_macs,
                                        detector_backbone_gmacs)
from sparsevit.ops.window import num_kept

from helpers import tiny_backbone

TINY = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=7, mlp_ratio=4)
NON_UNIFORM = [[0.3, 0.5], [0.0, 0.2], [0.5, 0.5], [0.0, 0.0]]


tiny = partial(tiny_backbone, **TINY)  # tiny(**kwargs): seeded, in eval mode


@pytest.mark.parametrize('size', [(224, 224), (200, 312)])
@pytest.mark.parametrize('fused_attn', [True, False])
def test_dense_equals_flop_counter(size, fused_attn):
    model = tiny(fused_attn=fused_attn)
    counted = counted_macs(model, torch.randn(1, 3, *size))
    assert backbone_macs(model, size)['macs'] == counted


@pytest.mark.parametrize('size', [(224, 224), (200, 312)])
def test_dense_equals_flop_counter_on_mmdet_swin(size):
    """mmdet's SwinTransformer runs its MLP on unpadded tokens only: fewer MACs where a stage map is padded."""
    from mmdet.models.backbones.swin import SwinTransformer
    torch.manual_seed(0)
    model = SwinTransformer(**TINY)
    model.eval()  # mmdet's train() returns None
    macs = backbone_macs(model, size)['macs']
    assert macs == counted_macs(model, torch.randn(1, 3, *size))
    assert macs == backbone_macs(dict(TINY, type='SwinTransformer'), size)['macs']
    sparse = backbone_macs(tiny(), size)['macs']
    assert macs == sparse if size == (224, 224) else macs < sparse
    with pytest.raises(ValueError, match='does not prune'):
        backbone_macs(model, size, 0.5)


@pytest.mark.parametrize('ratios', [0.5, NON_UNIFORM], ids=['uniform', 'non_uniform'])
@pytest.mark.parametrize('size', [(224, 224), (200, 312)])
def test_pruned_equals_flop_counter(ratios, size):
    """The gathered-windows forward runs only the kept windows, and the counter sees only those."""
    model = tiny(pruning_ratios=ratios)
    counted = counted_macs(model, torch.randn(2, 3, *size))
    macs = backbone_macs(model, size, batch=2)
    assert macs['macs'] == counted
    assert macs['macs'] < backbone_macs(model, size, pruning_ratios=0, batch=2)['macs']


def test_breakdown_and_padding():
    out = backbone_macs(SwinSettings(**{k: v for k, v in TINY.items() if k != 'num_heads'}), (200, 312),
                        pruning_ratios=NON_UNIFORM, batch=3)
    assert [s['hw'] for s in out['stages']] == [(50, 78), (25, 39), (13, 20), (7, 10)]
    assert [s['padded_hw'] for s in out['stages']] == [(56, 84), (28, 42), (14, 21), (7, 14)]
    assert [s['windows'] for s in out['stages']] == [96, 24, 6, 2]
    block = out['stages'][0]['blocks'][1]
    assert block['kept_windows'] == num_kept(96, 0.5) == 48
    assert block == dict(prune_ratio=0.5, kept_windows=48, **block_macs(16, 64, 3 * 48, 7))
    assert block['attn'] == 3 * 48 * 2 * 49 * 49 * 16  # q k^T and attn v, summed over heads
    assert out['patch_embed'] == 3 * 50 * 78 * 16 * 3 * 16
    assert out['stages'][0]['downsample'] == 3 * 25 * 39 * 64 * 32  # 4C -> 2C per merged token
    assert out['stages'][-1]['downsample'] == 0
    assert out['macs'] == out['patch_embed'] + sum(s['macs'] for s in out['stages'])
    assert out['gmacs'] == out['macs'] / 1e9


def test_settings_module_and_config_agree():
    cfg = dict(type='SparseViT', init_cfg=None, drop_path_rate=0.2, out_indices=(1, 2, 3), **TINY)
    model = tiny()
    assert SwinSettings.from_module(model) == SwinSettings.from_config(cfg)
    assert backbone_macs(cfg, (224, 224)) == backbone_macs(model, (224, 224))


def test_ratios_default_to_the_backbones_own():
    model = tiny(pruning_ratios=NON_UNIFORM)
    cfg = dict(TINY, pruning_ratios=NON_UNIFORM)
    pruned = backbone_macs(model, (224, 224))['macs']
    assert pruned == backbone_macs(cfg, (224, 224))['macs'] == backbone_macs(cfg, (224, 224), NON_UNIFORM)['macs']
    assert backbone_macs(cfg, (224, 224), 0)['macs'] == backbone_macs(TINY, (224, 224))['macs'] > pruned


def test_detector_gmacs_swin_t_and_width():
    """Swin-T at 224^2 is 4.5 GMACs (its paper); reduced widths are just smaller ``embed_dims``."""
    swin_t = dict(type='SparseViT', embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24])
    dense = detector_backbone_gmacs(swin_t, (224, 224))
    assert dense == pytest.approx(4.5, abs=0.05)
    narrow = detector_backbone_gmacs(dict(swin_t, embed_dims=72, num_heads=[3, 6, 12, 24]), (224, 224))
    half = detector_backbone_gmacs(dict(swin_t, embed_dims=48), (224, 224))
    assert half < narrow < dense
    assert detector_backbone_gmacs(swin_t, (672, 672), 0.5) < detector_backbone_gmacs(swin_t, (672, 672))


def test_bad_arguments():
    with pytest.raises(TypeError, match='SwinSettings'):
        backbone_macs([96], (224, 224))
    with pytest.raises(ValueError, match='stages'):
        backbone_macs(TINY, (224, 224), [0.5, 0.5])
