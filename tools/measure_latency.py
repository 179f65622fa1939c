"""Measure the backbone latency of a config, as the original SparseViT ``tools/measure_latency.py``.

    python tools/measure_latency.py CONFIG --img_size 672

Backbone only (built from ``cfg.model.backbone`` after the config's top-level ``pruning_ratios``), random input of
batch 4, warm-up forwards, then timed forwards whose mean is taken after dropping the top and bottom 25 %. The last
line printed is the latency in milliseconds. Errors in the arguments or the config print one line and exit 2.
"""
import argparse
import ast
import json
import logging
import os
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

from mmdet.models import build_backbone  # noqa: E402
from sparsevit.schedule import genes_to_ratios, normalize_pruning_ratios  # noqa: E402
from sparsevit.utils.config import SPARSE_BACKBONES, apply_sparsevit_cfg  # noqa: E402
from sparsevit.utils.latency import measure_backbone_latency, resolve_device  # noqa: E402

#: Dense Swin backbones that the sparse backbone can stand in for (same arguments, same weights).
SWIN_BACKBONES = ('SwinTransformer', ) + SPARSE_BACKBONES


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line (no usage dump) and exits 2."""

    def error(self, message: str):
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


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
    parser = OneLineParser(description='Measure the backbone latency of a (Sparse)Swin detector config.')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--img_size', '--img-size', dest='img_size', type=positive_int, default=672,
                        help='square input size in pixels (default: 672)')
    parser.add_argument('--batch-size', '--batch_size', dest='batch_size', type=positive_int, default=4,
                        help='images per forward (default: 4, as the original)')
    parser.add_argument('--num-warmup', type=non_negative_int, default=10, help='untimed forwards (default: 10)')
    parser.add_argument('--num-repeats', type=positive_int, default=50, help='timed forwards (default: 50)')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto',
                        help='cuda when available unless set (default: auto)')
    parser.add_argument('--pruning-ratios', default=None,
                        help='override the ratios: a float, a per-stage or per-block list (JSON/Python), or a '
                        'gene dict such as {"backbone.stages.0": 0.3, ...}')
    parser.add_argument('--json', default=None, help='also write the result (and every timed run) to this file')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (key=value)')
    return parser.parse_args(argv)


def parse_ratios(text: str, depths):
    """Parse ``--pruning-ratios`` text into per-block ratios for ``depths``; ValueError on anything invalid."""
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f'--pruning-ratios {text!r} is neither JSON nor a Python literal; expected a float, '
                             'a list per stage, a list of per-block lists or a gene dict') from None
    if isinstance(value, dict):
        return genes_to_ratios(value, depths)
    return normalize_pruning_ratios(value, depths)


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


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)'


def run(args: argparse.Namespace) -> dict:
    """Load the config, build the backbone, measure it and return the result dict."""
    if not osp.isfile(args.config):
        raise ValueError(f'config file not found: {args.config}')
    device = resolve_device(args.device)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    apply_sparsevit_cfg(cfg)
    bb = backbone_cfg(cfg, args.pruning_ratios)
    backbone = build_backbone(bb)
    print(f'measuring {bb["type"]} of {args.config} at {args.img_size}x{args.img_size}, batch {args.batch_size}, '
          f'{args.num_warmup} warm-up + {args.num_repeats} timed forwards on {device}', file=sys.stderr)
    bar = None if args.no_progress else ProgressBar(args.num_repeats, file=sys.stderr)
    result = measure_backbone_latency(backbone, img_size=args.img_size, batch_size=args.batch_size,
                                      num_warmup=args.num_warmup, num_repeats=args.num_repeats, device=device,
                                      progress=None if bar is None else (lambda i: bar.update()))
    if bar is not None:
        sys.stderr.write('\n')
    ratios = getattr(backbone, 'pruning_ratios', None)
    result.update(config=args.config, backbone=bb['type'], device_name=device_name(device),
                  pruning_ratios=[list(s) for s in ratios] if ratios is not None else None,
                  torch=torch.__version__)
    return result


def write_json(path: str, result: dict) -> None:
    parent = osp.dirname(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(result, f, indent=2)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.json is not None and osp.isdir(args.json):
        print(f'measure_latency.py: error: --json {args.json} is a directory; give a file path', file=sys.stderr)
        return 2
    try:
        result = run(args)
    except (ValueError, TypeError, KeyError, FileNotFoundError, SyntaxError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f'measure_latency.py: error: {message}', file=sys.stderr)
        return 2
    if args.json is not None:
        write_json(args.json, result)
    print(f'latency of {result["backbone"]} ({args.img_size}x{args.img_size}, batch {args.batch_size}, '
          f'{result["device"]}): {result["latency_ms"]:.2f} ms')
    return 0


if __name__ == '__main__':
    sys.exit(main())
