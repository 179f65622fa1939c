"""The search's score at a sparsity configuration, sharded over the ranks: COCO mAP of a detector
(:class:`DetectorEvaluator`) or mIoU (mDice, ...) of a segmentor (:class:`SegmentorEvaluator`).

Every rank runs the same configuration on its share of the test images (image ``j`` of the evaluated set goes to
rank ``j % world_size``), the per-image results are gathered on rank 0, which runs the dataset's evaluation, and
the metrics are broadcast so all ranks continue the search in lockstep. ``num_images`` evaluates a fixed, seeded
subset of the test set instead of all of it (the same subset for every candidate). The values are reported x100
(``bbox_mAP`` 42.6, ``mIoU`` 71.3), as the original's search log. A segmentor's images are pre-evaluated where they
are inferred (per class intersection and union, as mmseg's test tool), so only those travel to rank 0.
"""
import contextlib
import copy
import hashlib
import io
import random
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmcv.parallel import scatter
from mmdet.core import encode_mask_results
from mmdet.datasets import build_dataloader
from torch.utils.data import Subset

from ..schedule import Genes, genes_to_ratios
from ..utils import dist
from ..utils.config import get_sparse_backbone


def select_images(num_total: int, num_images: Optional[int], seed: int = 0) -> List[int]:
    """Indices of the evaluated images: all of them, or a sorted seeded sample of ``num_images``.

    Raises:
        ValueError: if ``num_images`` is not in [1, num_total].
    """
    if num_images is None:
        return list(range(num_total))
    if not 1 <= num_images <= num_total:
        raise ValueError(f'--num-images must be in [1, {num_total}] (the test set size), got {num_images}')
    return sorted(random.Random(seed).sample(range(num_total), num_images))


def image_set_key(dataset, indices: Sequence[int]) -> str:
    """Names the evaluated images (a short hash of their file names, in order; of the indices where the data set
    lists no file names): a resumed search must score the same images."""
    infos = getattr(dataset, 'data_infos', None) or getattr(dataset, 'img_infos', None)
    names = [str(infos[i].get('filename', i)) if infos is not None else str(i) for i in indices]
    return f'{len(names)} images, sha1 {hashlib.sha1(chr(10).join(names).encode()).hexdigest()[:12]}'


def subset_dataset(dataset, indices: Sequence[int]):
    """A shallow copy of an mmdet ``CustomDataset``/``CocoDataset`` (its ``data_infos``) or an mmseg
    ``CustomDataset`` (its ``img_infos``) restricted to ``indices`` (for evaluation).

    Raises:
        ValueError: if the dataset type keeps neither (e.g. a wrapped/concatenated dataset).
    """
    key = next((k for k in ('data_infos', 'img_infos') if hasattr(dataset, k)), None)
    if key is None:
        raise ValueError(f'--num-images needs an mmdet or mmseg CustomDataset test set; got '
                         f'{type(dataset).__name__}')
    sub = copy.copy(dataset)
    setattr(sub, key, [getattr(dataset, key)[i] for i in indices])
    if hasattr(dataset, 'img_ids'):
        sub.img_ids = [dataset.img_ids[i] for i in indices]
    if getattr(dataset, 'proposals', None) is not None:
        sub.proposals = [dataset.proposals[i] for i in indices]
    return sub


class ShardedEvaluator:
    """Callable ``config -> (score, metrics)`` for the search: the model at those pruning ratios, scored on this
    rank's share of the images, evaluated on rank 0 (subclasses: :meth:`infer`, :meth:`evaluate`).

    Args:
        model: a detector or segmentor with a sparse backbone, already on ``device`` and in eval mode.
        dataset: the test dataset (``test_mode=True``).
        metrics: metrics to compute, e.g. ``('bbox',)``, ``('bbox', 'segm')`` or ``('mIoU',)``; the score is the
            first one's.
        num_images: evaluate a fixed seeded subset of this many images (None: the whole set).
        seed: seed of the subset.
        samples_per_gpu, workers_per_gpu: test data loader settings.
        eval_kwargs: extra arguments of ``dataset.evaluate`` (``sparsevit.tasks.evaluation_kwargs`` of the config).
        device: the model's device.
    """

    def __init__(self, model: torch.nn.Module, dataset, metrics: Sequence[str] = ('bbox',),
                 num_images: Optional[int] = None, seed: int = 0, samples_per_gpu: int = 1, workers_per_gpu: int = 0,
                 eval_kwargs: Optional[dict] = None, device: torch.device = torch.device('cpu')):
        self.model, self.device, self.metrics = model, device, list(metrics)
        self.backbone = get_sparse_backbone(model)
        indices = select_images(len(dataset), num_images, seed)
        self.dataset = dataset if num_images is None else subset_dataset(dataset, indices)
        self.num_images = len(indices)
        self.image_key = image_set_key(dataset, indices)
        self.shard = list(range(dist.rank(), len(self.dataset), dist.world_size()))
        self.loader = build_dataloader(Subset(self.dataset, self.shard), samples_per_gpu, workers_per_gpu,
                                       dist=False, shuffle=False, persistent_workers=workers_per_gpu > 0)
        self.eval_kwargs = dict(eval_kwargs or {})

    def __call__(self, genes: Genes) -> Tuple[float, Dict[str, float]]:
        """Set the configuration, evaluate, and return ``(the first metric x100, every scalar metric)``."""
        self.backbone.set_pruning_ratios(genes_to_ratios(genes, self.backbone.depths))
        parts = dist.gather_objects(self.infer())
        results = None
        if dist.is_master():
            results = [None] * len(self.dataset)
            for r, part in enumerate(parts):
                results[r::dist.world_size()] = part
        return dist.broadcast_object(self.evaluate(results) if dist.is_master() else None)

    def batches(self):
        """This rank's batches, scattered to the device."""
        self.model.eval()
        target = [self.device.index if self.device.type == 'cuda' else -1]
        for data in self.loader:
            yield scatter(data, target)[0]

    def infer(self) -> List:
        raise NotImplementedError

    def evaluate(self, results: List) -> Tuple[float, Dict[str, float]]:
        raise NotImplementedError


class DetectorEvaluator(ShardedEvaluator):
    """COCO mAP (x100) of a detector (:class:`ShardedEvaluator`)."""

    @torch.no_grad()
    def infer(self) -> List:
        """Detections of this rank's images, in order (masks RLE-encoded, as mmdet's ``single_gpu_test``)."""
        out = []
        for data in self.batches():
            batch = self.model(return_loss=False, rescale=True, **data)
            if batch and isinstance(batch[0], tuple):
                batch = [(bbox, encode_mask_results(mask)) for bbox, mask in batch]
            out.extend(batch)
        return out

    def evaluate(self, results: List) -> Tuple[float, Dict[str, float]]:
        """COCO evaluation of all results (rank 0), mAP values x100; its console tables are captured, not printed."""
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='The key "bbox" is deleted')  # mmdet's note, per call
            values = self.dataset.evaluate(results, metric=self.metrics, logger='silent', **self.eval_kwargs)
        scalars = {k: float(v) * (100.0 if '_mAP' in k else 1.0) for k, v in values.items()
                   if isinstance(v, (int, float))}
        for metric in self.metrics:  # mmdet reports nothing for a metric without a single detection: mAP 0
            scalars.setdefault(f'{metric}_mAP', 0.0)
        return scalars[f'{self.metrics[0]}_mAP'], scalars


class SegmentorEvaluator(ShardedEvaluator):
    """mIoU (mDice, mFscore; x100) of an mmseg segmentor (:class:`ShardedEvaluator`): each image is pre-evaluated
    on its rank against its label map (``dataset.pre_eval``), rank 0 sums them (``dataset.evaluate``)."""

    @torch.no_grad()
    def infer(self) -> List:
        """Per image of this rank, in order: its per-class intersection, union, prediction and label areas."""
        out, done = [], 0
        for data in self.batches():
            preds = self.model(return_loss=False, rescale=True, **data)
            indices = self.shard[done:done + len(preds)]  # indices into the evaluated set, for its label maps
            out.extend(self.dataset.pre_eval(preds, indices=indices))
            done += len(preds)
        return out

    def evaluate(self, results: List) -> Tuple[float, Dict[str, float]]:
        """mmseg's evaluation of the summed areas (rank 0), every value x100; its table is not printed."""
        with contextlib.redirect_stdout(io.StringIO()):
            values = self.dataset.evaluate(results, metric=self.metrics, logger='silent', **self.eval_kwargs)
        scalars = {k: 100.0 * float(v) for k, v in values.items() if isinstance(v, (int, float))}
        return scalars[self.metrics[0]], scalars
