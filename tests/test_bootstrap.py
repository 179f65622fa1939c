"""Paired bootstrap of COCO AP: the vectorised accumulate against pycocotools, intervals, verdicts."""
import contextlib
import io
import os.path as osp

import numpy as np
import pytest
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from sparsevit.analysis import bootstrap as bs


def _coco(images: list, anns: list, num_cats: int) -> COCO:
    gt = COCO()
    gt.dataset = dict(images=images, annotations=anns,
                      categories=[dict(id=c, name=f'c{c}') for c in range(1, num_cats + 1)])
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def _box(rng) -> list:
    w, h = rng.uniform(4, 200, 2)  # areas across small / medium / large
    return [float(rng.uniform(0, 400)), float(rng.uniform(0, 300)), float(w), float(h)]


def synthetic(num_images: int, num_cats: int, dets_per_image: int, seed: int = 0, jitter: float = 8.0,
              tp_scores=(0.3, 1.0), crowd: bool = False):
    """Random gt boxes (every 5th image has none, every 7th has no detection) and detections: the gts jittered
    by ``jitter`` px with scores uniform in ``tp_scores``, plus random false positives with scores in [0, 0.8].
    The same seed gives the same gts whatever ``jitter`` and ``tp_scores``."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(1, num_images + 1):
        images.append(dict(id=i, width=640, height=480, file_name=f'{i}.png'))
        boxes = []
        for _ in range(0 if i % 5 == 0 else int(rng.integers(1, 8))):
            c, box = int(rng.integers(1, num_cats + 1)), _box(rng)
            iscrowd = int(crowd and rng.random() < 0.15)
            anns.append(dict(id=len(anns) + 1, image_id=i, category_id=c, bbox=box, area=box[2] * box[3],
                             iscrowd=iscrowd))
            boxes.append((c, box))
        if i % 7 == 0:
            continue
        for c, (x, y, w, h) in boxes:
            j = rng.normal(0, 1, 4) * jitter
            dets.append(dict(image_id=i, category_id=c, score=float(rng.uniform(*tp_scores)),
                             bbox=[x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])]))
        for _ in range(max(0, dets_per_image - len(boxes))):
            dets.append(dict(image_id=i, category_id=int(rng.integers(1, num_cats + 1)), bbox=_box(rng),
                             score=float(rng.uniform(0.0, 0.8))))
    return _coco(images, anns, num_cats), dets


def cocoeval_stats(ev) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
        ev.summarize()
    return ev.stats[:len(bs.STATS)]


def duplicated(gt: COCO, dets: list, counts: np.ndarray):
    """The resample as a plain dataset: ``counts[i]`` copies of image ``i`` (new ids), with its gts and dets."""
    images, anns, out = [], [], []
    for img_id, c in zip(sorted(gt.getImgIds()), counts):
        for _ in range(int(c)):
            new = len(images) + 1
            images.append(dict(gt.imgs[img_id], id=new))
            anns += [dict(a, id=len(anns) + k + 1, image_id=new) for k, a in enumerate(gt.imgToAnns[img_id])]
            out += [dict(d, image_id=new) for d in dets if d['image_id'] == img_id]
    return _coco(images, anns, len(gt.getCatIds())), out


@pytest.mark.parametrize('max_dets', [(1, 10, 100), (100, 300, 1000)])
@pytest.mark.parametrize('crowd', [False, True])
def test_identity_resample_equals_cocoeval(max_dets, crowd):
    gt, dets = synthetic(30, 4, 15, seed=1, crowd=crowd)
    ev = bs.evaluate_images(gt, dets, max_dets=max_dets)
    ours = bs.Matches(ev).stats(np.ones((1, 30), np.int64))
    ref = cocoeval_stats(ev)
    np.testing.assert_allclose([ours[m][0] for m in bs.STATS], ref, rtol=0, atol=1e-9)
    assert ref[0] > 0.05  # a non-trivial case


def test_duplicates_equal_cocoeval_on_copied_images():
    gt, dets = synthetic(20, 3, 10, seed=2)
    matches = bs.Matches(bs.evaluate_images(gt, dets))
    counts = bs.resample_counts(20, 4, seed=5)
    assert counts.max() > 1 and (counts == 0).any()
    ours = matches.stats(counts)
    for b in range(len(counts)):
        ref = cocoeval_stats(bs.evaluate_images(*duplicated(gt, dets, counts[b])))
        np.testing.assert_allclose([ours[m][b] for m in bs.STATS], ref, rtol=0, atol=1e-9)


def test_resample_without_gts_of_a_category_is_excluded():
    gt, dets = synthetic(10, 2, 5, seed=3)
    matches = bs.Matches(bs.evaluate_images(gt, dets))
    only = [i for i, img in enumerate(sorted(gt.getImgIds())) if not gt.imgToAnns[img]]
    counts = np.zeros((1, 10), np.int64)
    counts[0, only] = 1
    assert matches.stats(counts)['AP'][0] == -1.0  # no category has a gt: as summarize


def test_segm_identity_drops_bbox():
    gt, dets = synthetic(12, 2, 6, seed=4)
    for a in gt.dataset['annotations']:
        x, y, w, h = a['bbox']
        a['segmentation'] = [[x, y, x + w, y, x + w / 2, y + h]]  # triangles: mask area != box area
        a['area'] = w * h / 2
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    for d in dets:
        x, y, w, h = d['bbox']
        d['segmentation'] = mask_util.merge(mask_util.frPyObjects([[x, y, x + w, y, x + w / 2, y + h]], 480, 640))
    ev = bs.evaluate_images(gt, dets, iou_type='segm')
    ours = bs.Matches(ev).stats(np.ones((1, 12), np.int64))
    np.testing.assert_allclose([ours[m][0] for m in bs.STATS], cocoeval_stats(ev), rtol=0, atol=1e-9)
    assert 'bbox' in dets[0]  # the caller's list is not modified


def test_self_bootstrap_is_zero_and_within_noise():
    gt, dets = synthetic(30, 3, 10, seed=6)
    ev = bs.evaluate_images(gt, dets)
    res = bs.paired_bootstrap(ev, ev, metrics=('AP', 'AP50'), num_samples=200, seed=0)
    for r in res.values():
        assert (r.diff, r.mean, r.low, r.high) == (0.0, 0.0, 0.0, 0.0)
        assert r.verdict == 'within noise'


def test_better_model_is_ahead():
    gt, good = synthetic(40, 3, 10, seed=7, jitter=0.0, tp_scores=(0.9, 1.0))  # exact boxes ranked first
    gt_bad, bad = synthetic(40, 3, 10, seed=7, jitter=12.0)
    assert gt_bad.dataset['annotations'] == gt.dataset['annotations']
    ev_good, ev_bad = bs.evaluate_images(gt, good), bs.evaluate_images(gt, bad)
    ahead = bs.paired_bootstrap(ev_good, ev_bad, num_samples=300, seed=1)['AP']
    assert ahead.low > 0 and ahead.verdict == 'ahead'
    assert ahead.low <= ahead.diff <= ahead.high
    assert ahead.value_a == pytest.approx(cocoeval_stats(bs.evaluate_images(gt, good))[0], abs=1e-9)
    behind = bs.paired_bootstrap(ev_bad, ev_good, num_samples=300, seed=1)['AP']
    assert behind.verdict == 'behind'
    np.testing.assert_allclose((behind.low, behind.high), (-ahead.high, -ahead.low), atol=1e-12)


def test_resample_counts_and_seed():
    counts = bs.resample_counts(50, 7, seed=3)
    assert counts.shape == (7, 50) and (counts.sum(axis=1) == 50).all()
    np.testing.assert_array_equal(counts, bs.resample_counts(50, 7, seed=3))
    assert not np.array_equal(counts, bs.resample_counts(50, 7, seed=4))


def test_verdict():
    assert bs.verdict((0.001, 0.02)) == 'ahead'
    assert bs.verdict((-0.02, -0.001)) == 'behind'
    assert bs.verdict((-0.01, 0.01)) == 'within noise'
    assert bs.verdict((0.0, 0.0)) == 'within noise'


def test_bad_arguments():
    gt, dets = synthetic(5, 2, 3)
    with pytest.raises(ValueError, match='unknown metric'):
        bs.Matches(bs.evaluate_images(gt, dets), metrics=('mAP', ))
    with pytest.raises(ValueError, match='no detections'):
        bs.evaluate_images(gt, [])
    ev_a = bs.evaluate_images(gt, dets)
    ev_b = bs.evaluate_images(gt, dets, img_ids=sorted(gt.getImgIds())[:3])
    with pytest.raises(ValueError, match='same images'):
        bs.paired_bootstrap(ev_a, ev_b)


def test_mmdet_results_and_dataset_evaluate(synthetic_coco):
    """COCO results of mmdet outputs (bbox and segm) give the AP of mmdet's own ``CocoDataset.evaluate``."""
    from mmdet.datasets import CocoDataset

    from sparsevit.datasets.synthetic import SYNTHETIC_CLASSES
    ds = CocoDataset(osp.join(synthetic_coco, 'annotations', 'instances_val.json'), pipeline=[], test_mode=True,
                     classes=SYNTHETIC_CLASSES, img_prefix=osp.join(synthetic_coco, 'val'))
    rng = np.random.default_rng(0)
    outputs = []
    for img_id in ds.img_ids:
        bboxes, segms = [[] for _ in ds.cat_ids], [[] for _ in ds.cat_ids]
        for a in ds.coco.imgToAnns[img_id]:
            x, y, w, h = np.asarray(a['bbox']) + rng.normal(0, 3, 4)
            label = ds.cat2label[a['category_id']]
            bboxes[label].append([x, y, x + w, y + h, rng.uniform(0.5, 1)])
            segms[label].append(mask_util.encode(np.asfortranarray(ds.coco.annToMask(a))))
        outputs.append(([np.asarray(b, np.float32).reshape(-1, 5) for b in bboxes], segms))
    results = bs.mmdet_results(ds, outputs)
    with contextlib.redirect_stdout(io.StringIO()):
        ref = ds.evaluate(outputs, metric=['bbox', 'segm'])
    for iou_type in ('bbox', 'segm'):
        ev = bs.evaluate_images(ds.coco, results[iou_type], iou_type, img_ids=ds.img_ids, max_dets=(100, 300, 1000))
        ours = bs.Matches(ev).stats(np.ones((1, len(ds.img_ids)), np.int64))
        assert ours['AP'][0] == pytest.approx(ref[f'{iou_type}_mAP'], abs=5e-4)
        assert ours['APs'][0] == pytest.approx(ref[f'{iou_type}_mAP_s'], abs=5e-4)
