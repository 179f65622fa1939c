"""The synthetic COCO dataset: valid COCO, masks inside boxes, deterministic, idempotent; the demo configs; the
small-objects variant of the experiments (sizes, counts, clusters, background), the held-out search split and the
'scene' style (its image statistics: tests/test_synthetic_premise.py)."""
import filecmp
import hashlib
import json
import math
import os
import os.path as osp
import sys

import numpy as np
import pytest
from PIL import Image

from sparsevit.datasets.synthetic import (DEMO_LAYOUT, SMALL_OBJECTS, SYNTHETIC_CLASSES, Layout,
                                          generate_synthetic_coco, polygon_area, shape_polygon, synthetic_cfg_options)

from helpers import run

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


@pytest.fixture(scope='module')
def scene_coco(tmp_path_factory) -> str:
    """Data root of a tiny dataset of the 'scene' style (textured objects, distractors), as ``synthetic_coco``."""
    root = tmp_path_factory.mktemp('scene_coco')
    return generate_synthetic_coco(str(root), num_train=8, num_val=4, img_size=224, seed=0, style='scene')['root']


@pytest.mark.parametrize('dataset', ['synthetic_coco', 'scene_coco'])
def test_masks_inside_boxes_and_areas_match(dataset, request):
    from pycocotools.coco import COCO
    coco = COCO(osp.join(request.getfixturevalue(dataset), 'annotations', 'instances_train.json'))
    for ann in coco.anns.values():
        mask = coco.annToMask(ann).astype(bool)
        ys, xs = np.nonzero(mask)
        x, y, w, h = ann['bbox']
        assert xs.min() >= np.floor(x) - 1 and xs.max() <= np.ceil(x + w) + 1
        assert ys.min() >= np.floor(y) - 1 and ys.max() <= np.ceil(y + h) + 1
        assert abs(mask.sum() - ann['area']) <= 0.1 * ann['area']  # rasterised mask ~ polygon area


@pytest.mark.parametrize('dataset', ['synthetic_coco', 'scene_coco'])
def test_objects_do_not_overlap(dataset, request):
    from pycocotools.coco import COCO
    coco = COCO(osp.join(request.getfixturevalue(dataset), 'annotations', 'instances_val.json'))
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
    (dict(num_train=2.5), 'num_train'), (dict(style='photo'), 'style'), (dict(style=None), 'style')])
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
    proc = run(cmd, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'generated' in proc.stdout.splitlines()[-1] and osp.isfile(out / 'annotations/instances_val.json')
    bad = run(cmd[:-2] + ['--img-size', '8'], timeout=120)
    assert bad.returncode == 2
    errors = [line for line in bad.stderr.splitlines() if 'error' in line]
    assert len(errors) == 1 and 'img_size' in errors[0]
    scene = run(cmd + ['--style', 'scene'], timeout=120)
    assert scene.returncode == 0 and 'generated' in scene.stdout.splitlines()[-1]  # the other style: regenerated
    assert load(str(out), 'val')['info']['style'] == 'scene'
    from tools.make_synthetic_data import parse_args
    assert parse_args(['--style', 'scene']).style == 'scene' and parse_args([]).style == 'flat'
    with pytest.raises(SystemExit) as exc:
        parse_args(['--style', 'photo'])
    assert exc.value.code == 2


# ----------------------------------------------------------------------------------------------------------------
# The demo's dataset is pinned; the experiments' variant has the properties it is designed for
# ----------------------------------------------------------------------------------------------------------------
#: sha256 of a tiny default dataset (annotation files + decoded pixels), from the generator before layouts existed:
#: the demo's data (and its measured results) must not change when the generator gains parameters.
DEMO_DIGEST = 'a424827fe8c3fb0be4da38876fe74bdd1e783cf29ffb45d1204ca35694764aed'


def digest(root: str) -> str:
    h = hashlib.sha256()
    for split in ('train', 'val'):
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'rb') as f:
            h.update(f.read())
        for name in sorted(os.listdir(osp.join(root, split))):
            with Image.open(osp.join(root, split, name)) as im:
                h.update(np.asarray(im).tobytes())
    return h.hexdigest()


def test_demo_dataset_unchanged(tmp_path):
    info = generate_synthetic_coco(str(tmp_path / 'd'), num_train=3, num_val=2, img_size=96, seed=0)
    assert digest(info['root']) == DEMO_DIGEST
    explicit = generate_synthetic_coco(str(tmp_path / 'e'), num_train=3, num_val=2, img_size=96, seed=0,
                                       layout=Layout(), num_search=0, style='flat')
    assert digest(explicit['root']) == DEMO_DIGEST and 'search' not in explicit
    assert set(load(info['root'], 'val')['info']) == {'description', 'version', 'seed', 'img_size', 'num_images',
                                                      'split'}  # no layout or style keys for the demo


@pytest.fixture(scope='module')
def small_objects(tmp_path_factory):
    """The experiments' layout at a reduced size (fast), with a search split, and the same without clustering."""
    root = tmp_path_factory.mktemp('small_objects')
    layout = SMALL_OBJECTS['layout']
    info = generate_synthetic_coco(str(root / 'clustered'), num_train=24, num_val=2, img_size=224, seed=0,
                                   layout=layout, num_search=3)
    spread = generate_synthetic_coco(str(root / 'spread'), num_train=24, num_val=2, img_size=224, seed=0,
                                     layout=Layout(layout.rel_size, layout.num_objects, cluster_prob=0.0))
    return info, spread


def discs(data: dict) -> dict:
    """Per image, (cx, cy, r) of each object's circumscribed disc (the polygon's vertices are on the circle)."""
    out = {}
    for ann in data['annotations']:
        pts = np.asarray(ann['segmentation'][0]).reshape(-1, 2)
        c = pts.mean(0)  # every shape is a regular polygon (the star: two) centred on the disc
        r = float(np.hypot(*(pts - c).T).max())
        out.setdefault(ann['image_id'], []).append((float(c[0]), float(c[1]), r))
    return out


def test_small_objects_sizes_and_counts(small_objects):
    info, _ = small_objects
    data = load(info['root'], 'train')
    layout, size = SMALL_OBJECTS['layout'], 224
    assert SMALL_OBJECTS['img_size'] == 448 and layout.rel_size == (0.04, 0.12)
    counts = [len(v) for v in discs(data).values()]
    assert len(counts) == 24 and min(counts) >= layout.num_objects[0] and max(counts) <= layout.num_objects[1]
    assert max(counts) - min(counts) >= 4  # the count varies over the range
    for objects in discs(data).values():
        for _, _, r in objects:
            assert layout.rel_size[0] * size / 2 - 0.1 <= r <= layout.rel_size[1] * size / 2 + 0.1
    for ann in data['annotations']:  # every box inside the image and at most 12 % of the side
        x, y, w, h = ann['bbox']
        assert x >= 0 and y >= 0 and x + w <= size and y + h <= size and max(w, h) <= 0.12 * size + 0.1
    areas = np.array([a['area'] for a in data['annotations']]) * (448 / size) ** 2  # at the experiments' 448 px
    assert (areas < 32 ** 2).mean() > 0.5 and (areas >= 32 ** 2).any()  # mostly COCO-small, some medium


def clustered_fraction(data: dict, size: int, gap: float) -> float:
    """Share of objects whose edge is within ``2 + gap * size`` px of another object's edge."""
    near = total = 0
    for objects in discs(data).values():
        for i, (x, y, r) in enumerate(objects):
            total += 1
            near += any(math.hypot(x - px, y - py) - r - pr <= 2 + gap * size + 0.5
                        for j, (px, py, pr) in enumerate(objects) if j != i)
    return near / total


def test_small_objects_clusters_and_background(small_objects):
    from pycocotools.coco import COCO
    info, spread = small_objects
    gap = SMALL_OBJECTS['layout'].cluster_gap
    clustered = clustered_fraction(load(info['root'], 'train'), 224, gap)
    independent = clustered_fraction(load(spread['root'], 'train'), 224, gap)
    assert clustered >= 0.5 and clustered > independent + 0.25, (clustered, independent)
    coco = COCO(info['train']['ann_file'])
    for img_id in list(coco.imgs)[:8]:
        masks = np.stack([coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))])
        assert masks.sum(0).max() == 1  # no overlap, even in clusters
        union = masks.max(0)
        assert union.mean() < 0.15  # most of the image is background
        windows = union.reshape(8, 28, 8, 28).max(axis=(1, 3))  # 7x7-token windows of a patch-4 stage 0
        assert windows.mean() < 0.5  # most windows hold no object


def test_search_split_and_options(small_objects, tmp_path):
    info, _ = small_objects
    assert info['search']['num_images'] == 3 and osp.isfile(info['search']['ann_file'])
    search, val = load(info['root'], 'search'), load(info['root'], 'val')
    assert search['info']['split'] == 'search' and search['info']['rel_size'] == [0.04, 0.12]
    assert search['annotations'] != val['annotations'][:len(search['annotations'])]
    no_search = generate_synthetic_coco(str(tmp_path / 'n'), num_train=24, num_val=2, img_size=224, seed=0,
                                        layout=SMALL_OBJECTS['layout'])
    for split in ('train', 'val'):  # the search split leaves the others unchanged
        assert load(no_search['root'], split) == load(info['root'], split)
    options = synthetic_cfg_options(info['root'], eval_split='search')
    assert options['data.test.ann_file'].endswith('instances_search.json')
    assert options['data.val.img_prefix'].endswith('/search/')
    assert options['data.train.ann_file'].endswith('instances_train.json')
    with pytest.raises(ValueError, match='unknown split'):
        synthetic_cfg_options(info['root'], eval_split='holdout')


def test_layout_change_regenerates(tmp_path):
    root = str(tmp_path / 'l')
    assert generate_synthetic_coco(root, num_train=2, num_val=1, img_size=64)['generated']
    other = Layout(rel_size=(0.1, 0.2), num_objects=(2, 4))
    assert generate_synthetic_coco(root, num_train=2, num_val=1, img_size=64, layout=other)['generated']
    assert not generate_synthetic_coco(root, num_train=2, num_val=1, img_size=64, layout=other)['generated']
    assert load(root, 'train')['info']['num_objects'] == [2, 4]


@pytest.mark.parametrize('kwargs, match', [
    (dict(layout=Layout(rel_size=(0.0, 0.1))), 'rel_size'), (dict(layout=Layout(rel_size=(0.3, 0.2))), 'rel_size'),
    (dict(layout=Layout(num_objects=(0, 3))), 'num_objects'), (dict(layout=Layout(num_objects=(2.5, 3))),
                                                               'num_objects'),
    (dict(layout=Layout(cluster_prob=1.5)), 'cluster_prob'), (dict(layout=Layout(cluster_gap=-0.1)), 'cluster_gap'),
    (dict(num_search=-1), 'num_search'), (dict(layout=dict(rel_size=(0.1, 0.2))), 'layout')])
def test_bad_layout(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_synthetic_coco(str(tmp_path), num_train=1, num_val=1, img_size=64, **kwargs)
    assert DEMO_LAYOUT == Layout()


# ----------------------------------------------------------------------------------------------------------------
# The 'scene' style: deterministic, its own dataset (the style is in the key), other pixels, the same geometry
# ----------------------------------------------------------------------------------------------------------------
def test_scene_style_deterministic_and_keyed(tmp_path):
    kw = dict(num_train=3, num_val=2, img_size=96, seed=0, style='scene')
    a = generate_synthetic_coco(str(tmp_path / 'a'), **kw)
    b = generate_synthetic_coco(str(tmp_path / 'b'), **kw)
    assert digest(a['root']) == digest(b['root']) != DEMO_DIGEST
    info = load(a['root'], 'val')['info']
    assert info['style'] == 'scene' and set(info) == {'description', 'version', 'seed', 'img_size', 'num_images',
                                                      'split', 'style'}
    assert not generate_synthetic_coco(a['root'], **kw)['generated']  # reused
    flat = dict(kw, style='flat')
    assert generate_synthetic_coco(a['root'], **flat)['generated']  # a scene dataset is not the demo's
    assert digest(a['root']) == DEMO_DIGEST and 'style' not in load(a['root'], 'train')['info']
    assert not generate_synthetic_coco(a['root'], **flat)['generated']
    assert generate_synthetic_coco(a['root'], **kw)['generated'] and digest(a['root']) == digest(b['root'])


def test_other_parameters_are_not_reused(tmp_path):
    """A dataset written with a non-default layout is not taken for the demo's (extra info keys mismatch too)."""
    root = str(tmp_path / 'o')
    other = Layout(rel_size=(0.1, 0.2), num_objects=(2, 4))
    assert generate_synthetic_coco(root, num_train=2, num_val=1, img_size=64, layout=other)['generated']
    assert generate_synthetic_coco(root, num_train=2, num_val=1, img_size=64)['generated']
    assert 'num_objects' not in load(root, 'train')['info']


def test_scene_style_small_objects_keeps_the_layout(tmp_path):
    """The style changes pixels only: the objects' sizes, counts and clusters follow the layout as in 'flat'."""
    layout = SMALL_OBJECTS['layout']
    scene = generate_synthetic_coco(str(tmp_path / 's'), num_train=6, num_val=1, img_size=224, seed=0,
                                    layout=layout, style='scene')
    data = load(scene['root'], 'train')
    assert data['info']['style'] == 'scene' and data['info']['rel_size'] == [0.04, 0.12]
    counts = [len(v) for v in discs(data).values()]
    assert len(counts) == 6 and min(counts) >= layout.num_objects[0] and max(counts) <= layout.num_objects[1]
    for objects in discs(data).values():
        for _, _, r in objects:
            assert layout.rel_size[0] * 224 / 2 - 0.1 <= r <= layout.rel_size[1] * 224 / 2 + 0.1
