"""Measure the latency of a config's backbone (or whole detector), as the original SparseViT ``measure_latency.py``.

    python tools/measure_latency.py CONFIG --img_size 672
    python tools/measure_latency.py CONFIG --img_size 672 --scope detector --dtype bf16
    python tools/measure_latency.py SEG_CONFIG --img_size 1024 2048 --scope segmentor --batch-size 1

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
backbone's and neck's share timed inside the same runs. ``--scope segmentor`` (an mmseg config): the segmentor's
whole ``encode_decode`` (backbone, decode head, resize) on random images, with the backbone's share;
``--img_size H W`` gives a non-square input (one value: square, as the original).

The measurement and the detector workload: :mod:`sparsevit.deploy.latency`. The last line printed is the latency in
milliseconds. Errors in the arguments or the config print one line and
exit 2; a failed ``--compile`` prints one line and exits 1.
"""
import argparse
import logging
import sys
import warnings

# Quiet imports: keep stderr to the progress bar and, on bad input, one error line.
warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)

from mmcv import DictAction  # noqa: E402

from sparsevit.deploy.latency import SCOPES, latency_report, measure_config  # noqa: E402
from sparsevit.utils.cli import OneLineParser, check_outputs, image_size, write_json  # noqa: E402
from sparsevit.utils.latency import CompileError  # noqa: E402
from sparsevit.utils.precision import DTYPES  # noqa: E402


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
    parser = OneLineParser(description='Measure the backbone (or whole detector / segmentor) latency of a '
                           '(Sparse)Swin config.')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--img_size', '--img-size', dest='img_size', type=positive_int, nargs='+', default=[672],
                        metavar='SIZE', help='input size in pixels: one value (square) or H W (default: 672)')
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
    parser.add_argument('--scope', choices=SCOPES, default='backbone',
                        help='backbone (default, as the original), the whole detector test forward, or the whole '
                        'segmentor encode_decode (an mmseg config), on random images, with the backbone share')
    parser.add_argument('--pruning-ratios', default=None,
                        help='override the ratios: a float, a per-stage or per-block list (JSON/Python), or a '
                        'gene dict such as {"backbone.stages.0": 0.3, ...}')
    parser.add_argument('--json', default=None, help='also write the result (and every timed run) to this file')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (key=value)')
    args = parser.parse_args(argv)
    args.img_size = image_size(parser, args.img_size)
    check_outputs(parser, args, '--json')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = measure_config(args.config, args.cfg_options, args.pruning_ratios, args.scope, args.img_size,
                                args.batch_size, args.num_warmup, args.num_repeats, args.device, args.dtype,
                                args.compile, progress=not args.no_progress)
    except CompileError as err:
        print(f'measure_latency.py: error: {err}', file=sys.stderr)
        return 1
    except (ValueError, TypeError, KeyError, FileNotFoundError, SyntaxError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f'measure_latency.py: error: {message}', file=sys.stderr)
        return 2
    if args.json is not None:
        write_json(args.json, result)
    print(latency_report(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
