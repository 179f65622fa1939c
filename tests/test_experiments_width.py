"""The reduced-width baselines (sparsevit.experiments.width): factors, embed dims that the heads still divide, the
config options of the narrower detector (it builds, its FPN takes the backbone's channels) and its compute."""
import argparse
import os.path as osp

import pytest
import torch

from sparsevit.experiments.width import (parse_widths, width_embed_dims, width_name, width_options,
                                         width_overrides)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DENSE_CFG = osp.join(ROOT, 'configs/experiments/mask_rcnn_swin_small_objects.py')


def test_parse_widths():
    assert parse_widths('0.75 0.5') == parse_widths('0.75,0.5') == (0.75, 0.5)
    assert parse_widths('') == parse_widths(' none ') == ()
    for bad, match in (('1.5', r'in \(0, 1\)'), ('0', r'in \(0, 1\)'), ('half', 'not a number'),
                       ('0.5 0.5', 'twice')):
        with pytest.raises(ValueError, match=match):
            parse_widths(bad)
    assert width_name(0.75) == 'width0.75' and width_name(0.5) == 'width0.5'


def test_width_dims_keep_the_heads_dividing():
    heads = [1, 2, 4, 8]  # the experiments' model: 32 embed dims, one head of 32 channels per 32
    assert width_embed_dims(32, heads, 0.75) == 24 and width_embed_dims(32, heads, 0.5) == 16
    assert width_embed_dims(96, [3, 6, 12, 24], 0.5) == 48  # Swin-T: heads of 16 channels
    with pytest.raises(ValueError, match='stage 0 would have 19 channels'):
        width_embed_dims(32, [2, 4, 8, 16], 0.6)
    with pytest.raises(ValueError, match='no channel'):
        width_embed_dims(32, heads, 0.01)


def test_width_options_build_a_narrower_detector():
    from mmcv import Config, DictAction
    from mmdet.models import build_detector
    import sparsevit  # noqa: F401  (registers SparseViT)
    from sparsevit.analysis.compute import detector_backbone_gmacs
    cfg = Config.fromfile(DENSE_CFG)
    backbone = dict(cfg.model.backbone)
    assert backbone['embed_dims'] == 32 and list(backbone['num_heads']) == [1, 2, 4, 8]
    options = width_options(backbone, 0.75)
    assert options == ['model.backbone.embed_dims=24', 'model.neck.in_channels=[24,48,96,192]']
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', *width_options(backbone, 0.5)]).cfg_options)
    assert cfg.model.backbone.embed_dims == 16 and cfg.model.neck.in_channels == [16, 32, 64, 128]
    assert list(cfg.model.backbone.num_heads) == [1, 2, 4, 8]  # heads kept
    model = build_detector(cfg.model).eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 64, 64))  # the FPN takes the narrower stages
    assert len(feats) == 5 and feats[0].shape[1] == cfg.model.neck.out_channels
    full = detector_backbone_gmacs(backbone, (448, 448), 0)
    three_quarters = detector_backbone_gmacs(dict(backbone, **width_overrides(backbone, 0.75)), (448, 448), 0)
    half = detector_backbone_gmacs(dict(backbone, **width_overrides(backbone, 0.5)), (448, 448), 0)
    assert half < three_quarters < full and 0.5 < three_quarters / full < 0.65 and 0.2 < half / full < 0.35
