"""sparsevit.analysis.kept_windows and tools/analyze_windows.py: known answers for the token/window mapping (shift,
padding), the tallies, a real backbone whose kept windows are known, random selection at chance, and the tool end to
end on the synthetic COCO data."""
import json
import os.path as osp
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sparsevit.analysis.kept_windows import (ImageTruth, Setting, analyze_images, block_tally, format_markdown,
                                             kept_token_mask, magnitude_tally, selection_tallies, size_bin,
                                             token_pixel_counts, uniform_settings, window_pixel_counts)
from helpers import randomize_layer_norms, selection_record, tiny_backbone
from tool_loader import load_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_sparsevit_demo.py')
H, W = 200, 312  # stage 0: 50x78 tokens, padded to 56x84: an 8x12 window grid (padding at every stage)


pytestmark = pytest.mark.usefixtures('one_cpu_thread')


# zero_bias_backbone(patch_norm=False): a 4-stage SparseViT with random LayerNorms; without ``patch_norm`` and with
# a zero patch-embedding bias, a zero input region has exactly zero stage-0 importance (so L2 keeps the windows with
# any non-zero pixel)
zero_bias_backbone = partial(tiny_backbone, embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=7,
                             patch_norm=False, ln_seed=1, zero_patch_bias=True)


def box_image(rows, cols, area: float):
    """(input [1, 3, H, W]: ones on the box, zeros elsewhere; its ImageTruth)."""
    mask = np.zeros((H, W), dtype=bool)
    mask[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = True
    img = torch.from_numpy(mask).float().expand(1, 3, H, W).contiguous()
    return img, ImageTruth(masks=mask[None], areas=np.array([area]))


def record(keep, grid, shift, hw, stride=4):
    return selection_record(keep, grid, shift, hw, stride)


# ---------------------------------------------------------------------------------------------------- mapping
def test_kept_token_mask_hand_made_shifted_and_padded():
    regular = kept_token_mask(record([[11]], (8, 12), 0, (50, 78)), 7)  # window (0, 11): tokens 0-6 x 77-83
    expected = np.zeros((50, 78), dtype=bool)
    expected[0:7, 77] = True  # columns 78-83 are padding
    np.testing.assert_array_equal(regular, expected)
    # shifted: window w of the map rolled by -3 covers tokens w + 3; the last window (7, 11) wraps to the origin
    shifted = kept_token_mask(record([[5, 5], [0, 95]], (8, 12), 3, (50, 78)), 7, image_index=1)
    expected = np.zeros((50, 78), dtype=bool)
    expected[3:10, 3:10] = True  # window 0
    expected[0:3, 0:3] = True  # window 95: rolled rows 49-55 -> 52-55 (padding), 0-2; columns 80-83 (padding), 0-2
    np.testing.assert_array_equal(shifted, expected)


def test_window_pixel_counts_use_the_backbones_numbering():
    counts = np.zeros((50, 78), dtype=np.int64)
    counts[0, 0], counts[3, 3], counts[49, 77] = 1, 10, 100
    regular = window_pixel_counts(counts, 7, 0)
    shifted = window_pixel_counts(counts, 7, 3)
    assert regular.shape == shifted.shape == (96, )
    assert {i: int(v) for i, v in enumerate(regular) if v} == {0: 11, 95: 100}
    assert {i: int(v) for i, v in enumerate(shifted) if v} == {95: 1, 0: 10, 6 * 12 + 10: 100}  # (46, 74) rolled


def test_token_pixel_counts_and_size_bins():
    mask = np.zeros((10, 9), dtype=bool)
    mask[3:6, 7:9] = True  # rows 3-5 (tokens 0, 1), columns 7-8 (token 1, and 2 at column 8)
    counts = token_pixel_counts(mask, 4, (3, 3))
    np.testing.assert_array_equal(counts, [[0, 1, 1], [0, 2, 2], [0, 0, 0]])
    with pytest.raises(ValueError, match='does not fit'):
        token_pixel_counts(mask, 4, (2, 3))
    assert [size_bin(a) for a in (1023.9, 1024, 9215.9, 9216)] == ['small', 'medium', 'medium', 'large']


@pytest.mark.parametrize('block', [0, 1])  # regular and shifted (rolled) windows, padded grid
def test_kept_token_mask_is_what_the_block_computed(block):
    """Tokens a pruned block changed == the kept-token mask of its record, at 200x312 (padding) on random input."""
    backbone = zero_bias_backbone(patch_norm=True)
    x = torch.randn(2, 3, H, W)
    nhwc, hw = backbone.patch_embed(x)
    nhwc = nhwc.view(2, *hw, -1)
    active = [0.5, 0.99] if block == 0 else [0.0, 0.5]  # 0.99 keeps floor(96 * 0.01) = 0 windows: identity
    idle = [0.99, 0.99] if block == 0 else [0.0, 0.99]
    with torch.no_grad():
        backbone.set_pruning_ratios([active, 0, 0, 0])
        backbone.record_selection = True
        backbone(x)
        rec = backbone.last_selection[0][block]
        backbone.record_selection, backbone.last_selection = False, None
        _, out_active = backbone.forward_stage(0, nhwc)
        backbone.set_pruning_ratios([idle, 0, 0, 0])
        _, out_idle = backbone.forward_stage(0, nhwc)
    assert rec.grid == (8, 12) and tuple(rec.hw) == (50, 78) and rec.shift == 3 * block
    for b in range(2):
        changed = (out_active[b] != out_idle[b]).any(-1).numpy()
        mask = kept_token_mask(rec, 7, b)
        assert mask.sum() > 0
        np.testing.assert_array_equal(changed, mask)


# ---------------------------------------------------------------------------------------------------- tallies
def three_objects() -> ImageTruth:
    """56x56 input, stride 4: 14x14 tokens, 2x2 windows of 28x28 pixels. A in window 0; B in window 1; C in window
    2 and 392 of its 1176 pixels in window 3. Areas (original image) put them in three size bins."""
    masks = np.zeros((3, 56, 56), dtype=bool)
    masks[0, 0:4, 0:4] = True  # A: 16 px, small
    masks[1, 0:28, 28:56] = True  # B: 784 px, area 2000 (a downscaled image): medium
    masks[2, 28:56, 0:42] = True  # C: 1176 px, large
    return ImageTruth(masks=masks, areas=np.array([16.0, 2000.0, 20000.0]))


def test_block_tally_known_answer():
    truth = three_objects()
    t = block_tally(record([[0, 3]], (2, 2), 0, (14, 14)), 0, truth, 7).summary()
    assert t['recall'] == pytest.approx(408 / 1976) and t['precision'] == 1.0
    assert t['recall_by_size'] == pytest.approx(dict(small=1.0, medium=0.0, large=1 / 3))
    assert t['chance_recall'] == pytest.approx(0.5) and t['chance_precision'] == pytest.approx(1.0)
    # shifted window 0 covers tokens 3-9 (pixels 12-39): 16 x 12 pixels of B, 12 x 28 of C
    t = block_tally(record([[0]], (2, 2), 3, (14, 14)), 0, truth, 7).summary()
    assert t['recall'] == pytest.approx((192 + 336) / 1976) and t['precision'] == 1.0


def test_selection_tallies_sum_over_the_batch():
    only_a = ImageTruth(masks=three_objects().masks[:1], areas=np.array([16.0]))
    first, later = record([[0, 3], [1, 3]], (2, 2), 0, (14, 14)), record([[0], [1]], (2, 2), 0, (14, 14))
    selection = [[first, None, later]]  # block 1 dense: no shifted entry; block 2 keeps a prefix: not reported
    tallies = selection_tallies(selection, [three_objects(), only_a], 7)
    assert list(tallies) == [(0, 'regular')]
    block, tally = tallies[(0, 'regular')]
    s = tally.summary()
    assert block == 0 and tally.windows == 8 and tally.kept_windows == 4 and tally.object_windows == 5
    assert s['recall'] == pytest.approx(408 / 1992) and s['precision'] == pytest.approx(0.5)
    assert s['chance_precision'] == pytest.approx((2 * 4 / 4 + 2 * 1 / 4) / 4)
    assert s['recall_by_size']['small'] == pytest.approx(0.5)


def test_magnitude_tally_object_background_and_mixed_tokens():
    mask = np.zeros((8, 6), dtype=bool)  # 2x2 tokens of stride 4; tokens (0, 1) and (1, 1) hold 8 image pixels
    mask[0:4, 4:6] = True  # token (0, 1): all 8 image pixels are object
    mask[4, 0] = True  # token (1, 0): 1 of 16: mixed, in neither group
    m = magnitude_tally(np.array([[1.0, 5.0], [7.0, 3.0]]), ImageTruth(mask[None], np.array([9.0])), 4).summary()
    assert m == dict(object=5.0, background=2.0, ratio=2.5, object_tokens=1, background_tokens=2)


# ---------------------------------------------------------------------------------------------------- backbone
def test_l2_keeps_every_object_window_at_stage_0():
    """Zero background, no patch norm: the 9 windows (of 96) touching the box are the only ones with importance,
    so L2 keeps them all; at 0.9 it keeps exactly 9."""
    backbone = zero_bias_backbone()
    img, truth = box_image((60, 119), (100, 159), 3600.0)  # tokens 15-29 x 25-39: windows 2-4 x 3-5
    result = analyze_images(backbone, [(img, [truth])], uniform_settings([0.5, 0.9]))
    half, most = (s['stages'] for s in result['settings'])
    for kind in ('regular', 'shifted'):  # shifted: tokens 12-26 x 22-36 of the rolled map, windows 1-3 x 3-5
        e = half[0][kind]
        assert (e['windows'], e['kept_windows'], e['block']) == (96, 48, 0 if kind == 'regular' else 1)
        assert e['l2']['recall'] == 1.0 and e['l2']['precision'] == pytest.approx(9 / 48)
        assert e['object_window_fraction'] == pytest.approx(9 / 96) and e['chance']['recall'] == 0.5
        assert e['l2']['recall_by_size'] == dict(small=None, medium=1.0, large=None)
        assert e['random'] is None
        assert most[0][kind]['kept_windows'] == 9
        assert most[0][kind]['l2']['recall'] == 1.0 and most[0][kind]['l2']['precision'] == 1.0
    mag = half[0]['input_magnitude']
    assert mag['background'] == 0.0 and mag['object'] > 0 and mag['ratio'] is None
    assert mag['object_tokens'] == 15 * 15 and mag['background_tokens'] == 50 * 78 - 15 * 15
    assert half[0]['input'] == 'patch embedding (no norm)' and half[3]['stride'] == 32
    assert result['num_objects'] == 1 and result['objects_by_size']['medium'] == 1
    assert result['input_sizes'] == [[H, W]]


def test_known_importance_every_stage(monkeypatch):
    """Importance forced to the box (max-pooled to each stage's grid, built without the module's helpers): every
    kind at every stage keeps all object windows; precision = object windows (counted by hand) / kept."""
    from sparsevit.models.backbones.sparse_swin import SparseSwinTransformer
    img, truth = box_image((60, 119), (100, 159), 3600.0)
    maps = {}
    for stride in (4, 8, 16, 32):
        pooled = F.max_pool2d(torch.from_numpy(truth.masks).float(), stride, stride, ceil_mode=True)[0]
        h, w = pooled.shape
        maps[(h, w)] = pooled
        maps[(h + (-h) % 7, w + (-w) % 7)] = F.pad(pooled, (0, (-w) % 7, 0, (-h) % 7))

    def importance(x, pad_map):
        return maps[tuple(x.shape[1:3])].expand(x.shape[0], -1, -1).clone()

    monkeypatch.setattr(SparseSwinTransformer, '_importance', staticmethod(importance))
    result = analyze_images(zero_bias_backbone(patch_norm=True), [(img, [truth])], [Setting('uniform 0.3', 0.3)])
    stages = result['settings'][0]['stages']
    expected = {0: (67, 9, 9), 1: (16, 4, 4), 2: (4, 4, 1), 3: (1, 1, 1)}  # kept, object windows reg. / shifted
    for i, (kept, regular, shifted) in expected.items():
        for kind, n in (('regular', regular), ('shifted', shifted)):
            e = stages[i][kind]
            assert e['kept_windows'] == kept and e['l2']['recall'] == 1.0, (i, kind)
            assert e['l2']['precision'] == pytest.approx(n / kept), (i, kind)


def test_record_forward_importance_is_mean_abs_of_each_stage_input():
    """Against the stage inputs as ``forward_stage`` received them (``selection_agreement.record_selections``), with
    pruning that writes into the stage map in place (no padding at 224: stage inputs are not copied)."""
    from sparsevit.analysis.kept_windows import record_forward
    from sparsevit.analysis.selection_agreement import record_selections
    backbone = zero_bias_backbone(patch_norm=True)
    backbone.set_pruning_ratios(0.5)
    img = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    selection, importance = record_forward(backbone, img)
    reference, inputs = record_selections(backbone, img)
    assert [m.shape for m in importance] == [(2, 56, 56), (2, 28, 28), (2, 14, 14), (2, 7, 7)]
    for i, (imp, x) in enumerate(zip(importance, inputs)):
        np.testing.assert_allclose(imp, x.abs().mean(-1).numpy(), rtol=1e-6, err_msg=f'stage {i}')
        for rec, ref in zip(selection[i], reference[i]):
            torch.testing.assert_close(rec.keep, ref.keep)


def test_random_selection_is_at_chance_and_settings_are_restored():
    """The backbone's random selection over 24 seeds: recall ~ k / nW, precision ~ object windows / nW, while L2
    keeps every object window (32 of 96 at stage 0)."""
    backbone = zero_bias_backbone()
    backbone.set_pruning_ratios(0.1)
    backbone.selection_calls = 5
    img, truth = box_image((40, 139), (40, 239), 20000.0)  # tokens 10-34 x 10-59: windows 1-4 x 1-8
    result = analyze_images(backbone, [(img, [truth])], uniform_settings([0.5]), random_seeds=range(24))
    for kind in ('regular', 'shifted'):
        e = result['settings'][0]['stages'][0][kind]
        rnd = e['random']
        assert rnd['seeds'] == 24 and e['l2']['recall'] == 1.0
        assert rnd['recall'] == pytest.approx(e['chance']['recall'], abs=0.06) and e['chance']['recall'] == 0.5
        assert 0.02 < rnd['recall_std'] < 0.3, 'seeds must keep different windows'
        assert rnd['precision'] == pytest.approx(e['object_window_fraction'], abs=0.06)
        assert rnd['recall_by_size']['large'] == pytest.approx(rnd['recall'])
    assert backbone.pruning_ratios[0] == (0.1, 0.1) and backbone.window_selection == 'l2'
    assert backbone.selection_calls == 5 and not backbone.record_selection and backbone.last_selection is None


# ---------------------------------------------------------------------------------------------------- tool
@pytest.fixture(scope='module')
def demo(synthetic_coco, tmp_path_factory):
    """(cfg-options arguments, checkpoint) of the demo detector, random weights and LayerNorms, synthetic data."""
    from mmcv import Config
    from mmdet.models import build_detector
    from sparsevit.datasets.synthetic import synthetic_cfg_options
    from sparsevit.utils.config import apply_sparsevit_cfg
    options = synthetic_cfg_options(synthetic_coco)
    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict(options)
    apply_sparsevit_cfg(cfg)
    torch.manual_seed(0)
    model = build_detector(cfg.model)
    model.init_weights()
    randomize_layer_norms(model.backbone, 2)
    ckpt = str(tmp_path_factory.mktemp('ckpt') / 'demo_random.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(CLASSES=('circle', 'square', 'triangle', 'star'))),
               ckpt)
    return ['--cfg-options', *[f'{k}={v}' for k, v in options.items()]], ckpt


def fractions(entry: dict):
    """Every share of a block entry (None only where undefined: nothing kept, no object of a size)."""
    for group in ('l2', 'random', 'chance'):
        yield from (entry[group][key] for key in ('recall', 'precision'))
    yield from (v for g in ('l2', 'random') for v in entry[g]['recall_by_size'].values())
    yield from (entry['kept_fraction'], entry['object_window_fraction'])


def test_tool_end_to_end(demo, tmp_path, capsys):
    options, ckpt = demo
    out_json, out_md = str(tmp_path / 'out' / 'kept.json'), str(tmp_path / 'kept.md')
    tool = load_tool('analyze_windows')
    rc = tool.main([DEMO, ckpt, '--split', 'val', '--ratios', '0.5', '0.7', '--num-images', '2', '--random-seeds',
                    '2', '--device', 'cpu', '--json', out_json, '--markdown', out_md, *options])
    printed = capsys.readouterr().out
    assert rc == 0
    result = json.load(open(out_json))
    assert {'config', 'checkpoint', 'split', 'definitions', 'window_size', 'num_images', 'num_objects',
            'objects_by_size', 'random_seeds', 'input_sizes', 'settings'} <= set(result)
    assert result['num_images'] == 2 and result['random_seeds'] == [0, 1] and result['input_sizes'] == [[224, 224]]
    assert result['num_objects'] == sum(result['objects_by_size'].values()) > 0
    assert [s['name'] for s in result['settings']] == ['uniform 0.5', 'uniform 0.7']
    for setting in result['settings']:
        assert [s['stride'] for s in setting['stages']] == [4, 8, 16, 32]
        for stage in setting['stages']:
            assert stage['input_magnitude']['object'] > 0 and stage['input_magnitude']['background'] > 0
            for kind in ('regular', 'shifted'):
                entry = stage[kind]
                assert entry['prune_ratio'] == float(setting['name'].split()[1]) and entry['random']['seeds'] == 2
                values = list(fractions(entry))
                assert all(v is None or 0.0 <= v <= 1.0 for v in values), (stage['stage'], kind, values)
                assert (entry['l2']['precision'] is None) == (entry['kept_windows'] == 0)
                assert entry['l2']['recall'] is not None
                assert entry['chance']['recall'] == pytest.approx(entry['kept_fraction'])
    stage0 = result['settings'][0]['stages'][0]
    assert stage0['input'] == 'patch embedding after its LayerNorm'
    assert stage0['input_magnitude']['object'] > 0 and stage0['input_magnitude']['background'] > 0
    assert result['settings'][0]['stages'][3]['regular']['kept_windows'] == 0  # 1 window at 224: floor(0.5) = 0
    assert [(s['regular']['block'], s['shifted']['block']) for s in result['settings'][0]['stages']] == [(0, 1)] * 4
    assert result['settings'][0]['stages'][0]['regular']['kept_windows'] == 2 * 32  # 8x8 windows, keep 32 each
    assert result['settings'][1]['stages'][0]['regular']['kept_windows'] == 2 * 19  # floor(64 * 0.3)
    assert open(out_md).read() == printed == format_markdown(result)
    assert printed.count('| uniform 0.5 | 0 | 0 (regular) | 64 / 128 |') == 1


def test_tool_bad_input_one_line(demo, tmp_path, capsys):
    options, ckpt = demo
    tool = load_tool('analyze_windows')
    assert tool.main([str(tmp_path / 'missing.py'), ckpt]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('analyze_windows.py: error: config file not found') and '\n' not in err
    assert tool.main([DEMO, ckpt, '--num-images', '1', *options]) == 2  # the demo config is dense: no ratios
    err = capsys.readouterr().err.strip()
    assert err.startswith('analyze_windows.py: error: ') and 'prune nothing' in err and '\n' not in err
    with pytest.raises(SystemExit) as exit_info:
        tool.main([DEMO, ckpt, '--ratios', '1.5'])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith('analyze_windows.py: error: argument --ratios')
    assert '\n' not in err
