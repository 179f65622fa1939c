"""The latency of a config's backbone, whole detector or whole segmentor, as ``tools/measure_latency.py`` measures
and reports it. ``scope='segmentor'`` (an mmseg config): the segmentor's ``encode_decode`` on random images of any
``(h, w)`` (e.g. 1024x2048), random weights, with the backbone's share
(:func:`~sparsevit.utils.latency.measure_segmentor_latency`).

``scope='backbone'`` (the original's): the config's backbone (:func:`~.build.backbone_cfg`: random weights,
``--pruning-ratios`` applied) on random input. ``scope='detector'``: the whole test forward of the detector, as
``tools/test.py`` runs it, on random images padded to a multiple of 32, with the **detector workload** of
:func:`detector_workload`: random weights whose RoI classifier favours one class (:func:`favour_one_class_`), so
every image yields the config's ``max_per_img`` detections, as a trained model on a busy image, and the mask head
runs at full load. The timing itself is :func:`sparsevit.utils.latency.measure_backbone_latency` /
:func:`~sparsevit.utils.latency.measure_detector_latency`.
"""
import logging
import os.path as osp
import sys
from typing import Optional

import torch

from ..utils.config import load_config
from ..tasks import task_of
from ..utils.latency import (ImgSize, default_protocol, device_name, measure_backbone_latency,
                             measure_detector_latency, measure_segmentor_latency, resolve_device, size_text)
from ..utils.precision import resolve_dtype
from .build import backbone_cfg

#: scope 'detector': added to the random RoI classifier's first logit (see :func:`favour_one_class_`).
FAVOURED_LOGIT = 5.0
SCOPES = ('backbone', 'detector', 'segmentor')
#: The task (:mod:`sparsevit.tasks`) a whole-model scope needs.
SCOPE_TASK = dict(detector='detection', segmentor='segmentation')


def favour_one_class_(model: torch.nn.Module, logit: float = FAVOURED_LOGIT) -> int:
    """Raise the RoI classifiers' logit of the first class by ``logit``; returns how many heads were changed.

    With random weights every class scores about ``1 / (num_classes + 1)`` (0.012 on COCO), below the test
    config's ``score_thr`` (0.05): no box would survive and the mask head would never run. With one favoured class
    each proposal yields one candidate, so each image gets up to ``max_per_img`` (100) detections from an NMS over
    its proposals: the workload of a trained detector on a busy image.
    """
    heads = [m for m in model.roi_head.modules() if isinstance(getattr(m, 'fc_cls', None), torch.nn.Linear)
             and m.fc_cls.bias is not None]
    with torch.no_grad():
        for head in heads:
            head.fc_cls.bias[0] += logit
    return len(heads)


def detector_workload(cfg, bb: dict) -> torch.nn.Module:
    """The config's detector around the backbone config ``bb``, with mmdet's random init of every part and one
    favoured class (:func:`favour_one_class_`). ValueError for a detector without RoI heads."""
    from mmdet.models import build_detector
    model_cfg = cfg.model.copy()
    model_cfg.backbone = bb
    model_cfg.pop('pretrained', None)
    model = build_detector(model_cfg, train_cfg=None if 'train_cfg' in model_cfg else cfg.get('train_cfg'),
                           test_cfg=None if 'test_cfg' in model_cfg else cfg.get('test_cfg'))
    if not hasattr(model, 'roi_head'):
        raise ValueError(f'--scope detector needs a two-stage detector with RoI heads (e.g. Mask R-CNN), got '
                         f'{type(model).__name__}')
    logging.disable(logging.WARNING)  # mmcv logs every parameter's initialisation, mmdet "no pre-trained weights"
    try:
        model.init_weights()  # mmdet's random init of every part (the backbone's pretrained init_cfg was removed)
    finally:
        logging.disable(logging.NOTSET)
    favour_one_class_(model)
    return model


def segmentor_workload(cfg, bb: dict) -> torch.nn.Module:
    """The config's segmentor around the backbone config ``bb``, with mmseg's random init of every part (SyncBN as
    BN without CUDA: :func:`sparsevit.tasks.segmentation.build_model`)."""
    model_cfg = cfg.model.copy()
    model_cfg.backbone = bb
    model_cfg.pop('pretrained', None)
    logging.disable(logging.WARNING)
    try:
        model = task_of(cfg).build_model(model_cfg)
        model.init_weights()
    finally:
        logging.disable(logging.NOTSET)
    return model


def check_scope(scope: str, cfg) -> None:
    """ValueError (one line) when a whole-model scope does not fit the config's task."""
    if scope not in SCOPES:
        raise ValueError(f'--scope must be one of {", ".join(SCOPES)}, got {scope!r}')
    task = task_of(cfg)
    if scope in SCOPE_TASK and SCOPE_TASK[scope] != task.name:
        other = next(k for k, v in SCOPE_TASK.items() if v == task.name)
        raise ValueError(f'--scope {scope} needs a {scope} config; {cfg.model.type} is a {task.model_kind} '
                         f'(use --scope backbone or --scope {other})')


def _progress_bar(total: int):
    """A progress callback for an mmcv bar on stderr whose clock starts at the first forward (so compiling is not in
    the ETA), and the bar."""
    from mmcv import ProgressBar
    bar = ProgressBar(total, file=sys.stderr, start=False)

    def progress(i: int) -> None:
        if i == 0:
            bar.start()
        bar.update()

    return progress, bar


def measure_config(config: str, cfg_options: Optional[dict] = None, ratios_text: Optional[str] = None,
                   scope: str = 'backbone', img_size: ImgSize = 672, batch_size: int = 4,
                   num_warmup: Optional[int] = None, num_repeats: Optional[int] = None, device: str = 'auto',
                   dtype: str = 'fp32', compile: bool = False, progress: bool = True) -> dict:
    """Load ``config``, build its backbone (or detector), measure it and return the result dict.

    ``img_size``: a square side or ``(h, w)``. ``num_warmup``/``num_repeats`` None: the device's protocol
    (:func:`~sparsevit.utils.latency.default_protocol`);
    ``progress``: a progress bar with ETA on stderr. One ``measuring ...`` line goes to stderr first.

    Raises:
        ValueError: bad input (config, ratios, device, dtype, a detector without RoI heads).
        CompileError: a failed ``compile``.
    """
    if not osp.isfile(config):  # named before any other error, as the original
        raise ValueError(f'config file not found: {config}')
    dev = resolve_device(device)
    resolve_dtype(dtype, dev)
    warmup, repeats, protocol = default_protocol('measure_latency', dev, num_warmup, num_repeats)
    cfg = load_config(config, cfg_options)
    check_scope(scope, cfg)
    bb = backbone_cfg(cfg, ratios_text=ratios_text)
    if scope == 'backbone':
        from mmdet.models import build_backbone
        model = build_backbone(bb)
    else:
        model = (detector_workload if scope == 'detector' else segmentor_workload)(cfg, bb)
    what = bb['type'] if scope == 'backbone' else f'{type(model).__name__} with {bb["type"]}'
    print(f'measuring {what} of {config} at {size_text(img_size)}, batch {batch_size}, '
          f'{dtype}{", compiled" if compile else ""} on {dev}; {protocol}', file=sys.stderr)
    if compile:
        print('compiling (torch.compile, fullgraph=True) ...', file=sys.stderr, flush=True)
    callback, bar = _progress_bar(warmup + repeats) if progress else (None, None)
    measure = dict(backbone=measure_backbone_latency, detector=measure_detector_latency,
                   segmentor=measure_segmentor_latency)[scope]
    result = measure(model, img_size=img_size, batch_size=batch_size, num_warmup=warmup, num_repeats=repeats,
                     device=dev, dtype=dtype, compile=compile, progress=callback)
    if bar is not None:
        sys.stderr.write('\n')
    backbone = model if scope == 'backbone' else model.backbone
    ratios = getattr(backbone, 'pruning_ratios', None)
    result.update(config=config, backbone=bb['type'], scope=scope, protocol=protocol, device_name=device_name(dev),
                  torch=torch.__version__, pruning_ratios=[list(s) for s in ratios] if ratios is not None else None)
    if scope == 'detector':
        result.update(detector=type(model).__name__, favoured_class_logit=FAVOURED_LOGIT)
    if scope == 'segmentor':
        result.update(segmentor=type(model).__name__, decode_head=type(model.decode_head).__name__)
    return result


def latency_report(result: dict) -> str:
    """The lines ``tools/measure_latency.py`` prints on stdout; the last one ends with the latency in ms."""
    size = size_text(result['img_size'])
    precision = result['dtype'] + (', compiled' if result['compiled'] else '')
    lines = [f'protocol: {result["protocol"]}']
    what = result['backbone']
    if result['scope'] == 'detector':
        total, bb = result['latency_ms'], result['backbone_ms']
        neck = result.get('neck_ms')
        rest = total - bb - (neck or 0.0)
        lines.append(f'backbone {bb:.2f} ms ({100 * result["backbone_share"]:.1f} % of the detector)'
                     + (f', neck {neck:.2f} ms ({100 * neck / total:.1f} %)' if neck is not None else '')
                     + f', heads and post-processing {rest:.2f} ms ({100 * rest / total:.1f} %); '
                     f'{result["detections_per_image"]:.1f} detections per image')
        what = f'{result["detector"]} ({result["backbone"]})'
    if result['scope'] == 'segmentor':
        total, bb, head = result['latency_ms'], result['backbone_ms'], result['head_ms']
        neck = result.get('neck_ms')
        lines.append(f'backbone {bb:.2f} ms ({100 * result["backbone_share"]:.1f} % of the segmentor)'
                     + (f', neck {neck:.2f} ms ({100 * neck / total:.1f} %)' if neck is not None else '')
                     + f', {result["decode_head"]} and resize {head:.2f} ms ({100 * head / total:.1f} %)')
        what = f'{result["segmentor"]} ({result["backbone"]}, {result["decode_head"]})'
    lines.append(f'latency of {what} ({size}, batch {result["batch_size"]}, {result["device"]}, {precision}): '
                 f'{result["latency_ms"]:.2f} ms')
    return '\n'.join(lines)
