"""Check that half precision keeps the windows fp32 keeps: the backbone of a config in fp32 and under autocast.

    python tools/check_precision.py CONFIG [CHECKPOINT] --dtype bf16 [--num-images 8] [--pruning-ratios ...]
    python tools/check_precision.py CONFIG --random --img_size 224 --num-images 4 --dtype bf16

Runs the config's SparseViT backbone (top-level ``pruning_ratios`` applied; a dense mmdet Swin becomes SparseViT
with the same weights) on test-set images (the config's test pipeline, first augmentation; ``--img_size`` resizes
them to a square) or on random images (``--random``), once in fp32 and once under ``torch.autocast`` at
``--dtype``, and prints:

* the fraction of kept windows on which the two runs agree, the number of flips and the largest relative score
  gap of a flip (its fp32 score's distance from the fp32 keep boundary, relative to the boundary: near 0 means the
  flip was a near-tie);
* the same-input check: each stage's input from the autocast run, ranked again in fp32, keeps exactly the windows
  the autocast run kept (the backbone ranks in fp32; a mismatch would be a bug).

Errors in the arguments print one line and exit 2; ``--min-agreement`` makes a lower agreement exit 1.
"""
import argparse
import sys
import warnings

warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)

from mmcv import DictAction  # noqa: E402

import sparsevit  # noqa: F401,E402  (registers SparseViT)
from sparsevit.analysis.selection_agreement import check_precision, format_precision_check  # noqa: E402
from sparsevit.utils.cli import (OneLineParser, check_outputs, fraction, int_at_least, run_reporting_errors,  # noqa: E402
                                 write_json)


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(prog='check_precision.py', description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='detector config file')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='detector checkpoint (its backbone weights are used); random weights without it')
    parser.add_argument('--dtype', choices=('bf16', 'fp16'), default='bf16',
                        help='autocast precision compared with fp32: bf16 (CPU and CUDA, default) or fp16 (CUDA)')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto',
                        help='cuda when available unless set (default: auto)')
    parser.add_argument('--num-images', type=int_at_least(1), default=8, help='images to check (default: 8)')
    parser.add_argument('--random', action='store_true', help='random images instead of test-set images')
    parser.add_argument('--img_size', '--img-size', dest='img_size', type=int_at_least(1), default=None,
                        help='square input size; test-set images are resized to it (default: the test pipeline\'s '
                        'size; 672 for --random)')
    parser.add_argument('--batch-size', type=int_at_least(1), default=2, help='images per forward (default: 2)')
    parser.add_argument('--pruning-ratios', default=None,
                        help='override the ratios: a float, a per-stage or per-block list (JSON/Python), or a '
                        'gene dict such as {"backbone.stages.0": 0.3, ...}')
    parser.add_argument('--seed', type=int, default=0, help='seed of --random images (default: 0)')
    parser.add_argument('--min-agreement', type=fraction, default=None,
                        help='exit 1 when the agreement of kept windows is below this fraction')
    parser.add_argument('--json', default=None, help='also write the result to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (key=value)')
    args = parser.parse_args(argv)
    check_outputs(parser, args, '--json')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run_reporting_errors('check_precision.py', lambda: check_precision(
        args.config, args.checkpoint, args.dtype, args.device, args.num_images, args.random, args.img_size,
        args.batch_size, args.pruning_ratios, args.seed, args.cfg_options))
    if result is None:
        return 2
    print(format_precision_check(result))
    if args.json is not None:
        write_json(args.json, result)
    if result['same_input_mismatches']:
        return 1
    if args.min_agreement is not None and result['agreement'] < args.min_agreement:
        print(f"check_precision.py: agreement {result['agreement']:.4f} is below --min-agreement "
              f'{args.min_agreement}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
