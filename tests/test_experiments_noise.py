"""Noise (sparsevit.experiments.noise): the latency spread flag and the paired bootstrap of table rows over val
images, on constructed ground truth and detections."""
import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO

from sparsevit.analysis.bootstrap import evaluate_images, paired_bootstrap
from sparsevit.experiments.noise import (MMDET_MAX_DETS, SPREAD_LIMIT, ImageResamples, latency_spread,
                                         spread_flagged)

NUM_IMAGES, PER_IMAGE = 30, 4


def test_latency_spread_and_flag():
    assert latency_spread([100.0, 104.0, 98.0]) == pytest.approx(0.06)  # (104 - 98) / 100
    assert latency_spread([50.0]) == 0.0 and latency_spread([]) == 0.0
    assert SPREAD_LIMIT == 0.10
    assert not spread_flagged(latency_spread([100.0, 105.0, 95.0]))  # exactly 10 %: not above
    assert spread_flagged(latency_spread([100.0, 112.0, 99.0]))  # 13 %


@pytest.fixture(scope='module')
def coco_gt():
    """NUM_IMAGES images with PER_IMAGE 20x20 boxes each, two classes."""
    images, anns = [], []
    for i in range(NUM_IMAGES):
        images.append(dict(id=i + 1, file_name=f'{i}.png', width=200, height=200))
        for j in range(PER_IMAGE):
            anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=1 + j % 2, bbox=[10.0 + 40 * j, 50.0,
                                                                                          20.0, 20.0],
                             area=400.0, iscrowd=0))
    gt = COCO()
    gt.dataset = dict(images=images, annotations=anns, categories=[dict(id=1, name='a'), dict(id=2, name='b')])
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def detections(gt, keep: float, jitter: float = 0.0, seed: int = 0, order: float = 0.6180339887):
    """Boxes of the objects whose fixed rank (``id * order`` mod 1) is below ``keep`` (one ``order``: nested
    sets), shifted by up to ``jitter`` px."""
    rng = np.random.default_rng(seed)
    out = []
    for a in gt.dataset['annotations']:
        if (a['id'] * order) % 1.0 < keep:
            x, y, w, h = a['bbox']
            dx, dy = rng.uniform(-jitter, jitter, 2) if jitter else (0.0, 0.0)
            out.append(dict(image_id=a['image_id'], category_id=a['category_id'], bbox=[x + dx, y + dy, w, h],
                            score=float(rng.uniform(0.5, 1.0))))
    return out


def test_verdicts_from_constructed_detections(coco_gt):
    res = ImageResamples(coco_gt, num_samples=300, seed=0)
    assert res.num_images == NUM_IMAGES and res.counts.shape == (300, NUM_IMAGES)
    assert res.add('good', detections(coco_gt, 0.9)) == pytest.approx(0.9, abs=0.05)
    res.add('bad', detections(coco_gt, 0.4))
    res.add('good_other', detections(coco_gt, 0.9, order=0.7548776662))
    assert res.add('none', []) == 0.0
    ahead = res.compare(['good'], ['bad'])
    assert ahead.verdict == 'ahead' and ahead.low > 0 and ahead.diff == pytest.approx(0.5, abs=0.08)
    assert res.compare(['bad'], ['good']).verdict == 'behind'
    noise = res.compare(['good'], ['good_other'])  # as many objects found, other ones
    assert noise.verdict == 'within noise' and noise.low <= 0 <= noise.high
    assert res.compare(['bad'], ['none']).verdict == 'ahead'
    with pytest.raises(ValueError, match='no evaluation'):
        res.compare([], ['bad'])


def test_one_evaluation_per_side_is_paired_bootstrap(coco_gt):
    dets_a, dets_b = detections(coco_gt, 0.8), detections(coco_gt, 0.6, jitter=2.0)
    res = ImageResamples(coco_gt, num_samples=200, seed=3)
    res.add('a', dets_a)
    res.add('b', dets_b)
    ours = res.compare(['a'], ['b'])
    ref = paired_bootstrap(evaluate_images(coco_gt, dets_a, max_dets=MMDET_MAX_DETS),
                           evaluate_images(coco_gt, dets_b, max_dets=MMDET_MAX_DETS), ('AP',), 200, 3)['AP']
    for field in ('value_a', 'value_b', 'diff', 'mean', 'low', 'high'):
        assert getattr(ours, field) == pytest.approx(getattr(ref, field), abs=1e-12)


def test_a_side_averages_its_evaluations(coco_gt):
    """A row of several evaluations (random-window seeds): the mean of their values on each resample."""
    res = ImageResamples(coco_gt, num_samples=100, seed=0)
    for name, keep in (('s0', 0.5), ('s1', 0.7), ('ref', 0.6)):
        res.add(name, detections(coco_gt, keep))
    averaged = res.compare(['s0', 's1'], ['ref'])
    assert averaged.value_a == pytest.approx((res.values['s0'][0] + res.values['s1'][0]) / 2)
    assert averaged.diff == pytest.approx(averaged.value_a - res.values['ref'][0])
    same = res.compare(['s0', 's0'], ['ref'])  # one evaluation twice is that evaluation
    single = res.compare(['s0'], ['ref'])
    assert (same.low, same.high, same.diff) == pytest.approx((single.low, single.high, single.diff))
