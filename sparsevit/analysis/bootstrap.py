"""Paired bootstrap intervals of COCO AP differences over val images, with a vectorised ``COCOeval.accumulate``.

``COCOeval.evaluate()`` matches detections to ground truth per (image, category, area range); those per-image
results do not depend on which other images are evaluated. So each model is evaluated once, and a resample of the
val images (with replacement, so with duplicates, which ``COCOeval.accumulate`` cannot take) only changes the
accumulation, done here for a whole batch of resamples at once from per-image counts:

* per (category, area range, max detections), the detections of all images are sorted once by score exactly as
  ``accumulate`` does (images in ``params.imgIds`` order, mergesort on ``-score``);
* for a resample with ``w_i`` copies of image ``i``, the true/false positive counts up to each true positive are
  weighted cumulative sums, the recall and precision are computed with ``accumulate``'s expressions, precision is
  made monotone from the right and read at the 101 recall thresholds with ``accumulate``'s
  ``searchsorted(side='left')`` rule.

Only true-positive points are kept: a false positive (or ignored) point has the recall of the point before it and
no higher precision, so it never changes the interpolated precision. With every image once this equals
``COCOeval.accumulate()`` + ``summarize()`` (up to float summation order, ~1e-16); with duplicates it equals
``accumulate`` on the concatenated images, except for the order of detections with exactly equal scores from
different images.

Conventions: AP is over ``params.iouThrs`` (0.5:0.95) and ``params.recThrs`` (101 points), the mean over the
categories with at least one non-ignored ground truth *in the resample* (``-1`` if none), as ``summarize``: ``AP``
at 100 detections per image, the others at ``params.maxDets[2]`` (100 for COCO's defaults; mmdet's
``proposal_nums=(100, 300, 1000)`` gives 1000). A difference is ``model A - model B`` on the same resample.
"""
import contextlib
import dataclasses
import io
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

#: ``summarize()``'s AP entries: name -> (IoU threshold or None for all, area range label, maxDets choice).
#: The maxDets choice is ``100`` for stats[0] and ``'third'`` (``params.maxDets[2]``) for the others.
STATS = {
    'AP': (None, 'all', 100),
    'AP50': (0.5, 'all', 'third'),
    'AP75': (0.75, 'all', 'third'),
    'APs': (None, 'small', 'third'),
    'APm': (None, 'medium', 'third'),
    'APl': (None, 'large', 'third'),
}
EPS = np.spacing(1)  # accumulate's guard in tp / (tp + fp + eps)
#: Resamples accumulated together (bounds memory: ``chunk * len(iouThrs) * true positives`` floats per table).
CHUNK = 64


def evaluate_images(coco_gt: COCO, detections: List[dict], iou_type: str = 'bbox',
                    img_ids: Optional[Sequence[int]] = None,
                    max_dets: Sequence[int] = (1, 10, 100)) -> COCOeval:
    """``COCOeval.evaluate()`` (quiet) of a COCO results list: the per-image matches the bootstrap reuses.

    Args:
        coco_gt: ground truth.
        detections: COCO results (``image_id``, ``category_id``, ``score``, ``bbox`` and/or ``segmentation``), as
            mmdet's ``CocoDataset.results2json`` writes them (see :func:`mmdet_results`).
        iou_type: ``'bbox'`` or ``'segm'``. For ``'segm'`` the ``bbox`` key is dropped first, as mmdet does, so
            instance areas (small/medium/large) are mask areas.
        img_ids: images to evaluate (default: all of ``coco_gt``); two compared models must use the same.
        max_dets: ``params.maxDets``; mmdet's ``CocoDataset.evaluate`` uses ``(100, 300, 1000)``.
    """
    if not detections:
        raise ValueError('no detections: COCO.loadRes cannot load an empty results list')
    drop = ('bbox', ) if iou_type == 'segm' else ()  # loadRes also writes into the dicts: copy them
    detections = [{k: v for k, v in d.items() if k not in drop} for d in detections]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(detections)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.imgIds = sorted(coco_gt.getImgIds() if img_ids is None else img_ids)
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
    return ev


def mmdet_results(dataset, outputs: list) -> Dict[str, List[dict]]:
    """COCO results lists of mmdet outputs (``tools/test.py --out results.pkl``), by iou type, through the
    dataset's own converters (``CocoDataset._det2json`` / ``_segm2json``, which ``results2json`` uses)."""
    if isinstance(outputs[0], tuple):
        bbox, segm = dataset._segm2json(outputs)
        return dict(bbox=bbox, segm=segm)
    return dict(bbox=dataset._det2json(outputs))


@dataclasses.dataclass
class _Table:
    """Sorted true positives of one (category, area range, maxDet) for every IoU threshold, padded in front.

    ``tp_img [T, P]``: image of each true positive (``I``, a zero-weight image, for padding); ``tp_cnt [T, P]``:
    index into the concatenated counted-detection cumsums (leading zero of its ignore group for padding);
    ``cnt_img``: per ignore group, the images of its counted (not ignored) detections in sorted order;
    ``npig [I]``: non-ignored ground truths per image.
    """
    tp_img: np.ndarray
    tp_cnt: np.ndarray
    cnt_img: List[np.ndarray]
    npig: np.ndarray


def _table(evals: List[Optional[dict]], max_det: int, num_images: int, t: int) -> _Table:
    """The table of one (category, area range) from its ``evalImgs`` (one per image, None: no gt and no dt)."""
    present = [(i, e) for i, e in enumerate(evals) if e is not None]
    npig = np.zeros(num_images, np.int64)
    for i, e in present:
        npig[i] = np.count_nonzero(np.asarray(e['gtIgnore']) == 0)
    if not present:
        pad = np.zeros((t, 1), np.int64)
        return _Table(pad + num_images, pad, [np.zeros(0, np.int64)], npig)
    scores = np.concatenate([np.asarray(e['dtScores'][:max_det], float) for _, e in present])
    img = np.concatenate([np.full(len(e['dtScores'][:max_det]), i, np.int64) for i, e in present])
    order = np.argsort(-scores, kind='mergesort')  # accumulate's sort
    dtm = np.concatenate([e['dtMatches'][:, :max_det] for _, e in present], axis=1)[:, order]  # [T, D]
    dtig = np.concatenate([e['dtIgnore'][:, :max_det] for _, e in present], axis=1)[:, order].astype(bool)
    img = img[order]
    tp = np.logical_and(dtm, ~dtig)  # [T, D]
    groups, cnt_img, starts, offset = {}, [], [], 0
    for row in dtig:  # IoU thresholds sharing their ignored detections share one cumsum
        key = row.tobytes()
        if key not in groups:
            groups[key] = len(cnt_img)
            cnt_img.append(img[~row])
            starts.append(offset)
            offset += int((~row).sum()) + 1  # +1: the leading zero column of the group's cumsum
    tps = [np.flatnonzero(r) for r in tp]
    width = max(len(p) for p in tps) + 1  # >= 1 leading padding point (rc = pr = 0) per row
    tp_img = np.full((t, width), num_images, np.int64)
    tp_cnt = np.zeros((t, width), np.int64)
    for k, (pos, row) in enumerate(zip(tps, dtig)):
        g = groups[row.tobytes()]
        counted_before = np.cumsum(~row)[pos]  # counted detections up to and including each true positive
        tp_img[k, width - len(pos):] = img[pos]
        tp_cnt[k, :] = starts[g]
        tp_cnt[k, width - len(pos):] = starts[g] + counted_before
    return _Table(tp_img, tp_cnt, cnt_img, npig)


class Matches:
    """The accumulate tables of one evaluated model (:func:`evaluate_images`), for the given ``STATS`` names."""

    def __init__(self, coco_eval: COCOeval, metrics: Sequence[str] = tuple(STATS)):
        if not coco_eval.evalImgs:
            raise ValueError('run COCOeval.evaluate() first (evaluate_images does)')
        p = coco_eval.params
        if not p.useCats:
            raise ValueError('only useCats=1 (per-category AP) is supported')
        self.img_ids, self.cat_ids = list(p.imgIds), list(p.catIds)
        self.iou_thrs, self.rec_thrs = np.asarray(p.iouThrs), np.asarray(p.recThrs)
        self.metrics = list(metrics)
        self.specs = {m: self._spec(m, p) for m in self.metrics}
        n_img, n_area = len(self.img_ids), len(p.areaRng)
        self.tables: Dict[Tuple[int, int], List[_Table]] = {}
        for area, max_det in sorted({(a, d) for _, a, d in self.specs.values()}):
            self.tables[area, max_det] = [
                _table(coco_eval.evalImgs[(k * n_area + area) * n_img:(k * n_area + area + 1) * n_img], max_det,
                       n_img, len(self.iou_thrs)) for k in range(len(self.cat_ids))]

    def _spec(self, metric: str, p) -> Tuple[np.ndarray, int, int]:
        if metric not in STATS:
            raise ValueError(f'unknown metric {metric!r}; expected one of {tuple(STATS)}')
        iou, area, dets = STATS[metric]
        t = np.arange(len(p.iouThrs)) if iou is None else np.flatnonzero(iou == p.iouThrs)
        max_det = 100 if dets == 100 else p.maxDets[2]
        if max_det not in p.maxDets or len(t) == 0:
            raise ValueError(f'{metric} needs maxDets {max_det} and its IoU threshold in the params')
        return t, p.areaRngLbl.index(area), max_det

    def precision(self, table: _Table, counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Interpolated precision ``[B, T, R]`` of one table for image counts ``[B, I]``, and validity ``[B]``
        (the resample has a non-ignored ground truth: else accumulate leaves -1)."""
        b, r = len(counts), len(self.rec_thrs)
        w = np.concatenate([counts, np.zeros((b, 1), counts.dtype)], axis=1)  # [B, I + 1]: the padding image
        npig = w[:, :-1] @ table.npig  # [B]
        cum = np.concatenate([np.concatenate([np.zeros((b, 1), w.dtype), np.cumsum(w[:, g], axis=1)], axis=1)
                              for g in table.cnt_img], axis=1)  # [B, sum(groups + 1)]
        tp = np.cumsum(w[:, table.tp_img], axis=-1)  # [B, T, P]
        fp = cum[:, table.tp_cnt] - tp  # [B, T, P]
        valid = npig > 0
        rc = tp / np.where(valid, npig, 1)[:, None, None]
        pr = tp / (fp + tp + EPS)
        env = np.maximum.accumulate(pr[..., ::-1], axis=-1)[..., ::-1]  # monotone from the right
        rows, width = b * tp.shape[1], tp.shape[2]
        bucket = np.searchsorted(self.rec_thrs, rc.ravel(), side='right').reshape(rows, width)  # thresholds <= rc
        hist = np.bincount((np.arange(rows)[:, None] * (r + 1) + bucket).ravel(), minlength=rows * (r + 1))
        first = np.cumsum(hist.reshape(rows, r + 1), axis=1)[:, :r]  # first point with rc >= threshold
        env = np.concatenate([env.reshape(rows, width), np.zeros((rows, 1))], axis=1)  # no such point: 0
        return np.take_along_axis(env, first, axis=1).reshape(b, -1, r), valid

    def stats(self, counts: np.ndarray) -> Dict[str, np.ndarray]:
        """Each metric ``[B]`` for image counts ``[B, I]`` (``counts[b, i]`` copies of image ``i``)."""
        counts = np.asarray(counts, np.int64)
        out = {m: np.empty(len(counts)) for m in self.metrics}
        for lo in range(0, len(counts), CHUNK):
            chunk = counts[lo:lo + CHUNK]
            for (area, max_det), tables in self.tables.items():
                res = [self.precision(t, chunk) for t in tables]  # per category
                for m, (t_sel, a, d) in self.specs.items():
                    if (a, d) != (area, max_det):
                        continue
                    sums = np.stack([q[:, t_sel].mean(axis=(1, 2)) for q, _ in res], axis=1)  # [b, K]
                    valid = np.stack([v for _, v in res], axis=1)  # [b, K]
                    n = valid.sum(axis=1)
                    out[m][lo:lo + CHUNK] = np.where(n > 0, (sums * valid).sum(axis=1) / np.maximum(n, 1), -1.0)
        return out


def resample_counts(num_images: int, num_samples: int, seed: int = 0) -> np.ndarray:
    """Bootstrap resamples as image counts ``[B, I]`` (each row: ``I`` draws with replacement; seeded)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, num_images, size=(num_samples, num_images))
    flat = (np.arange(num_samples)[:, None] * num_images + draws).ravel()
    return np.bincount(flat, minlength=num_samples * num_images).reshape(num_samples, num_images)


@dataclasses.dataclass
class BootstrapResult:
    """Paired bootstrap of ``metric`` (A - B): full-set values and the percentile interval of the differences."""
    metric: str
    value_a: float
    value_b: float
    diff: float  # on the full val set
    mean: float  # over resamples
    low: float
    high: float
    level: float
    num_images: int
    num_samples: int
    seed: int

    @property
    def interval(self) -> Tuple[float, float]:
        return self.low, self.high

    @property
    def verdict(self) -> str:
        return verdict(self.interval)


def paired_bootstrap(eval_a: COCOeval, eval_b: COCOeval, metrics: Sequence[str] = ('AP', ),
                     num_samples: int = 1000, seed: int = 0, level: float = 0.95) -> Dict[str, BootstrapResult]:
    """Paired bootstrap over val images of ``metric(A) - metric(B)``, for models evaluated on the same images
    (:func:`evaluate_images`): the same ``num_samples`` resamples for both; percentile interval at ``level``."""
    a, b = Matches(eval_a, metrics), Matches(eval_b, metrics)
    if a.img_ids != b.img_ids or a.cat_ids != b.cat_ids:
        raise ValueError('the two evaluations must cover the same images and categories')
    n = len(a.img_ids)
    full_a, full_b = a.stats(np.ones((1, n), np.int64)), b.stats(np.ones((1, n), np.int64))
    counts = resample_counts(n, num_samples, seed)
    res_a, res_b = a.stats(counts), b.stats(counts)
    out = {}
    for m in metrics:
        diffs = res_a[m] - res_b[m]
        low, high = np.percentile(diffs, [50 * (1 - level), 50 * (1 + level)])
        out[m] = BootstrapResult(m, float(full_a[m][0]), float(full_b[m][0]), float(full_a[m][0] - full_b[m][0]),
                                 float(diffs.mean()), float(low), float(high), level, n, num_samples, seed)
    return out


def verdict(interval: Tuple[float, float]) -> str:
    """``'ahead'`` if the interval of A - B is above 0, ``'behind'`` if below, else ``'within noise'``."""
    low, high = interval
    if low > 0:
        return 'ahead'
    if high < 0:
        return 'behind'
    return 'within noise'
