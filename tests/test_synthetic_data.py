"""The synthetic COCO dataset: valid COCO, masks inside boxes, deterministic, idempotent; the demo configs."""
import filecmp
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sparsevit.datasets.synthetic import (SYNTHETIC_CLASSES, generate_synthetic_coco, polygon_area,
                                          shape_polygon, synthetic_cfg_options)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load(root: str, split: str) -> dict:
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


@pytest.mark.parametrize('split', ['train', 'val'])
def test_valid_coco(synthetic_coco, split):
    from pycocotools.coco import COCO
    coco = COCO(osp.join(synthetic_coco, 'annotations', f'instances_{split}.json'))
    assert [coco.cats[i]['name'] for i in sorted(coco.cats)] == list(SYNTHETIC_CLASSES)
    assert sorted(coco.cats) == list(range(1, len(SYNTHETIC_CLASSES) + 1))
    assert len(coco.imgs) == (8 if split == 'train' else 4)
    assert len(coco.anns) >= len(coco.imgs)  # at least one object per image
    assert len({a['id'] for a in coco.anns.values()}) == len(coco.anns)
    for img in coco.imgs.values():
        with Image.open(osp.join(synthetic_coco, split, img['file_name'])) as im:
            assert im.mode == 'RGB' and im.size == (img['width'], img['height']) == (224, 224)
    for ann in coco.anns.values():
        assert ann['iscrowd'] == 0 and ann['category_id'] in coco.cats and ann['image_id'] in coco.imgs
        x, y, w, h = ann['bbox']
        assert w > 10 and h > 10 and x >= 0 and y >= 0 and x + w <= 224 and y + h <= 224


def test_masks_inside_boxes_and_areas_match(synthetic_coco):
    from pycocotools.coco import COCO
    coco = COCO(osp.join(synthetic_coco, 'annotations', 'instances_train.json'))
    for ann in coco.anns.values():
        mask = coco.annToMask(ann).astype(bool)
        ys, xs = np.nonzero(mask)
        x, y, w, h = ann['bbox']
        assert xs.min() >= np.floor(x) - 1 and xs.max() <= np.ceil(x + w) + 1
        assert ys.min() >= np.floor(y) - 1 and ys.max() <= np.ceil(y + h) + 1
        assert abs(mask.sum() - ann['area']) <= 0.1 * ann['area']  # rasterised mask ~ polygon area


def test_objects_do_not_overlap(synthetic_coco):
    from pycocotools.coco import COCO
    coco = COCO(osp.join(synthetic_coco, 'annotations', 'instances_val.json'))
    for img_id in coco.imgs:
        masks = [coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))]
        assert np.stack(masks).sum(0).max() == 1  # each pixel in at most one object mask


def test_deterministic_and_seed_dependent(tmp_path):
    a = generate_synthetic_coco(str(tmp_path / 'a'), num_train=3, num_val=2, img_size=96, seed=7)
    b = generate_synthetic_coco(str(tmp_path / 'b'), num_train=3, num_val=2, img_size=96, seed=7)
    c = generate_synthetic_coco(str(tmp_path / 'c'), num_train=3, num_val=2, img_size=96, seed=8)
    for split in ('train', 'val'):
        assert load(a['root'], split) == load(b['root'], split)
        names = sorted(os.listdir(osp.join(a['root'], split)))
        match, mismatch, errors = filecmp.cmpfiles(osp.join(a['root'], split), osp.join(b['root'], split), names,
                                                   shallow=False)
        assert match == names and not mismatch and not errors
        assert load(a['root'], split)['annotations'] != load(c['root'], split)['annotations']


def test_idempotent_and_repairs_incomplete(tmp_path):
    root = str(tmp_path / 'd')
    first = generate_synthetic_coco(root, num_train=2, num_val=2, img_size=64)
    assert first['generated'] and first['train']['num_images'] == 2
    ann = first['val']['ann_file']
    mtime = os.stat(ann).st_mtime_ns
    again = generate_synthetic_coco(root, num_train=2, num_val=2, img_size=64)
    assert not again['generated'] and os.stat(ann).st_mtime_ns == mtime
    os.remove(osp.join(root, 'val', '000001.png'))  # incomplete: regenerated
    repaired = generate_synthetic_coco(root, num_train=2, num_val=2, img_size=64)
    assert repaired['generated'] and osp.isfile(osp.join(root, 'val', '000001.png'))
    bigger = generate_synthetic_coco(root, num_train=2, num_val=3, img_size=64)  # other parameters: regenerated
    assert bigger['generated'] and bigger['val']['num_images'] == 3


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_train=0), 'num_train'), (dict(num_val=-1), 'num_val'), (dict(img_size=16), 'img_size'),
    (dict(num_train=2.5), 'num_train')])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_synthetic_coco(str(tmp_path), **kwargs)


def test_shapes():
    for name in SYNTHETIC_CLASSES:
        pts = shape_polygon(name, (50, 50), 20, 0.3)
        assert np.all(np.hypot(pts[:, 0] - 50, pts[:, 1] - 50) <= 20 + 1e-6)
        assert polygon_area(pts) > 0
    assert polygon_area(shape_polygon('square', (0, 0), 1, 0)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match='unknown shape'):
        shape_polygon('hexagon', (0, 0), 1, 0)


def test_cfg_options_point_demo_config_at_data(synthetic_coco):
    from mmcv import Config
    from mmdet.datasets import build_dataset
    options = synthetic_cfg_options(synthetic_coco)
    assert set(options) == {f'data.{k}.{f}' for k in ('train', 'val', 'test') for f in ('ann_file', 'img_prefix')}
    cfg = Config.fromfile(osp.join(ROOT, 'configs/demo/mask_rcnn_swin_demo.py'))
    cfg.merge_from_dict(options)
    assert tuple(cfg.data.train.classes) == SYNTHETIC_CLASSES
    train, test = build_dataset(cfg.data.train), build_dataset(cfg.data.test)
    assert len(train) == 8 and len(test) == 4 and train.CLASSES == SYNTHETIC_CLASSES
    sample = train[0]
    assert tuple(sample['img'].data.shape[1:]) == (224, 224)
    assert sample['gt_masks'].data.masks.shape[0] == sample['gt_bboxes'].data.shape[0]


def test_cli(tmp_path):
    out = tmp_path / 'cli'
    cmd = [sys.executable, osp.join(ROOT, 'tools/make_synthetic_data.py'), '--out', str(out), '--num-train', '2',
           '--num-val', '1', '--img-size', '64']
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'generated' in proc.stdout.splitlines()[-1] and osp.isfile(out / 'annotations/instances_val.json')
    bad = subprocess.run(cmd[:-2] + ['--img-size', '8'], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2
    errors = [line for line in bad.stderr.splitlines() if 'error' in line]
    assert len(errors) == 1 and 'img_size' in errors[0]
