"""Semantic segmentation: mmseg 0.30 segmentors (UperNet on the SparseViT backbone, as mmseg's Swin recipe).

On CPU, ``SyncBN`` (mmseg's Swin configs use it in the decode heads) is converted to ``BN`` when the model is
built: torch's ``SyncBatchNorm`` runs on CUDA only (mmseg's own tools convert it for non-distributed runs only).
"""
import logging
from typing import Optional, Sequence

from .base import Task

#: What mmseg's data sets evaluate.
SEGMENTATION_METRICS = ('mIoU', 'mDice', 'mFscore')


def build_model(model_cfg, train_cfg=None, test_cfg=None):
    """The segmentor (``train_cfg`` / ``test_cfg`` given outside the model config, as mmdet's builder allows);
    ``SyncBN`` converted to ``BN`` without CUDA."""
    import torch
    from mmcv.cnn.utils import revert_sync_batchnorm
    from mmseg.models import build_segmentor
    kwargs = {k: v for k, v in dict(train_cfg=train_cfg, test_cfg=test_cfg).items() if v is not None}
    model = build_segmentor(model_cfg, **kwargs)
    if not torch.cuda.is_available() and _has_sync_bn(model):
        logging.getLogger('mmseg').warning('SyncBN needs CUDA; the device is CPU: converted to BN')
        model = revert_sync_batchnorm(model)
    return model


def _has_sync_bn(model) -> bool:
    import torch
    return any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())


def build_dataset(data_cfg):
    from mmseg.datasets import build_dataset as build
    return build(data_cfg)


def build_dataloader(dataset, samples_per_gpu: int, workers_per_gpu: int, **kwargs):
    """mmseg's ``build_dataloader``; ``persistent_workers`` only with workers (mmseg's default is True, which
    torch rejects for ``workers_per_gpu=0``, the CPU configs' setting)."""
    from mmseg.datasets import build_dataloader as build
    kwargs.pop('runner_type', None)  # mmdet's argument
    kwargs.setdefault('persistent_workers', workers_per_gpu > 0)
    return build(dataset, samples_per_gpu, workers_per_gpu, **kwargs)


def build_runner(cfg, default_args=None):
    """mmcv's ``build_runner``; without CUDA the runner's ``resume`` maps the checkpoint to the CPU (mmcv's
    ``IterBasedRunner.resume``, mmseg's runner, maps it to CUDA by default, where ``EpochBasedRunner`` falls back
    to the CPU)."""
    import torch
    from mmcv.runner import build_runner as build
    runner = build(cfg, default_args=default_args)
    if not torch.cuda.is_available():
        resume = runner.resume

        def resume_on_cpu(checkpoint, resume_optimizer=True, map_location='default'):
            return resume(checkpoint, resume_optimizer, 'cpu' if map_location == 'default' else map_location)
        runner.resume = resume_on_cpu
    return runner


def train(model, datasets, cfg, distributed: bool, validate: bool, timestamp: str, meta: dict) -> None:
    """mmseg's ``train_segmentor`` (iteration-based runner, ``EvalHook``/``DistEvalHook``), its DDP wrapper
    replaced by the one that also runs on CPU (gloo) and its data loaders by :func:`build_dataloader`."""
    import mmseg.apis.train as mmseg_train
    from ..utils.launch import build_ddp
    mmseg_train.build_ddp = build_ddp  # mmseg's supports CUDA only
    mmseg_train.build_dataloader = build_dataloader  # no persistent workers without workers
    mmseg_train.build_runner = build_runner  # resume onto the CPU without CUDA
    mmseg_train.train_segmentor(model, datasets, cfg, distributed=distributed, validate=validate,
                                timestamp=timestamp, meta=meta)


def prepare_test(cfg):
    """Test mode on the test data set (mmseg tests one image per step)."""
    datasets = cfg.data.test if isinstance(cfg.data.test, list) else [cfg.data.test]
    for ds_cfg in datasets:
        ds_cfg.test_mode = True
    return cfg


def test(model, data_loader, distributed: bool, tmpdir: Optional[str] = None, gpu_collect: bool = False,
         metrics: Optional[Sequence[str]] = None, show: bool = False, show_dir: Optional[str] = None,
         show_score_thr: float = 0.3) -> list:
    """mmseg's ``single_gpu_test`` / ``multi_gpu_test``; with ``metrics``, each image is pre-evaluated (its
    intersection and union per class, as mmseg's test tool does), so no label map is kept."""
    from mmseg.apis import multi_gpu_test, single_gpu_test
    pre_eval = bool(metrics)
    if not distributed:
        return single_gpu_test(model, data_loader, show, show_dir, pre_eval=pre_eval)
    return multi_gpu_test(model, data_loader, tmpdir, gpu_collect, pre_eval=pre_eval)


def evaluate(dataset, outputs: list, metrics: Sequence[str], eval_kwargs: dict) -> dict:
    return dataset.evaluate(outputs, metric=list(metrics), **eval_kwargs)


def checkpoint_meta(dataset) -> dict:
    from mmcv.utils import get_git_hash
    from mmseg import __version__
    return dict(mmseg_version=f'{__version__}+{get_git_hash()[:7]}', CLASSES=dataset.CLASSES,
                PALETTE=dataset.PALETTE)


def set_classes(model, meta: dict, dataset) -> None:
    model.CLASSES = meta.get('CLASSES') or dataset.CLASSES
    model.PALETTE = meta.get('PALETTE') or dataset.PALETTE


SEGMENTATION = Task(name='segmentation', package='mmseg', model_kind='segmentor', metrics=SEGMENTATION_METRICS,
                    search_metric='mIoU', search_metrics=SEGMENTATION_METRICS, build_model=build_model,
                    build_dataset=build_dataset, build_dataloader=build_dataloader, train=train,
                    prepare_test=prepare_test, test=test, evaluate=evaluate, checkpoint_meta=checkpoint_meta, set_classes=set_classes)
