"""The segmentation benchmark: a whole UperNet Swin-T segmentor (random weights) timed at a Cityscapes crop size on
this machine, dense vs uniform 0.3 / 0.5 / 0.7 and the original's searched cfg1, back to back in interleaved rounds
in one process per batch size, with the backbone's share timed inside the same runs.

    python tools/benchmark_segmentor.py                      # 512x1024, batch 1 and 2 (make benchmark-seg)
    python tools/benchmark_segmentor.py --img_size 1024 2048 --batch-sizes 1

Prints a markdown table (ratios to dense within the same run) and writes every run to ``--out`` (JSON). The
measurement: :func:`sparsevit.experiments.latency.segmentor_benchmark`.
"""
import argparse
import logging
import sys
import warnings

warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)

from sparsevit.experiments.latency import segmentor_benchmark, segmentor_table  # noqa: E402
from sparsevit.utils.cli import OneLineParser, check_outputs, image_size, int_at_least, write_json  # noqa: E402

CONFIG = 'configs/sparsevit_seg/upernet_sparsevit_512x1024_cityscapes.py'


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(description='Whole-segmentor latency, dense vs sparse, interleaved (CPU).')
    p.add_argument('--config', default=CONFIG, help=f'an mmseg SparseViT config (default: {CONFIG})')
    p.add_argument('--img_size', '--img-size', dest='img_size', type=int_at_least(32), nargs='+', default=[512, 1024],
                   metavar='SIZE', help='H W, or one side (default: 512 1024)')
    p.add_argument('--batch-sizes', type=int_at_least(1), nargs='+', default=[1, 2], help='default: 1 2')
    p.add_argument('--rounds', type=int_at_least(1), default=3, help='interleaved timed rounds (default: 3)')
    p.add_argument('--repeats', type=int_at_least(1), default=2,
                   help='timed forwards per configuration and round, trimmed mean (default: 2)')
    p.add_argument('--warmup', type=int_at_least(0), default=1, help='untimed forwards before each (default: 1)')
    p.add_argument('--out', default='work_dirs/benchmark_segmentor.json', help='result JSON')
    args = p.parse_args(argv)
    args.img_size = image_size(p, args.img_size)
    check_outputs(p, args, '--out')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        results = segmentor_benchmark(args.config, args.img_size, args.batch_sizes, args.rounds, args.repeats, args.warmup)
    except (ValueError, FileNotFoundError) as err:
        print(f'benchmark_segmentor.py: error: {err}', file=sys.stderr)
        return 2
    write_json(args.out, {str(k): v for k, v in results.items()})
    print(segmentor_table(results), end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
