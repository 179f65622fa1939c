"""Do the windows SparseViT keeps hold the objects? Kept-window recall/precision against instance masks.

    python tools/analyze_windows.py CONFIG CKPT --split val --ratios 0.5 0.7 --num-images 40 --random-seeds 3 \\
        --json OUT.json --markdown OUT.md [--cfg-options ...]

For each setting (a uniform ``--ratios`` value for every block, or without ``--ratios`` the config's
``pruning_ratios``) and each stage: the share of ground-truth object pixels in the windows the first regular and
the first shifted pruned block keep (L2 selection, random selection over ``--random-seeds`` seeds, and chance),
the share of kept windows that hold an object, recall by COCO object size, and the stage input's magnitude on
object vs background tokens. Prints the markdown tables; the analysis is
:func:`sparsevit.analysis.kept_windows.analyze_dataset` (its module docstring defines every number).
Bad input prints one ``analyze_windows.py: error: ...`` line and exits 2.
"""
import logging
import sys
import warnings

# import-time notices of torch/mmcv that would bury a one-line error message
warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)

from mmcv import DictAction  # noqa: E402

import sparsevit  # noqa: F401,E402  (registers SparseViT)
from sparsevit.analysis.kept_windows import SPLITS, analyze_dataset, format_markdown, write_outputs  # noqa: E402
from sparsevit.utils.cli import OneLineParser, check_outputs, fraction, int_at_least, run_reporting_errors  # noqa: E402

PROG = 'analyze_windows.py'


def parse_args(argv=None):
    p = OneLineParser(prog=PROG, description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='detector config (SparseViT, or a dense Swin run as SparseViT)')
    p.add_argument('checkpoint', nargs='?', default=None, help='detector checkpoint (random weights without it)')
    p.add_argument('--split', choices=SPLITS, default='val',
                   help="the config's data.{split}, through the test pipeline (default: val)")
    p.add_argument('--ratios', type=fraction, nargs='+', default=None, metavar='RATIO',
                   help="uniform prune ratios to analyse, one setting each (default: the config's pruning_ratios)")
    p.add_argument('--num-images', type=int_at_least(1), default=40, help='first images of the split (default: 40)')
    p.add_argument('--random-seeds', type=int_at_least(0), default=3,
                   help='seeds of the random-selection baseline (default: 3; 0: none)')
    p.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto', help='default: auto')
    p.add_argument('--json', default=None, help='write the result to this JSON file')
    p.add_argument('--markdown', default=None, help='write the tables to this markdown file')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (key=value)')
    args = p.parse_args(argv)
    check_outputs(p, args, '--json', '--markdown')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run_reporting_errors(PROG, lambda: analyze_dataset(
        args.config, args.checkpoint, split=args.split, prune_ratios=args.ratios, num_images=args.num_images,
        random_seeds=args.random_seeds, cfg_options=args.cfg_options, device=args.device))
    if result is None:
        return 2
    print(format_markdown(result), end='')
    write_outputs(result, args.json, args.markdown)
    return 0


if __name__ == '__main__':
    sys.exit(main())
