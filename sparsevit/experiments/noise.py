"""How much of a difference is noise: latency spread across rounds, and bootstrap intervals of mAP differences.

* **Latency**: every backbone is timed in several interleaved rounds (one value per round, the median reported);
  a row whose rounds spread by more than :data:`SPREAD_LIMIT` (``(max - min) / median``) is flagged in the table:
  its latency is less trustworthy than the others'.
* **mAP**: a paired bootstrap over the val images (:mod:`sparsevit.analysis.bootstrap`: the same resamples for
  both rows of a comparison). A table row may average several evaluations (the random-window rows: one per
  selection seed); its value on a resample is the mean of its evaluations' values on that resample.
  :class:`ImageResamples` draws the resamples once per report, so each evaluation's metric on them is computed
  once and every comparison reuses it. With one evaluation per side this is
  :func:`~sparsevit.analysis.bootstrap.paired_bootstrap` exactly.
"""
import json
import statistics
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..analysis.bootstrap import BootstrapResult, Matches, evaluate_images, resample_counts

#: A row whose latency rounds spread by more than this (``(max - min) / median``) is flagged.
SPREAD_LIMIT = 0.10
#: Bootstrap resamples, interval level and the metric (``STATS`` name: ``AP`` is COCO's mAP@[.5:.95]).
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_LEVEL = 0.95
BOOTSTRAP_METRIC = 'AP'
#: mmdet's ``CocoDataset.evaluate`` (``proposal_nums``): the same maxDets give the same mAP as the eval json.
MMDET_MAX_DETS = (100, 300, 1000)


def latency_spread(runs_ms: Sequence[float]) -> float:
    """``(max - min) / median`` of one row's per-round latencies (0 for a single round)."""
    runs = [float(r) for r in runs_ms]
    if len(runs) < 2:
        return 0.0
    return (max(runs) - min(runs)) / statistics.median(runs)


def spread_flagged(spread: float, limit: float = SPREAD_LIMIT) -> bool:
    """Whether a spread (:func:`latency_spread`) is above the limit."""
    return spread > limit


def read_detections(path: str) -> List[dict]:
    """A COCO results list (``results.bbox.json`` of mmdet's ``jsonfile_prefix``)."""
    with open(path) as f:
        detections = json.load(f)
    if not isinstance(detections, list):
        raise ValueError(f'{path} is not a COCO results list')
    return detections


class ImageResamples:
    """Bootstrap resamples of the val images shared by every comparison of a report.

    Args:
        coco_gt: the val ground truth (``pycocotools.coco.COCO``); every image of it is evaluated.
        num_samples, seed, level, metric: as :func:`~sparsevit.analysis.bootstrap.paired_bootstrap`.
        iou_type: ``'bbox'`` or ``'segm'``.
    """

    def __init__(self, coco_gt, num_samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                 level: float = BOOTSTRAP_LEVEL, metric: str = BOOTSTRAP_METRIC, iou_type: str = 'bbox'):
        self.coco_gt, self.metric, self.iou_type = coco_gt, metric, iou_type
        self.num_samples, self.seed, self.level = int(num_samples), int(seed), float(level)
        self.num_images = len(coco_gt.getImgIds())
        self.counts = resample_counts(self.num_images, self.num_samples, self.seed)  # [B, I]
        self.values: Dict[str, Tuple[float, np.ndarray]] = {}

    def add(self, key: str, detections: List[dict]) -> float:
        """Evaluate one model's detections once: its metric on the full set (returned) and on every resample. No
        detection at all: 0 everywhere."""
        if not detections:
            self.values[key] = (0.0, np.zeros(self.num_samples))
            return 0.0
        matches = Matches(evaluate_images(self.coco_gt, detections, self.iou_type, max_dets=MMDET_MAX_DETS),
                          [self.metric])
        full = float(matches.stats(np.ones((1, self.num_images), np.int64))[self.metric][0])
        self.values[key] = (full, matches.stats(self.counts)[self.metric])
        return full

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def compare(self, keys_a: Sequence[str], keys_b: Sequence[str]) -> BootstrapResult:
        """Paired bootstrap of ``mean(A) - mean(B)``, each side the mean over its evaluations (keys given to
        :meth:`add`); percentile interval at ``level``."""
        def side(keys: Sequence[str]) -> Tuple[float, np.ndarray]:
            if not keys:
                raise ValueError('a side of a comparison has no evaluation')
            fulls, samples = zip(*(self.values[k] for k in keys))
            return float(np.mean(fulls)), np.mean(np.stack(samples), axis=0)

        (full_a, res_a), (full_b, res_b) = side(keys_a), side(keys_b)
        diffs = res_a - res_b
        low, high = np.percentile(diffs, [50 * (1 - self.level), 50 * (1 + self.level)])
        return BootstrapResult(self.metric, full_a, full_b, full_a - full_b, float(diffs.mean()), float(low),
                               float(high), self.level, self.num_images, self.num_samples, self.seed)

