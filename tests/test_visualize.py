"""tools/visualize_sparsity.py (sparsevit.analysis.sparsity_figure): token masks match what the backbone computes;
the tool writes the PNG; on a segmentation config, with the predicted label map beside the kept windows."""
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import run, selection_record
from tool_loader import load_tool

from sparsevit.analysis.sparsity_figure import DIM, UNKNOWN_COLOUR, colorize, dim_image, grid_shape, stage_panel

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'visualize_sparsity.py')
SPARSE_CFG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_sparsevit_demo.py')
SEG_CFG = osp.join(ROOT, 'configs', 'demo', 'upernet_sparsevit_demo_seg.py')


def test_stage_panel_and_dimming():
    rec = lambda keep, shift: selection_record([keep], (2, 2), shift, (14, 14), stride=4)
    assert stage_panel([None, None], [0, 0], 7) is None
    panel = stage_panel([rec([0, 3], 0), rec([0], 3), rec([3], 0)], [0.5, 0.7, 0.7], 7)
    assert panel['blocks'] == [0, 1, 2] and panel['outline'] == 2 and panel['stride'] == 4
    cov = panel['coverage']
    assert cov[0, 0] == pytest.approx(1 / 3)  # window 0 by block 0; block 1's shifted window 0 starts at (3, 3)
    assert cov[8, 8] == pytest.approx(1.0)  # window 3 of blocks 0 and 2, block 1's rolled window 0 (3..9)
    assert cov[10, 10] == pytest.approx(2 / 3)  # not in block 1's window
    assert cov[0, 10] == 0
    image = np.full((56, 56, 3), 200, np.uint8)
    dimmed = dim_image(image, cov, 4)
    assert dimmed[0, 40, 0] == int(200 * DIM) and dimmed[32, 32, 0] == 200


def test_tool_writes_png(tmp_path, synthetic_coco):
    from mmdet.models import build_detector
    from mmcv import Config
    import sparsevit  # noqa: F401
    cfg = Config.fromfile(SPARSE_CFG)
    ckpt = tmp_path / 'random.pth'
    torch.save(dict(state_dict=build_detector(cfg.model).state_dict(), meta=dict()), ckpt)
    image = osp.join(synthetic_coco, 'val', '000000.png')
    out = tmp_path / 'vis' / 'sparsity.png'
    cmd = [sys.executable, TOOL, SPARSE_CFG, str(ckpt), image, '--out', str(out), '--device', 'cpu',
           '--cfg-options', 'pruning_ratios=[[0.5,0.5],[0,0],[0.2,0.2,0.4,0.4,0.5,0.5],[0,0]]']
    proc = run(cmd, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f'2 pruning stage(s) drawn: {out}'
    with Image.open(out) as im:
        assert im.size[0] > 2 * im.size[1]  # input + 2 stage panels side by side
    # no checkpoint (random weights), ratios on the command line
    proc = run([sys.executable, TOOL, SPARSE_CFG, image, '--out', str(out), '--device', 'cpu',
                '--pruning-ratios', '0.3'], timeout=180)
    assert proc.returncode == 0 and '4 pruning stage(s)' in proc.stdout, proc.stderr


def test_bad_paths_in_process(capsys, tmp_path, synthetic_coco):
    tool = load_tool('visualize_sparsity')
    image = osp.join(synthetic_coco, 'val', '000000.png')
    for argv, expect in (([SPARSE_CFG, str(tmp_path / 'no.pth'), image], 'checkpoint file not found'),
                         ([SPARSE_CFG, str(tmp_path / 'no.png')], 'image file not found'),
                         ([osp.join(ROOT, 'configs/demo/mask_rcnn_swin_demo.py'), image], 'visualising needs'),
                         ([SPARSE_CFG, image, '--pruning-ratios', '0'], 'nothing to draw'),
                         ([SPARSE_CFG, image, '--pruning-ratios', '2'], 'allowed range is [0, 1)')):
        if '--pruning-ratios' not in argv:
            argv = argv + ['--pruning-ratios', '0.5']
        assert tool.main(argv + ['--out', str(tmp_path / 'x.png'), '--device', 'cpu']) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expect in err[0]


def test_colorize_and_grid_shape():
    palette = [(0, 0, 0), (220, 20, 60), (0, 130, 200)]
    labels = np.array([[0, 1], [2, 255]])
    rgb = colorize(labels, palette)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert [tuple(rgb[0, 1]), tuple(rgb[1, 0]), tuple(rgb[1, 1])] == [(220, 20, 60), (0, 130, 200), UNKNOWN_COLOUR]
    assert grid_shape(5, 1.0) == (1, 5)  # square images: one row, as before
    assert grid_shape(4, 2.0) == (2, 2) and grid_shape(5, 2.0) == (3, 2) and grid_shape(2, 2.0) == (1, 2)


def test_tool_on_a_segmentation_config_draws_the_label_map(tmp_path, synthetic_seg):
    """Random weights, 2 pruning stages: the input and its predicted label map (palette colours), then the 2 stage
    panels, two per row (the 64x128 image is wide)."""
    pytest.importorskip('mmseg')
    from sparsevit.datasets.synthetic_seg import SEG_PALETTE, synthetic_seg_cfg_options
    image = osp.join(synthetic_seg, 'img_dir', 'val', '000000.png')
    out = tmp_path / 'seg_sparsity.png'
    options = [f'{k}={v}' for k, v in synthetic_seg_cfg_options(synthetic_seg).items()]
    proc = run([sys.executable, TOOL, SEG_CFG, image, '--out', str(out), '--device', 'cpu', '--pruning-ratios',
                '[[0.5,0.5],[0,0],[0.2,0.2,0.4,0.4,0.5,0.5],[0,0]]', '--cfg-options',
                'data.test.pipeline.1.img_scale=(128,64)', *options], timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f'2 pruning stage(s) drawn: {out}'
    with Image.open(out) as im:
        pixels = np.asarray(im.convert('RGB'))
    h, w = pixels.shape[:2]
    assert 0.6 * w < h < 1.2 * w  # 2 rows of 2 wide panels (one row of 4 would be ~8x wider than high)
    flat = pixels.reshape(-1, 3)
    in_palette = np.zeros(len(flat), bool)
    for colour in SEG_PALETTE:
        in_palette |= (flat == colour).all(axis=1)
    assert in_palette.mean() > 0.08  # the label-map panel: about a sixth of the figure in pure palette colours
