"""Latency-constrained evolutionary search of SparseViT's layer-wise sparsity (the original's search step).

    torchpack dist-run -np 8 python tools/search.py configs/sparsevit/mask_rcnn_sparsevit.py \\
        mask_rcnn_sparsevit_saa.pth --max 42 --min 37
    torchpack dist-run -np 8 python tools/search.py ... --budgets 33 36 39 42   # every budget in one run
    torchpack dist-run -np 8 python tools/search.py ... --max 0.85x --min 0.6x  # fractions of dense

also with ``-np 1`` or as plain ``python tools/search.py ...`` (one process), on GPUs (nccl) or CPU (gloo).
Finds the configuration (one pruning ratio per W-MSA/SW-MSA block pair) with the best bbox mAP (x100) among those
whose backbone latency (batch ``--batch-size`` at ``--img_size``) lies in ``[--min, --max]`` ms; with
``--budgets``, the best of each budget (latency in ``(previous budget, budget]``, the first from ``--min``). A
limit typed with a trailing ``x`` (``--max 0.85x --min 0.6x``, ``--budgets 0.65x 0.72x``) is a fraction of the
dense configuration's latency as the search itself measures or predicts it, so the band follows the machine's
speed; a plain number is milliseconds, as in the original. Every rank runs the same seeded search in lockstep; the test images of each candidate are sharded over the ranks.

``--strategy original`` (default) is the original algorithm, ``--iters`` counting its steps (one sampled candidate
each, cached and infeasible ones included); ``--strategy elitist`` keeps the top parents across generations and
redraws duplicates (see ``sparsevit/search/evolution.py``).

Latency: measured per candidate (the original's protocol on CUDA: 200 warm-up + 300 timed forwards per rank, the
samples of all ranks gathered; on CPU a short protocol timed by rank 0 alone), or, with ``--latency-table PATH``,
predicted from a calibrated additive per-stage table (built once and saved there, loaded afterwards), checked
against real measurements at the end. Outputs (see ``sparsevit/search/outputs.py``) go to ``--work-dir``: the
original's log ``search_max{MAX}_min{MIN}.txt``, a JSONL history (one line per step), a state file for
``--resume``, a summary, a PNG and the best configuration as a ready-to-train config
``sparsevit_max{MAX}_min{MIN}.py`` (with ``--budgets``: ``sparsevit_max{B}.py`` per budget and ``front.md`` /
``front.json``). This file parses and validates the arguments; the search itself is
:func:`sparsevit.search.runner.run_search`.
"""
import argparse
import logging
import os.path as osp
import sys
import warnings

# import-time notices of torch/mmcv that would bury a one-line error message
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)
warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV will release v2.0.0')

from mmcv import DictAction  # noqa: E402

from sparsevit.search.budgets import Budgets, Limit  # noqa: E402
from sparsevit.search.evolution import STRATEGIES  # noqa: E402
from sparsevit.search.runner import PROG, run_search  # noqa: E402
from sparsevit.utils import dist  # noqa: E402
from sparsevit.utils.cli import OneLineParser  # noqa: E402
from sparsevit.utils.latency import resolve_device  # noqa: E402


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
    p.add_argument('--img_size', '--img-size', dest='img_size', type=int, default=672,
                   help='square input of the latency measurement (default: 672)')
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
    p.add_argument('--eval', nargs='+', choices=('bbox', 'segm'), default=['bbox'],
                   help='COCO metrics; the search maximises the mAP of the first (default: bbox)')
    p.add_argument('--resume', action='store_true', help='continue the search saved in --work-dir')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (key=value)')
    return p.parse_args(argv)


def check_latency_args(args: argparse.Namespace) -> None:
    """Raise ValueError naming the first bad latency band or budget and what is allowed."""
    if (args.max is None) == (args.budgets is None):
        raise ValueError('give --max (one latency band [--min, --max]) or --budgets (several), not '
                         + ('both' if args.budgets else 'neither'))
    if args.budgets is None:
        Budgets.from_limits([args.max], args.min, band=True)
        return
    Budgets.from_limits(args.budgets, args.min)
    if args.strategy != 'original':
        raise ValueError('--budgets needs --strategy original (the elitist strategy searches one band)')


def check_search_args(args: argparse.Namespace) -> None:
    """Raise ValueError naming the first bad evolution setting and what is allowed."""
    k = len(args.budgets) if args.budgets else 1
    if args.population < 2:
        raise ValueError(f'--population must be >= 2, got {args.population}')
    if args.strategy == 'elitist' and not 1 <= args.parents < args.population:
        raise ValueError(f'--parents must be in [1, --population - 1] = [1, {args.population - 1}], '
                         f'got {args.parents}')
    if args.strategy == 'original' and k == 1 and not 2 <= args.parents <= args.population:
        raise ValueError(f'--parents must be in [2, --population] = [2, {args.population}] (crossover needs two '
                         f'parents), got {args.parents}')
    if args.strategy == 'original' and k > 1:
        if args.parents // k < 2:
            raise ValueError(f'--parents must give each of the {k} budgets at least 2: >= {2 * k}, '
                             f'got {args.parents}')
        if args.population // k < args.parents // k:
            raise ValueError(f'--population must give each of the {k} budgets at least its {args.parents // k} '
                             f'parents: >= {k * (args.parents // k)}, got {args.population}')


def check_args(args: argparse.Namespace) -> None:
    """Raise ValueError naming the first bad argument and what is allowed."""
    check_latency_args(args)
    check_search_args(args)
    rules = [
        (args.iters >= 0, f'--iters must be >= 0, got {args.iters}'),
        (0 <= args.mutation_prob <= 1, f'--mutation-prob must be in [0, 1], got {args.mutation_prob:g}'),
        (args.num_images is None or args.num_images >= 1, f'--num-images must be >= 1, got {args.num_images}'),
        (args.img_size > 0, f'--img_size must be positive, got {args.img_size}'),
        (args.batch_size > 0, f'--batch-size must be positive, got {args.batch_size}'),
        (args.num_warmup is None or args.num_warmup >= 0, f'--num-warmup must be >= 0, got {args.num_warmup}'),
        (args.num_repeats is None or args.num_repeats >= 1, f'--num-repeats must be >= 1, got {args.num_repeats}'),
        (args.table_rounds is None or args.table_rounds >= 1, f'--table-rounds must be >= 1, got {args.table_rounds}'),
        (args.calibration_configs >= 0, f'--calibration-configs must be >= 0, got {args.calibration_configs}'),
        (args.check_configs >= 0, f'--check-configs must be >= 0, got {args.check_configs}'),
        (args.max_retries >= 1, f'--max-retries must be >= 1, got {args.max_retries}'),
        (osp.isfile(args.config), f'config file not found: {args.config}'),
        (osp.isfile(args.checkpoint), f'checkpoint not found: {args.checkpoint}'),
    ]
    for ok, message in rules:
        if not ok:
            raise ValueError(message)
    resolve_device(args.device)


def main(argv=None) -> int:
    """Parse, validate and search; bad input prints one ``search.py: error: ...`` line and returns 1."""
    args = parse_args(argv)
    try:
        check_args(args)
        run_search(args)
    except (ValueError, OSError, dist.DistError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f'{PROG}: error: {message}', file=sys.stderr, flush=True)
        return 1
    dist.destroy_dist()
    return 0


if __name__ == '__main__':
    sys.exit(main())
