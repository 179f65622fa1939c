"""The task interface (:class:`Task`) and the choice of task by config (:func:`task_of`)."""
import dataclasses
import os
import os.path as osp
from typing import Callable, Optional, Sequence, Tuple

#: Keys of a config's ``evaluation`` dict that set up mmdet's / mmseg's ``EvalHook`` (when and how to evaluate)
#: rather than the data set's ``evaluate``; the packages' test tools drop them the same way.
EVAL_HOOK_KEYS = ('interval', 'tmpdir', 'start', 'gpu_collect', 'save_best', 'rule', 'dynamic_intervals', 'metric',
                  'pre_eval', 'by_epoch', 'efficient_test')

#: Model types of mmseg 0.30's ``SEGMENTORS`` (checked first, without importing mmseg).
SEGMENTOR_TYPES = ('EncoderDecoder', 'CascadeEncoderDecoder')


class TaskError(ValueError):
    """A config or flag that does not fit the task (one line for the tools)."""


@dataclasses.dataclass(frozen=True)
class Task:
    """One task's parts; the callables import their package when called.

    Attributes:
        name: ``'detection'`` or ``'segmentation'``.
        package: ``'mmdet'`` or ``'mmseg'``.
        model_kind: what the model is called in messages (``'detector'``, ``'segmentor'``).
        metrics: the ``--eval`` metrics the task's data sets evaluate.
        search_metric: the metric the search scores by default (x100).
        search_metrics: the metrics the search can score (a detector's COCO mAPs: bbox, segm).
        build_model: ``(model_cfg, train_cfg=None, test_cfg=None) -> nn.Module``.
        build_dataset: ``(data_cfg) -> dataset``.
        build_dataloader: ``(dataset, samples_per_gpu, workers_per_gpu, dist=..., shuffle=..., ...)``.
        train: ``(model, datasets, cfg, distributed, validate, timestamp, meta) -> None`` (the package's
            ``train_detector`` / ``train_segmentor`` with the CPU-capable DDP wrapper).
        prepare_test: ``(cfg) -> cfg``: test mode on the test data set(s) and what the package's test tool does
            before building them.
        test: ``(model, data_loader, distributed, tmpdir, gpu_collect, metrics) -> outputs`` (``metrics`` given:
            outputs ready for ``evaluate``; mmseg pre-evaluates each image).
        evaluate: ``(dataset, outputs, metrics, eval_kwargs) -> dict`` of metric values.
        checkpoint_meta: ``(dataset) -> dict``: what the package's train tool stores in checkpoints (its version,
            the class names, mmseg's palette).
        set_classes: ``(model, checkpoint_meta, dataset) -> None``: the model's ``CLASSES`` (and ``PALETTE``) for
            testing, from the checkpoint or else the data set.
    """
    name: str
    package: str
    model_kind: str
    metrics: Tuple[str, ...]
    search_metric: str
    search_metrics: Tuple[str, ...]
    build_model: Callable
    build_dataset: Callable
    build_dataloader: Callable
    train: Callable
    prepare_test: Callable
    test: Callable
    evaluate: Callable
    checkpoint_meta: Callable
    set_classes: Callable

    def check_metrics(self, metrics: Optional[Sequence[str]], flag: str = '--eval', search: bool = False) -> None:
        """TaskError naming the first metric this task does not evaluate (``search``: that the search cannot
        score), and the allowed ones."""
        allowed = self.search_metrics if search else self.metrics
        for metric in metrics or ():
            if metric not in allowed:
                what = 'a metric the search scores for' if search and metric in self.metrics else 'a metric of'
                raise TaskError(f'{flag} {metric}: not {what} a {self.model_kind} config ({self.name}); '
                                f'allowed: {", ".join(allowed)}')


def evaluation_kwargs(cfg, overrides: Optional[dict] = None) -> dict:
    """The keyword arguments of the data set's ``evaluate`` from the config's ``evaluation`` dict: it without the
    ``EvalHook``'s own keys (:data:`EVAL_HOOK_KEYS`), updated with ``overrides`` (``--eval-options``)."""
    kwargs = {k: v for k, v in dict(cfg.get('evaluation', None) or {}).items() if k not in EVAL_HOOK_KEYS}
    kwargs.update(overrides or {})
    return kwargs


def model_type(cfg) -> Optional[str]:
    """The config's ``model.type`` (None without a model)."""
    model = cfg.get('model', None) if hasattr(cfg, 'get') else None
    return None if model is None else model.get('type')


def is_segmentor_type(name: Optional[str]) -> bool:
    """Whether ``name`` is an mmseg segmentor type (registered in mmseg's ``SEGMENTORS``, when mmseg is there)."""
    if name in SEGMENTOR_TYPES:
        return True
    if not name:
        return False
    import importlib.util
    if importlib.util.find_spec('mmseg') is None:
        return False
    from mmseg.models.builder import SEGMENTORS
    return SEGMENTORS.get(name) is not None


def task_of(cfg) -> Task:
    """The task of a config: segmentation for an mmseg segmentor, else detection.

    Raises:
        TaskError: a segmentor config while mmsegmentation is not installed.
    """
    if is_segmentor_type(model_type(cfg)):
        import importlib.util
        if importlib.util.find_spec('mmseg') is None:
            raise TaskError(f'model type {model_type(cfg)} is an mmsegmentation segmentor and mmsegmentation is '
                            f'not installed: pip install mmsegmentation==0.30.0 "numpy<2"')
        from .segmentation import SEGMENTATION
        return SEGMENTATION
    from .detection import DETECTION
    return DETECTION


#: The keys of an mmdet / mmseg data set config that name files (``ann_file``) or directories (the rest), relative
#: to its ``data_root`` unless absolute; mmseg's ``ann_file`` (a split list) is optional.
_DATA_FILES = ('ann_file', )
_DATA_DIRS = ('img_prefix', 'img_dir', 'ann_dir')


def check_data(data_cfg, where: str) -> None:
    """Check that the files a data set config names are there before anything is built.

    ``data_cfg`` is one of a config's ``data.train`` / ``data.val`` / ``data.test`` (mmdet or mmseg, wrappers with a
    ``dataset`` or ``datasets`` key and lists of annotation files included); ``where`` names it in the message
    (e.g. ``'data.test'``). Paths with a ``://`` scheme are not checked.

    Raises:
        TaskError: one line naming the key and the path, when an annotation file is missing or empty, or an image
            or annotation directory is missing or holds no file.
    """
    if data_cfg is None:
        return
    if isinstance(data_cfg, (list, tuple)):
        for i, one in enumerate(data_cfg):
            check_data(one, f'{where}[{i}]')
        return
    data_cfg = dict(data_cfg)
    if 'dataset' in data_cfg:
        check_data(data_cfg['dataset'], f'{where}.dataset')
    if 'datasets' in data_cfg:
        check_data(data_cfg['datasets'], f'{where}.datasets')
    root = data_cfg.get('data_root') or ''
    for key in _DATA_FILES + _DATA_DIRS:
        values = data_cfg.get(key)
        for path in values if isinstance(values, (list, tuple)) else [values]:
            if not path or '://' in str(path):
                continue
            full = path if osp.isabs(path) or not root else osp.join(root, path)
            if key in _DATA_FILES:
                if not osp.isfile(full):
                    raise TaskError(f'{where}.{key} {full} does not exist{_root_note(root, full)}')
                if osp.getsize(full) == 0:
                    raise TaskError(f'{where}.{key} {full} is empty')
            elif not osp.isdir(full):
                raise TaskError(f'{where}.{key} {full} is not a directory{_root_note(root, full)}')
            elif not _has_entries(full):
                raise TaskError(f'{where}.{key} {full} is empty (no images or label maps in it)')


def _has_entries(directory: str) -> bool:
    with os.scandir(directory) as entries:
        return any(True for _ in entries)


def _root_note(root: str, path: str) -> str:
    """Why a data path is missing, when the whole data root is."""
    top = root or osp.dirname(osp.dirname(path))
    return f' (the data root {top} does not exist)' if top and not osp.isdir(top) else ''
