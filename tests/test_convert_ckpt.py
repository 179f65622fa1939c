"""tools/convert_ckpt.py: a Swin-Transformer-Object-Detection Mask R-CNN checkpoint -> our configs.

The official checkpoint is built here: a tiny randomised Mask R-CNN (the demo's SparseViT config, every parameter
randomised so that a wrong channel order or a swapped weight changes the outputs) saved in the official repository's
key layout (backbone through ``swin_to_original_format``, output norms, neck and heads unchanged, plus the
optimizer/apex states the official runner saves). Converted, it must load with no missing key and give the saved
model's outputs, in the model and through tools/test.py.
"""
import json
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmcv import Config
from mmdet.models import build_detector

from sparsevit.datasets.synthetic import synthetic_cfg_options
from sparsevit.utils.checkpoint import load_weights
from sparsevit.utils.config import apply_sparsevit_cfg

from helpers import SMALL_TEST_CFG, randomize_, run_python
from reference_sparse_swin import swin_to_original_format
from tool_loader import load_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/demo/mask_rcnn_sparsevit_demo.py'
RATIOS = '[[0.3,0.3],[0,0],[0.1,0.1,0.2,0.2,0.2,0.2],[0,0]]'  # pruned, so the sparse path runs too


def build_model() -> torch.nn.Module:
    cfg = Config.fromfile(osp.join(ROOT, CONFIG))
    cfg.merge_from_dict(SMALL_TEST_CFG)
    apply_sparsevit_cfg(cfg)
    return build_detector(cfg.model, test_cfg=cfg.get('test_cfg')).eval()


def to_official_layout(state: dict) -> dict:
    """Our (mmdet) detector keys -> the official repository's: the backbone as the Swin repo names it, its output
    norms ``norm{i}`` under the same names (the detection repo adds them as mmdet does), neck and heads as they are."""
    backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    official = {f'backbone.{k}': v for k, v in swin_to_original_format(backbone).items()}
    official.update({f'backbone.{k}': v.clone() for k, v in backbone.items() if k.startswith('norm')})
    official.update({k: v.clone() for k, v in state.items() if not k.startswith('backbone.')})
    assert len(official) == len(state)
    return official


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """(model, our-layout checkpoint, official-layout checkpoint, converted checkpoint)."""
    tmp = tmp_path_factory.mktemp('convert')
    model = randomize_(build_model(), seed=3)
    state = model.state_dict()
    meta = dict(CLASSES=('circle', 'square', 'triangle', 'star'), epoch=12)
    ours, official, converted = (str(tmp / name) for name in ('ours.pth', 'official.pth', 'converted.pth'))
    torch.save(dict(state_dict=state, meta=meta), ours)
    torch.save(dict(state_dict=to_official_layout(state), meta=meta, optimizer=dict(state={}, param_groups=[]),
                    amp=dict(loss_scaler0=dict(loss_scale=512.0, unskipped=0))), official)
    proc = run_python('tools/convert_ckpt.py', official, converted)
    assert proc.returncode == 0, proc.stderr
    assert 'backbone weights' in proc.stdout and converted in proc.stdout
    return model, ours, official, converted


def test_official_layout_is_what_the_converter_expects(checkpoints):
    _, _, official, _ = checkpoints
    keys = torch.load(official, weights_only=True)['state_dict'].keys()
    for key in ('backbone.patch_embed.proj.weight', 'backbone.layers.0.blocks.1.attn.relative_position_bias_table',
                'backbone.layers.2.blocks.5.mlp.fc2.weight', 'backbone.layers.1.downsample.reduction.weight',
                'backbone.layers.1.downsample.norm.bias', 'backbone.norm3.weight', 'neck.fpn_convs.0.conv.weight',
                'rpn_head.rpn_cls.weight', 'roi_head.mask_head.conv_logits.weight'):
        assert key in keys, key
    assert not any('stages' in k or 'w_msa' in k or 'ffn' in k for k in keys)


def test_unconverted_checkpoint_does_not_load(checkpoints):
    _, _, official, _ = checkpoints
    with pytest.raises(ValueError, match='weights missing'):
        load_weights(build_model(), official)


def test_converted_weights_equal_the_saved_model(checkpoints):
    model, _, _, converted = checkpoints
    ckpt = torch.load(converted, weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}  # optimizer and amp states dropped
    assert ckpt['meta']['CLASSES'] == ('circle', 'square', 'triangle', 'star')
    state = ckpt['state_dict']
    expected = model.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


def test_converted_model_gives_the_saved_models_outputs(checkpoints):
    model, _, _, converted = checkpoints
    loaded = build_model()
    load_weights(loaded, converted)  # raises on any missing weight
    model.backbone.set_pruning_ratios(json.loads(RATIOS))
    loaded.backbone.set_pruning_ratios(json.loads(RATIOS))
    img = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    meta = [dict(img_shape=(224, 224, 3), ori_shape=(224, 224, 3), pad_shape=(224, 224, 3), scale_factor=1.0,
                 flip=False)]
    with torch.no_grad():
        for a, b in zip(model.extract_feat(img), loaded.extract_feat(img)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        want, got = model.simple_test(img, meta, rescale=True), loaded.simple_test(img, meta, rescale=True)
    (want_boxes, want_masks), (got_boxes, got_masks) = want[0], got[0]
    assert sum(len(b) for b in want_boxes) > 0  # random heads still detect something: the comparison is not empty
    for a, b in zip(want_boxes, got_boxes):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(want_masks, got_masks):
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_test_tool_on_the_converted_checkpoint(checkpoints, synthetic_coco, tmp_path):
    """tools/test.py gives the same detections with the converted checkpoint as with the saved model's."""
    _, ours, _, converted = checkpoints
    test_tool = load_tool('test')
    options = ['--cfg-options', f'pruning_ratios={RATIOS}', 'data.workers_per_gpu=0',
               *(f'{k}={v}' for k, v in SMALL_TEST_CFG.items()),
               *(f'{k}={v}' for k, v in synthetic_cfg_options(synthetic_coco).items())]
    results = []
    for name, ckpt in (('ours', ours), ('converted', converted)):
        out = str(tmp_path / f'{name}.pkl')
        test_tool.main([CONFIG, ckpt, '--out', out, *options])
        with open(out, 'rb') as f:
            results.append(pickle.load(f))
    assert len(results[0]) == len(results[1]) == 4
    assert sum(len(b) for boxes, _ in results[0] for b in boxes) > 0
    for (boxes_a, masks_a), (boxes_b, masks_b) in zip(*results):
        for a, b in zip(boxes_a, boxes_b):
            np.testing.assert_array_equal(a, b)
        assert masks_a == masks_b  # RLE dicts


def test_bad_inputs_give_one_error_line(checkpoints, tmp_path, capsys):
    _, ours, official, _ = checkpoints
    convert = load_tool('convert_ckpt')
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint\n')
    classification = str(tmp_path / 'swin_tiny.pth')
    backbone = {k[len('backbone.'):]: v for k, v in torch.load(ours, weights_only=True)['state_dict'].items()
                if k.startswith('backbone.')}
    torch.save(dict(model=swin_to_original_format(backbone)), classification)
    for src, message in ((str(text), f'cannot read checkpoint {text}: it is not a PyTorch checkpoint'),
                         (ours, "already in mmdet's Swin layout"),
                         (classification, 'classification checkpoint'),
                         (str(tmp_path / 'missing.pth'), 'does not exist'),
                         (official, 'DST must differ from SRC')):
        dst = official if 'SRC' in message else str(tmp_path / 'out.pth')
        with pytest.raises(SystemExit) as exc:
            convert.main([src, dst])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith('convert_ckpt.py: error: ') and message in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / 'out.pth').exists()
