"""Detection and instance segmentation: mmdet 2.28 detectors (Mask R-CNN with the SparseViT backbone)."""
from typing import Optional, Sequence

from .base import Task

#: What mmdet's data sets evaluate (COCO: bbox, segm, proposal, proposal_fast; VOC: mAP, recall).
DETECTION_METRICS = ('bbox', 'segm', 'proposal', 'proposal_fast', 'mAP', 'recall')


def build_model(model_cfg, train_cfg=None, test_cfg=None):
    from mmdet.models import build_detector
    return build_detector(model_cfg, train_cfg=train_cfg, test_cfg=test_cfg)


def build_dataset(data_cfg):
    from mmdet.datasets import build_dataset as build
    return build(data_cfg)


def build_dataloader(dataset, *args, **kwargs):
    from mmdet.datasets import build_dataloader as build
    return build(dataset, *args, **kwargs)


def train(model, datasets, cfg, distributed: bool, validate: bool, timestamp: str, meta: dict) -> None:
    """mmdet's ``train_detector``, its DDP wrapper replaced by the one that also runs on CPU (gloo)."""
    import mmdet.apis.train as mmdet_train
    from ..utils.launch import build_ddp
    mmdet_train.build_ddp = build_ddp  # mmdet's supports CUDA only
    mmdet_train.train_detector(model, datasets, cfg, distributed=distributed, validate=validate,
                               timestamp=timestamp, meta=meta)


def prepare_test(cfg):
    """Test mode on the test data set(s); with a test batch > 1, ``DefaultFormatBundle`` for ``ImageToTensor`` (as
    mmdet's test tool)."""
    from mmdet.datasets import replace_ImageToTensor
    datasets = cfg.data.test if isinstance(cfg.data.test, list) else [cfg.data.test]
    for ds_cfg in datasets:
        ds_cfg.test_mode = True
        if cfg.data.get('test_dataloader', {}).get('samples_per_gpu', 1) > 1:
            ds_cfg.pipeline = replace_ImageToTensor(ds_cfg.pipeline)
    return cfg


def test(model, data_loader, distributed: bool, tmpdir: Optional[str] = None, gpu_collect: bool = False,
         metrics: Optional[Sequence[str]] = None, show: bool = False, show_dir: Optional[str] = None,
         show_score_thr: float = 0.3) -> list:
    """mmdet's ``single_gpu_test`` / ``multi_gpu_test`` (the latter collecting through ``tmpdir``)."""
    from mmdet.apis import multi_gpu_test, single_gpu_test
    if not distributed:
        return single_gpu_test(model, data_loader, show, show_dir, show_score_thr)
    return multi_gpu_test(model, data_loader, tmpdir, gpu_collect)


def evaluate(dataset, outputs: list, metrics: Sequence[str], eval_kwargs: dict) -> dict:
    return dataset.evaluate(outputs, metric=list(metrics), **eval_kwargs)


def checkpoint_meta(dataset) -> dict:
    from mmcv.utils import get_git_hash
    from mmdet import __version__
    return dict(mmdet_version=__version__ + get_git_hash()[:7], CLASSES=dataset.CLASSES)


def set_classes(model, meta: dict, dataset) -> None:
    model.CLASSES = meta.get('CLASSES') or dataset.CLASSES  # old checkpoints keep no class names


DETECTION = Task(name='detection', package='mmdet', model_kind='detector', metrics=DETECTION_METRICS,
                 search_metric='bbox', search_metrics=('bbox', 'segm'), build_model=build_model,
                 build_dataset=build_dataset, build_dataloader=build_dataloader, train=train, prepare_test=prepare_test,
                 test=test, evaluate=evaluate, checkpoint_meta=checkpoint_meta, set_classes=set_classes)
