"""The search's score: COCO mAP of the detector at a sparsity configuration, sharded over the ranks.

Every rank runs the same configuration on its share of the test images (image ``j`` of the evaluated set goes to
rank ``j % world_size``), the per-image results are gathered on rank 0, which runs the dataset's COCO evaluation,
and the metrics are broadcast so all ranks continue the search in lockstep. ``num_images`` evaluates a fixed,
seeded subset of the test set instead of all of it (the same subset for every candidate). The mAP values are
reported x100 (``bbox_mAP`` 42.6), as the original's search log.
"""
import contextlib
import copy
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


def subset_dataset(dataset, indices: Sequence[int]):
    """A shallow copy of an mmdet ``CustomDataset``/``CocoDataset`` restricted to ``indices`` (for evaluation).

    Raises:
        ValueError: if the dataset type keeps no ``data_infos`` (e.g. a wrapped/concatenated dataset).
    """
    if not hasattr(dataset, 'data_infos'):
        raise ValueError(f'--num-images needs an mmdet CustomDataset test set; got {type(dataset).__name__}')
    sub = copy.copy(dataset)
    sub.data_infos = [dataset.data_infos[i] for i in indices]
    if hasattr(dataset, 'img_ids'):
        sub.img_ids = [dataset.img_ids[i] for i in indices]
    if getattr(dataset, 'proposals', None) is not None:
        sub.proposals = [dataset.proposals[i] for i in indices]
    return sub


class DetectorEvaluator:
    """Callable ``config -> (score, metrics)`` for the search: COCO mAP (x100) of ``model`` with those pruning ratios.

    Args:
        model: an mmdet detector with a sparse backbone, already on ``device`` and in eval mode.
        dataset: the test dataset (``test_mode=True``).
        metrics: COCO metrics to compute, e.g. ``('bbox',)`` or ``('bbox', 'segm')``; the score is the mAP of the
            first one.
        num_images: evaluate a fixed seeded subset of this many images (None: the whole set).
        seed: seed of the subset.
        samples_per_gpu, workers_per_gpu: test data loader settings.
        eval_kwargs: extra arguments of ``dataset.evaluate`` (the config's ``evaluation`` section).
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
        shard = list(range(dist.rank(), len(self.dataset), dist.world_size()))
        self.loader = build_dataloader(Subset(self.dataset, shard), samples_per_gpu, workers_per_gpu, dist=False,
                                       shuffle=False, persistent_workers=workers_per_gpu > 0)
        self.eval_kwargs = dict(eval_kwargs or {})

    def __call__(self, genes: Genes) -> Tuple[float, Dict[str, float]]:
        """Set the configuration, evaluate, and return ``(mAP x100 of the first metric, every scalar metric)``."""
        self.backbone.set_pruning_ratios(genes_to_ratios(genes, self.backbone.depths))
        parts = dist.gather_objects(self.infer())
        results = None
        if dist.is_master():
            results = [None] * len(self.dataset)
            for r, part in enumerate(parts):
                results[r::dist.world_size()] = part
        return dist.broadcast_object(self.evaluate(results) if dist.is_master() else None)

    @torch.no_grad()
    def infer(self) -> List:
        """Detections of this rank's images, in order (masks RLE-encoded, as mmdet's ``single_gpu_test``)."""
        self.model.eval()
        target = [self.device.index if self.device.type == 'cuda' else -1]
        out = []
        for data in self.loader:
            batch = self.model(return_loss=False, rescale=True, **scatter(data, target)[0])
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
