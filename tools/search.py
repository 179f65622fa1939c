"""Latency-constrained evolutionary search of SparseViT's layer-wise sparsity (the original's search step).

    torchpack dist-run -np 8 python tools/search.py configs/sparsevit/mask_rcnn_sparsevit.py \\
        mask_rcnn_sparsevit_saa.pth --max 42 --min 37

also with ``-np 1`` or as plain ``python tools/search.py ...`` (one process), on GPUs (nccl) or CPU (gloo).
Finds the configuration (one pruning ratio per W-MSA/SW-MSA block pair) with the best bbox mAP among those whose
backbone latency (batch ``--batch-size`` at ``--img_size``) lies in ``[--min, --max]`` ms. Every rank runs the same
seeded search in lockstep; the test images of each candidate are sharded over the ranks.

Latency: measured per candidate like ``tools/measure_latency.py`` (on GPUs the ranks split the timed runs; on CPU
rank 0 times alone with every core while the others wait), or, with ``--latency-table PATH``, predicted from an
additive per-stage table (built once and saved there, loaded afterwards), checked against real measurements at
the end. Outputs (see ``sparsevit/search/outputs.py``) go to ``--work-dir``: the original's log
``search_max{MAX}_min{MIN}.txt``, a JSONL history, a state file for ``--resume``, a summary, a PNG and the best
configuration as a ready-to-train config ``sparsevit_max{MAX}_min{MIN}.py``. This file parses and validates the
arguments; the search itself is :func:`sparsevit.search.runner.run_search`.
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

from sparsevit.search.runner import PROG, run_search  # noqa: E402
from sparsevit.utils import dist  # noqa: E402
from sparsevit.utils.latency import resolve_device  # noqa: E402


class Milliseconds(float):
    """A latency argument that remembers how it was typed: the outputs are named with it, as the original's
    (``--max 42 --min 37`` -> ``search_max42_min37.txt``)."""

    def __new__(cls, text: str) -> 'Milliseconds':
        value = super().__new__(cls, text)
        value.text = text.strip()
        return value


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line (no usage dump) and exits 2."""

    def error(self, message: str):
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description='Latency-constrained evolutionary search of SparseViT sparsity.')
    p.add_argument('config', help='search config, e.g. configs/sparsevit/mask_rcnn_sparsevit.py')
    p.add_argument('checkpoint', help='the Sparsity-Aware Adaptation checkpoint')
    p.add_argument('--max', type=Milliseconds, required=True, help='upper end of the latency band (ms)')
    p.add_argument('--min', type=Milliseconds, default=Milliseconds('0'),
                   help='lower end of the latency band (ms, default: 0)')
    p.add_argument('--work-dir', default='work_dirs/', help='output directory (default: work_dirs/)')
    p.add_argument('--iters', type=int, default=10000, help='evolution iterations (default: 10000, as the original)')
    p.add_argument('--population', type=int, default=100, help='feasible candidates per iteration (default: 100)')
    p.add_argument('--parents', type=int, default=25, help='top candidates kept as parents (default: 25)')
    p.add_argument('--mutation-prob', type=float, default=0.1, help='per-gene resampling probability (default: 0.1)')
    p.add_argument('--seed', type=int, default=0, help='seed of the search and of the --num-images subset')
    p.add_argument('--num-images', type=int, default=None,
                   help='score on a fixed seeded subset of this many test images (default: the whole test set)')
    p.add_argument('--img_size', '--img-size', dest='img_size', type=int, default=672,
                   help='square input of the latency measurement (default: 672)')
    p.add_argument('--batch-size', '--batch_size', dest='batch_size', type=int, default=4,
                   help='batch of the latency measurement (default: 4)')
    p.add_argument('--num-warmup', type=int, default=10, help='untimed forwards per measurement (default: 10)')
    p.add_argument('--num-repeats', type=int, default=50, help='timed forwards per measurement (default: 50)')
    p.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto', help='default: cuda if available')
    p.add_argument('--latency-table', default=None, metavar='PATH',
                   help='predict latency from an additive per-stage table: built and saved at PATH if missing')
    p.add_argument('--check-configs', type=int, default=5,
                   help='with a table: random evaluated configs measured to check it, besides dense, sparsest and '
                   'best (default: 5)')
    p.add_argument('--max-retries', type=int, default=1000,
                   help='rejected draws (duplicate or outside the band) in a row before giving up (default: 1000)')
    p.add_argument('--eval', nargs='+', choices=('bbox', 'segm'), default=['bbox'],
                   help='COCO metrics; the search maximises the mAP of the first (default: bbox)')
    p.add_argument('--resume', action='store_true', help='continue the search saved in --work-dir')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (key=value)')
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Raise ValueError naming the first bad argument and what is allowed."""
    rules = [
        (args.max > 0, f'--max must be a positive latency in ms, got {args.max:g}'),
        (args.min >= 0, f'--min must be >= 0 ms, got {args.min:g}'),
        (args.min <= args.max, f'--min {args.min:g} is above --max {args.max:g}; the band needs min <= max'),
        (args.iters >= 0, f'--iters must be >= 0, got {args.iters}'),
        (args.population >= 2, f'--population must be >= 2, got {args.population}'),
        (1 <= args.parents < args.population,
         f'--parents must be in [1, --population - 1] = [1, {args.population - 1}], got {args.parents}'),
        (0 <= args.mutation_prob <= 1, f'--mutation-prob must be in [0, 1], got {args.mutation_prob:g}'),
        (args.num_images is None or args.num_images >= 1, f'--num-images must be >= 1, got {args.num_images}'),
        (args.img_size > 0, f'--img_size must be positive, got {args.img_size}'),
        (args.batch_size > 0, f'--batch-size must be positive, got {args.batch_size}'),
        (args.num_warmup >= 0, f'--num-warmup must be >= 0, got {args.num_warmup}'),
        (args.num_repeats >= 1, f'--num-repeats must be >= 1, got {args.num_repeats}'),
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
