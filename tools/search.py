"""Latency-constrained evolutionary search of SparseViT's layer-wise sparsity (the original's search step).

    torchpack dist-run -np 8 python tools/search.py configs/sparsevit/mask_rcnn_sparsevit.py \\
        mask_rcnn_sparsevit_saa.pth --max 42 --min 37
    torchpack dist-run -np 8 python tools/search.py ... --budgets 33 36 39 42   # every budget in one run
    torchpack dist-run -np 8 python tools/search.py ... --max 0.85x --min 0.6x  # fractions of dense

also with ``-np 1`` or as plain ``python tools/search.py ...`` (one process), on GPUs (nccl) or CPU (gloo).
Finds the configuration (one pruning ratio per W-MSA/SW-MSA block pair) with the best bbox mAP (x100) among those
whose backbone latency (batch ``--batch-size`` at ``--img_size``) lies in ``[--min, --max]`` ms (``0.85x``: a
fraction of the dense latency as the search measures or predicts it); with ``--budgets``, the best of each budget.
Latency is measured per candidate (the original's protocol on CUDA) or predicted from ``--latency-table``. The
outputs go to ``--work-dir``: the original's log ``search_max{MAX}_min{MIN}.txt``, the history, state, summary, plot
and ready-to-train config(s) (see ``sparsevit/search/outputs.py``). This file parses the arguments; their check is
:meth:`sparsevit.search.settings.SearchSettings.check`, the search :func:`sparsevit.search.runner.run_search` (the
strategies: ``sparsevit/search/evolution.py``).
"""
import argparse
import logging
import sys
import warnings

# import-time notices of torch/mmcv that would bury a one-line error message
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)
warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV will release v2.0.0')

from mmcv import DictAction  # noqa: E402

from sparsevit.search.budgets import Limit  # noqa: E402
from sparsevit.search.evolution import STRATEGIES  # noqa: E402
from sparsevit.search.runner import PROG, run_search  # noqa: E402
from sparsevit.search.settings import SearchSettings  # noqa: E402
from sparsevit.utils import dist  # noqa: E402
from sparsevit.utils.cli import OneLineParser, image_size  # noqa: E402
from sparsevit.utils.interrupt import Interrupted  # noqa: E402


def latency_limit(text: str) -> Limit:
    """``42`` (ms) or ``0.85x`` (a fraction of the dense latency), kept as typed: the outputs are named with it, as
    the original's (``--max 42 --min 37`` -> ``search_max42_min37.txt``)."""
    try:
        return Limit.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description='Latency-constrained evolutionary search of SparseViT sparsity.')
    p.add_argument('config', help='search config, e.g. configs/sparsevit/mask_rcnn_sparsevit.py')
    p.add_argument('checkpoint', help='the Sparsity-Aware Adaptation checkpoint')
    p.add_argument('--max', type=latency_limit, default=None,
                   help='upper end of the latency band: ms (42, as the original) or a fraction of the dense '
                   "configuration's latency as the search measures or predicts it (0.85x)")
    p.add_argument('--min', type=latency_limit, default=Limit.parse('0'),
                   help='lower end of the latency band, or of the first budget (ms or a fraction such as 0.6x, in '
                   'the form of --max/--budgets; default: 0)')
    p.add_argument('--budgets', type=latency_limit, nargs='+', default=None, metavar='LIMIT',
                   help='instead of --max: ascending latency budgets (ms, or fractions of dense such as 0.65x 0.72x),'
                   ' all searched in one run; budget i accepts (budget i-1, budget i], the first [--min, budget 0]')
    p.add_argument('--work-dir', default='work_dirs/', help='output directory (default: work_dirs/)')
    p.add_argument('--strategy', choices=STRATEGIES, default='original',
                   help='original: the original algorithm (default); elitist: parents survive, duplicates redrawn')
    p.add_argument('--iters', type=int, default=10000,
                   help='search steps: sampled candidates, cached and infeasible ones included (default: 10000, as '
                   'the original)')
    p.add_argument('--population', type=int, default=100,
                   help='feasible candidates per generation (default: 100; an equal share per budget)')
    p.add_argument('--parents', type=int, default=25,
                   help='top candidates of a generation kept as parents (default: 25; an equal share per budget)')
    p.add_argument('--mutation-prob', type=float, default=0.1, help='per-gene mutation probability (default: 0.1)')
    p.add_argument('--seed', type=int, default=0, help='seed of the search and of the --num-images subset')
    p.add_argument('--num-images', type=int, default=None,
                   help='score on a fixed seeded subset of this many test images (default: the whole test set)')
    p.add_argument('--img_size', '--img-size', dest='img_size', type=int, nargs='+', default=[672], metavar='SIZE',
                   help='input of the latency measurement: one value (square, as the original) or H W (e.g. '
                   '512 1024 for a segmentor; default: 672)')
    p.add_argument('--batch-size', '--batch_size', dest='batch_size', type=int, default=4,
                   help='batch of the latency measurement (default: 4)')
    p.add_argument('--num-warmup', type=int, default=None,
                   help='untimed forwards per measurement (default: 200 per rank on CUDA, as the original; 5 on CPU)')
    p.add_argument('--num-repeats', type=int, default=None,
                   help='timed forwards per measurement (default: 300 per rank on CUDA, as the original; 20 on CPU)')
    p.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto', help='default: cuda if available')
    p.add_argument('--latency-table', default=None, metavar='PATH',
                   help='predict latency from an additive per-stage table: built and saved at PATH if missing')
    p.add_argument('--table-rounds', type=int, default=None,
                   help='rounds of the table build; each times every stage configuration inside full forwards '
                   '(165 forwards for Swin-T; default: --num-repeats / 5)')
    p.add_argument('--calibration-configs', type=int, default=6,
                   help='when building a table: full-forward measurements of configurations spread over the latency '
                   'range that calibrate it (0: the plain additive sum; default: 6)')
    p.add_argument('--check-configs', type=int, default=5,
                   help='with a table: random evaluated configs measured to check it, besides dense, sparsest and '
                   'the best(s) (default: 5)')
    p.add_argument('--max-retries', type=int, default=1000,
                   help='elitist strategy: rejected draws (duplicate or outside the band) in a row before giving up '
                   '(default: 1000)')
    p.add_argument('--eval', nargs='+', default=None,
                   help='metrics evaluated: COCO bbox / segm for a detector, mIoU / mDice / mFscore for a segmentor; '
                   'the search maximises the first, x100 (default: bbox for a detector, mIoU for a segmentor)')
    p.add_argument('--metric', default=None,
                   help='the metric the search maximises (put first among --eval), e.g. bbox, segm, mIoU, mDice')
    p.add_argument('--resume', action='store_true', help='continue the search saved in --work-dir')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (key=value)')
    args = p.parse_args(argv)
    args.img_size = image_size(p, args.img_size)
    return args


def main(argv=None) -> int:
    """Parse, validate and search; bad input prints one ``search.py: error: ...`` line and returns 1, SIGINT /
    SIGTERM one line on how to resume and returns 130 / 143."""
    args = parse_args(argv)
    try:
        settings = SearchSettings(**vars(args))
        settings.check()
        run_search(settings)
    except (ValueError, OSError, dist.DistError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f'{PROG}: error: {message}', file=sys.stderr, flush=True)
        return 1
    except Interrupted as stop:  # SIGINT / SIGTERM: the state is saved, the message says how to resume
        if dist.is_master():
            print(f'{PROG}: {stop}', file=sys.stderr, flush=True)
        return stop.exit_code
    dist.destroy_dist()
    return 0


if __name__ == '__main__':
    sys.exit(main())
