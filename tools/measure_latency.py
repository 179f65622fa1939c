"""Measure the latency of a config's backbone (or whole detector), as the original SparseViT ``measure_latency.py``.

    python tools/measure_latency.py CONFIG --img_size 672
    python tools/measure_latency.py CONFIG --img_size 672 --scope detector --dtype bf16

Defaults as the original: backbone only (built from ``cfg.model.backbone`` after the config's top-level
``pruning_ratios``), random input of batch 4, inference mode, 500 warm-up and 500 timed forwards on CUDA, the mean
of the middle 50 % (25 % trimmed on each side). On CPU the default is a short protocol (5 + 20 forwards: the
original's would take most of an hour per configuration at 672x672) with a progress bar and ETA;
``--num-warmup``/``--num-repeats`` override both, and the output and ``--json`` say which protocol was used.

Additions (issue 9): ``--dtype fp32|fp16|bf16`` (autocast; fp16 on CUDA only), ``--compile``
(``torch.compile(backbone, fullgraph=True)``; with ``--scope detector`` only the backbone is compiled), and
``--scope detector``: the whole test forward of the detector, as ``tools/test.py`` runs it (Mask R-CNN: backbone,
neck, RPN and its NMS, RoI box head and its NMS, mask head, mask pasting), on random images padded to a multiple of
32, with random weights whose RoI classifier favours one class (so every image yields the config's
``max_per_img`` detections, as a trained model on a busy image, and the mask head runs at full load), and the
backbone's and neck's share timed inside the same runs.

The last line printed is the latency in milliseconds. Errors in the arguments or the config print one line and
exit 2; a failed ``--compile`` prints one line and exits 1.
"""
import argparse
import logging
import os.path as osp
import platform
import sys
import warnings
from typing import Optional

# Quiet imports: keep stderr to the progress bar and, on bad input, one error line.
warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)

import torch  # noqa: E402
from mmcv import Config, DictAction, ProgressBar  # noqa: E402

from mmdet.models import build_backbone, build_detector  # noqa: E402
from sparsevit.deploy.build import SWIN_BACKBONES, parse_ratios  # noqa: E402
from sparsevit.utils.cli import OneLineParser, write_json  # noqa: E402
from sparsevit.utils.config import apply_sparsevit_cfg  # noqa: E402
from sparsevit.utils.latency import (CompileError, default_protocol, measure_backbone_latency,  # noqa: E402
                                     measure_detector_latency, resolve_device)
from sparsevit.utils.precision import DTYPES, resolve_dtype  # noqa: E402

#: --scope detector: added to the random RoI classifier's first logit (see :func:`favour_one_class_`).
FAVOURED_LOGIT = 5.0


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be a positive integer, got {text}')
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be a non-negative integer, got {text}')
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(description='Measure the backbone (or detector) latency of a (Sparse)Swin detector '
                           'config.')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--img_size', '--img-size', dest='img_size', type=positive_int, default=672,
                        help='square input size in pixels (default: 672)')
    parser.add_argument('--batch-size', '--batch_size', dest='batch_size', type=positive_int, default=4,
                        help='images per forward (default: 4, as the original)')
    parser.add_argument('--num-warmup', type=non_negative_int, default=None,
                        help='untimed forwards (default: 500 on CUDA, as the original; 5 on CPU)')
    parser.add_argument('--num-repeats', type=positive_int, default=None,
                        help='timed forwards (default: 500 on CUDA, as the original; 20 on CPU)')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto',
                        help='cuda when available unless set (default: auto)')
    parser.add_argument('--dtype', choices=tuple(DTYPES), default='fp32',
                        help='autocast precision: fp32 (default), bf16 (CPU and CUDA) or fp16 (CUDA only)')
    parser.add_argument('--compile', action='store_true',
                        help='time torch.compile(backbone, fullgraph=True) (compiled before the warm-up)')
    parser.add_argument('--scope', choices=('backbone', 'detector'), default='backbone',
                        help='backbone (default, as the original) or the whole detector test forward on random '
                        'images, with the backbone share')
    parser.add_argument('--pruning-ratios', default=None,
                        help='override the ratios: a float, a per-stage or per-block list (JSON/Python), or a '
                        'gene dict such as {"backbone.stages.0": 0.3, ...}')
    parser.add_argument('--json', default=None, help='also write the result (and every timed run) to this file')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (key=value)')
    return parser.parse_args(argv)


def backbone_cfg(cfg: Config, ratios_text: Optional[str]) -> dict:
    """The backbone config to build, with ``--pruning-ratios`` applied (a dense Swin becomes a sparse one)."""
    if 'model' not in cfg or 'backbone' not in cfg.model:
        raise ValueError('the config has no model.backbone')
    bb = cfg.model.backbone.copy()
    bb.pop('init_cfg', None)  # random weights: latency does not depend on them, and no download
    bb.pop('pretrained', None)
    if ratios_text is None:
        return bb
    if bb.get('type') not in SWIN_BACKBONES:
        raise ValueError(f"--pruning-ratios needs a Swin backbone {SWIN_BACKBONES}, got {bb.get('type')!r}")
    if bb['type'] == 'SwinTransformer':
        bb['type'] = 'SparseSwinTransformer'
    bb['pruning_ratios'] = parse_ratios(ratios_text, bb.get('depths', (2, 2, 6, 2)))
    return bb


def build_model(cfg: Config, bb: dict, scope: str) -> torch.nn.Module:
    """The backbone, or the whole detector around it with random weights (:func:`favour_one_class_`)."""
    if scope == 'backbone':
        return build_backbone(bb)
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


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)'


def progress_of(bar: ProgressBar):
    """A progress callback for ``bar`` whose clock starts at the first forward (so compiling is not in the ETA)."""

    def progress(i: int) -> None:
        if i == 0:
            bar.start()
        bar.update()

    return progress


def run(args: argparse.Namespace) -> dict:
    """Load the config, build the backbone (or detector), measure it and return the result dict."""
    if not osp.isfile(args.config):
        raise ValueError(f'config file not found: {args.config}')
    device = resolve_device(args.device)
    resolve_dtype(args.dtype, device)
    warmup, repeats, protocol = default_protocol('measure_latency', device, args.num_warmup, args.num_repeats)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    apply_sparsevit_cfg(cfg)
    bb = backbone_cfg(cfg, args.pruning_ratios)
    model = build_model(cfg, bb, args.scope)
    what = bb['type'] if args.scope == 'backbone' else f'{type(model).__name__} with {bb["type"]}'
    print(f'measuring {what} of {args.config} at {args.img_size}x{args.img_size}, batch {args.batch_size}, '
          f'{args.dtype}{", compiled" if args.compile else ""} on {device}; {protocol}', file=sys.stderr)
    if args.compile:
        print('compiling (torch.compile, fullgraph=True) ...', file=sys.stderr, flush=True)
    bar = None if args.no_progress else ProgressBar(warmup + repeats, file=sys.stderr, start=False)
    measure = measure_backbone_latency if args.scope == 'backbone' else measure_detector_latency
    result = measure(model, img_size=args.img_size, batch_size=args.batch_size, num_warmup=warmup,
                     num_repeats=repeats, device=device, dtype=args.dtype, compile=args.compile,
                     progress=None if bar is None else progress_of(bar))
    if bar is not None:
        sys.stderr.write('\n')
    backbone = model if args.scope == 'backbone' else model.backbone
    ratios = getattr(backbone, 'pruning_ratios', None)
    result.update(config=args.config, backbone=bb['type'], scope=args.scope, protocol=protocol,
                  device_name=device_name(device), torch=torch.__version__,
                  pruning_ratios=[list(s) for s in ratios] if ratios is not None else None)
    if args.scope == 'detector':
        result.update(detector=type(model).__name__, favoured_class_logit=FAVOURED_LOGIT)
    return result


def report(result: dict) -> str:
    """The lines printed on stdout; the last one ends with the latency in ms."""
    size = f'{result["img_size"]}x{result["img_size"]}'
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
    lines.append(f'latency of {what} ({size}, batch {result["batch_size"]}, {result["device"]}, {precision}): '
                 f'{result["latency_ms"]:.2f} ms')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.json is not None and osp.isdir(args.json):
        print(f'measure_latency.py: error: --json {args.json} is a directory; give a file path', file=sys.stderr)
        return 2
    try:
        result = run(args)
    except CompileError as err:
        print(f'measure_latency.py: error: {err}', file=sys.stderr)
        return 1
    except (ValueError, TypeError, KeyError, FileNotFoundError, SyntaxError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f'measure_latency.py: error: {message}', file=sys.stderr)
        return 2
    if args.json is not None:
        write_json(args.json, result)
    print(report(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
