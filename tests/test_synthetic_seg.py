"""The synthetic semantic-segmentation dataset: mmseg's CustomDataset layout on disk, deterministic, idempotent,
regenerated when incomplete or other; label maps that follow the objects (class ids, 255 on the outline band only,
background elsewhere); the premise of the 'scene' style on the wide variant; loading with mmseg; bad arguments;
the tool's ``--task seg``."""
import filecmp
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from sparsevit.datasets.synthetic import (CONTRAST_TARGET, SYNTHETIC_CLASSES, Layout, generate_synthetic_coco,
                                          local_contrast_ratio, polygon_mask, render_image)
from sparsevit.datasets.synthetic_seg import (IGNORE_INDEX, SEG_CLASSES, SEG_PALETTE, WIDE_SCENE,
                                              generate_synthetic_seg, synthetic_seg_cfg_options)
from tool_loader import load_tool

#: Objects large enough to hold an interior at 64 px (the short side of the tiny images).
TINY_LAYOUT = Layout(rel_size=(0.3, 0.5), num_objects=(2, 4))
TINY = dict(num_train=3, num_val=2, img_size=(64, 128), seed=0, layout=TINY_LAYOUT, num_search=1)
SPLIT_COUNTS = dict(train=3, val=2, search=1)


@pytest.fixture(scope='module')
def seg(tmp_path_factory) -> dict:
    """The tiny dataset's summary (3 train, 2 val, 1 search image of 64x128, 'scene' style)."""
    return generate_synthetic_seg(str(tmp_path_factory.mktemp('seg')), **TINY)


def files(root: str) -> list:
    """Every file under ``root``, relative, sorted."""
    return sorted(osp.relpath(osp.join(d, f), root) for d, _, names in os.walk(root) for f in names)


def load_labels(path: str) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == 'L'
        return np.asarray(im)


def outline_band(shape: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood (clipped at the edge) holds both ``shape`` and other pixels."""
    h, w = shape.shape
    padded = np.pad(shape, 1, mode='edge')
    views = np.stack([padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)])
    return views.any(axis=0) & ~views.all(axis=0)


def test_layout_on_disk(seg):
    root = seg['root']
    names = [f'{i:06d}.png' for i in range(3)]
    expected = ['meta.json'] + [osp.join(folder, split, name) for folder in ('ann_dir', 'img_dir')
                                for split in sorted(SPLIT_COUNTS) for name in names[:SPLIT_COUNTS[split]]]
    assert files(root) == sorted(expected)
    assert seg['classes'] == SEG_CLASSES == ('background', ) + SYNTHETIC_CLASSES and seg['palette'] == SEG_PALETTE
    assert len(SEG_PALETTE) == len(SEG_CLASSES) and all(len(c) == 3 for c in SEG_PALETTE)
    for split, num in SPLIT_COUNTS.items():
        assert seg[split]['num_images'] == num and seg[split]['img_dir'] == osp.join(root, 'img_dir', split)
        for name in names[:num]:
            with Image.open(osp.join(root, 'img_dir', split, name)) as im:
                assert im.mode == 'RGB' and im.size == (128, 64)  # (width, height)
            labels = load_labels(osp.join(root, 'ann_dir', split, name))
            assert labels.shape == (64, 128) and labels.dtype == np.uint8
            assert set(np.unique(labels)) <= set(range(len(SEG_CLASSES))) | {IGNORE_INDEX}
            assert (labels == 0).mean() > 0.3 and ((labels >= 1) & (labels <= 4)).any() and (labels == 255).any()
    with open(osp.join(root, 'meta.json')) as f:
        meta = json.load(f)
    assert meta['num_images'] == SPLIT_COUNTS and meta['classes'] == list(SEG_CLASSES)
    assert meta['params']['img_size'] == [64, 128] and meta['params']['style'] == 'scene'


def test_deterministic_and_seed_dependent(tmp_path):
    a = generate_synthetic_seg(str(tmp_path / 'a'), **TINY)['root']
    b = generate_synthetic_seg(str(tmp_path / 'b'), **TINY)['root']
    c = generate_synthetic_seg(str(tmp_path / 'c'), **dict(TINY, seed=1))['root']
    names = files(a)
    assert files(b) == names == files(c)
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert match == names and not mismatch and not errors
    _, differ, _ = filecmp.cmpfiles(a, c, names, shallow=False)
    assert set(differ) >= {n for n in names if n.endswith('.png')}


def mtimes(root: str) -> dict:
    return {name: os.stat(osp.join(root, name)).st_mtime_ns for name in files(root)}


def test_idempotent_and_regenerated_when_incomplete_or_other(tmp_path):
    kw = dict(TINY, num_search=0)
    root = generate_synthetic_seg(str(tmp_path / 'd'), **kw)['root']
    before = mtimes(root)
    again = generate_synthetic_seg(root, **kw)
    assert not again['generated'] and mtimes(root) == before and 'search' not in again
    snapshot = {name: open(osp.join(root, name), 'rb').read() for name in files(root)}
    os.remove(osp.join(root, 'meta.json'))  # interrupted: regenerated, the same bytes
    assert generate_synthetic_seg(root, **kw)['generated']
    assert {name: open(osp.join(root, name), 'rb').read() for name in files(root)} == snapshot
    os.remove(osp.join(root, 'ann_dir', 'val', '000001.png'))  # a missing file: its split regenerated
    stamps = mtimes(root)
    assert generate_synthetic_seg(root, **kw)['generated'] and osp.isfile(osp.join(root, 'ann_dir/val/000001.png'))
    after = mtimes(root)
    assert all(after[n] == stamps[n] for n in stamps if '/train/' in n)  # the intact split is kept
    assert generate_synthetic_seg(root, **dict(kw, num_val=3))['val']['num_images'] == 3
    assert generate_synthetic_seg(root, **kw)['generated']  # fewer images: the extra files removed
    assert files(root) == sorted(snapshot)
    other = dict(kw, layout=Layout(rel_size=(0.2, 0.3), num_objects=(1, 2)))  # other parameters: regenerated
    assert generate_synthetic_seg(root, **other)['generated'] and not generate_synthetic_seg(root, **other)['generated']
    with open(osp.join(root, 'meta.json')) as f:
        assert json.load(f)['params']['layout']['rel_size'] == [0.2, 0.3]
    assert generate_synthetic_seg(root, **dict(kw, style='flat'))['generated']


@pytest.mark.parametrize('split, stream', [('train', 0), ('val', 1)])
def test_labels_follow_the_objects(seg, split, stream):
    """Re-render the split's images (its random stream): each shape's pixels carry its class (its centre always),
    255 exactly on the band straddling the outlines, background elsewhere (distractors included); object sizes
    are fractions of the short side, placed across the whole width."""
    rng = np.random.default_rng([TINY['seed'], stream])  # the split's stream
    hw, (lo, hi) = TINY['img_size'], TINY_LAYOUT.rel_size
    centres_x, distractor_pixels = [], 0
    for index in range(SPLIT_COUNTS[split]):
        canvas, objects, distractors = render_image(rng, hw, TINY_LAYOUT, 'scene')
        with Image.open(osp.join(seg[split]['img_dir'], f'{index:06d}.png')) as im:
            np.testing.assert_array_equal(np.asarray(im), np.asarray(canvas))
        labels = load_labels(osp.join(seg[split]['ann_dir'], f'{index:06d}.png'))
        expected = np.zeros(hw, np.uint8)
        for obj in objects:
            expected[polygon_mask([obj['polygon']], hw)] = obj['category_id']
            cx, cy = obj['polygon'].mean(axis=0)  # every shape is centred on its disc
            assert labels[int(cy), int(cx)] == obj['category_id']
            r = np.hypot(*(obj['polygon'] - (cx, cy)).T).max()
            assert lo * 64 / 2 - 0.1 <= r <= hi * 64 / 2 + 0.1  # of the short side
            centres_x.append(cx)
        expected[outline_band(expected > 0)] = IGNORE_INDEX
        np.testing.assert_array_equal(labels, expected)
        dmask = polygon_mask(distractors, hw) if distractors else np.zeros(hw, bool)
        assert not labels[dmask].any()  # distractors are background
        distractor_pixels += int(dmask.sum())
    assert max(centres_x) > 64  # beyond the short side: the whole width is used
    if split == 'train':
        assert distractor_pixels > 0  # there were distractors to leave out


def test_square_images_are_the_coco_datasets(tmp_path):
    """The same seed, split, layout and style: the COCO dataset's images and objects."""
    kw = dict(num_train=2, num_val=1, img_size=64, seed=3, layout=TINY_LAYOUT, style='scene')
    seg = generate_synthetic_seg(str(tmp_path / 's'), **kw)
    coco = generate_synthetic_coco(str(tmp_path / 'c'), **kw)
    with open(coco['train']['ann_file']) as f:
        data = json.load(f)
    for im in data['images']:
        with Image.open(osp.join(coco['train']['img_prefix'], im['file_name'])) as a, \
                Image.open(osp.join(seg['train']['img_dir'], im['file_name'])) as b:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        labels = load_labels(osp.join(seg['train']['ann_dir'], im['file_name']))
        for ann in (a for a in data['annotations'] if a['image_id'] == im['id']):
            cx, cy = np.reshape(ann['segmentation'][0], (-1, 2)).mean(axis=0)
            assert labels[int(cy), int(cx)] == ann['category_id']


def test_wide_scene_premise_and_background(tmp_path):
    """The wide variant at its size: the scene style's premise on the objects of the label maps (the median of 4
    images, at pixels and on the 4 px patch grid), most pixels and most stage-0 windows background."""
    info = generate_synthetic_seg(str(tmp_path / 'w'), num_train=1, num_val=4)
    assert WIDE_SCENE['img_size'] == (512, 1024) and info['val']['num_images'] == 4
    ratios, windows = {1: [], 4: []}, []
    for index in range(4):
        with Image.open(osp.join(info['val']['img_dir'], f'{index:06d}.png')) as im:
            image = np.asarray(im)
        labels = load_labels(osp.join(info['val']['ann_dir'], f'{index:06d}.png'))
        assert image.shape == (512, 1024, 3) and labels.shape == (512, 1024)
        objects = (labels >= 1) & (labels <= 4)
        for patch in ratios:
            ratios[patch].append(local_contrast_ratio(image, objects, patch=patch))
        assert objects.mean() < 0.15
        windows.append((labels[:504, :1008] > 0).reshape(18, 28, 36, 28).any(axis=(1, 3)).mean())
    for patch, values in ratios.items():
        assert np.median(values) >= CONTRAST_TARGET, (patch, values)
    assert max(windows) < 0.5  # most 7x7-token windows of a patch-4 stage 0 hold no object


def test_mmseg_custom_dataset_loads_the_splits(seg):
    from mmcv import Config
    from mmseg.datasets import build_dataset
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
    cfg = Config(dict(data={key: dict(type='CustomDataset', classes=SEG_CLASSES, palette=SEG_PALETTE,
                                      pipeline=pipeline) for key in ('train', 'val', 'test')}))
    cfg.merge_from_dict(synthetic_seg_cfg_options(seg['root'], eval_split='search'))
    train, test = build_dataset(cfg.data.train), build_dataset(cfg.data.test)
    assert len(train) == 3 and len(test) == 1
    assert tuple(train.CLASSES) == SEG_CLASSES and [tuple(c) for c in train.PALETTE] == list(SEG_PALETTE)
    sample = train[0]
    assert sample['img'].shape == (64, 128, 3) and sample['gt_semantic_seg'].shape == (64, 128)
    np.testing.assert_array_equal(sample['gt_semantic_seg'], load_labels(osp.join(seg['train']['ann_dir'],
                                                                                  '000000.png')))
    gt = [train.get_gt_seg_map_by_idx(i) for i in range(len(train))]
    assert all(g.shape == (64, 128) for g in gt)
    metrics = train.evaluate([np.where(g == IGNORE_INDEX, 0, g) for g in gt], metric='mIoU')
    assert metrics['aAcc'] == pytest.approx(1.0)  # the band is ignored: a perfect prediction elsewhere


def test_cfg_options():
    options = synthetic_seg_cfg_options('/data/seg')
    fields = ('data_root', 'img_dir', 'ann_dir', 'img_suffix', 'seg_map_suffix')
    assert set(options) == {f'data.{k}.{f}' for k in ('train', 'val', 'test') for f in fields}
    assert options['data.train.img_dir'] == 'img_dir/train' and options['data.test.ann_dir'] == 'ann_dir/val'
    assert options['data.val.data_root'] == '/data/seg' and options['data.val.img_suffix'] == '.png'
    assert set(synthetic_seg_cfg_options('/d', splits=('train', ))) == {f'data.train.{f}' for f in fields}
    with pytest.raises(ValueError, match='unknown split'):
        synthetic_seg_cfg_options('/d', eval_split='holdout')
    with pytest.raises(ValueError, match='unknown dataset key'):
        synthetic_seg_cfg_options('/d', splits=('train', 'dev'))


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_train=0), 'num_train must be a positive integer, got 0'), (dict(num_val=-1), 'num_val'),
    (dict(num_search=-1), 'num_search'), (dict(num_train=2.5), 'num_train'),
    (dict(img_size=16), r'img_size must be an integer >= 32 or a pair \(height, width\).*got 16'),
    (dict(img_size=(0, 5)), r'img_size.*got \(0, 5\)'), (dict(img_size=(64, 16)), 'img_size'),
    (dict(img_size=(64, )), 'img_size'), (dict(img_size=(64, 128, 3)), 'img_size'),
    (dict(img_size=(64.0, 128)), 'img_size'), (dict(img_size='64'), 'img_size'), (dict(img_size=True), 'img_size'),
    (dict(seed=-1), 'seed must be a non-negative integer'), (dict(style='photo'), "style must be one of.*'photo'"),
    (dict(layout=dict(rel_size=(0.1, 0.2))), 'layout'), (dict(layout=Layout(rel_size=(0.0, 0.1))), 'rel_size')])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_synthetic_seg(str(tmp_path / 'bad'), **dict(TINY, **kwargs))
    assert not osp.exists(tmp_path / 'bad')  # checked before anything is written


def test_tool_seg_task(tmp_path, capsys):
    tool = load_tool('make_synthetic_data')
    out = str(tmp_path / 'tool')
    argv = ['--task', 'seg', '--out', out, '--num-train', '2', '--num-val', '1', '--img-size', '64', '128']
    assert tool.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 'generated' in lines[-1] and out in lines[-1] and lines[0].startswith('train: 2 images')
    with Image.open(osp.join(out, 'img_dir/train/000001.png')) as im:
        assert im.size == (128, 64)
    assert load_labels(osp.join(out, 'ann_dir/val/000000.png')).shape == (64, 128)
    assert tool.main(argv) == 0 and 'reused' in capsys.readouterr().out.splitlines()[-1]
    assert tool.main(argv[:-3] + ['--img-size', '64']) == 0  # one integer: square, regenerated
    assert load_labels(osp.join(out, 'ann_dir/val/000000.png')).shape == (64, 64)
    capsys.readouterr()
    assert tool.main(argv[:-3] + ['--img-size', '0', '5']) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith('make_synthetic_data.py: error: img_size') and '(0, 5)' in err[0]
    with pytest.raises(SystemExit) as exc:
        tool.parse_args(['--task', 'seg', '--img-size', '64', '64', '64'])
    assert exc.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith('make_synthetic_data.py: error:') and 'one or two integers' in err[0]
    assert tool.parse_args([]).task == 'det' and tool.parse_args([]).style == 'flat'
    assert tool.parse_args(['--task', 'seg']).style == 'scene'
