"""``make experiments``: SparseViT's claims as comparisons at matched latency, on the small-objects synthetic data.

    bash tools/experiments.sh                     # = python tools/experiments.py run (what `make experiments` runs)
    python tools/experiments.py run --dry-run     # the schedule and the time estimate only
    python tools/experiments.py latency SPEC --out OUT   # the back-to-back latency driver (one process)
    python tools/experiments.py report [DIR]      # the table and the plot again, from DIR's outputs

The comparisons and their schedule: :mod:`sparsevit.experiments.pipeline`; the latency driver:
:mod:`sparsevit.experiments.latency`; the table and the plot: :mod:`sparsevit.experiments.report`.

A run is reused when it succeeded before with the same command (a marker under ``DIR/done/``);
``EXPERIMENTS_FORCE=1`` (``--force``) redoes everything, and once one run is redone every later one is too.
Knobs: the ``EXPERIMENTS_*`` environment variables, the defaults of the ``run`` flags (``run --help``).
"""
import argparse
import dataclasses
import functools
import logging
import os
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PROG = 'experiments.py'

from sparsevit.experiments.files import read_json, write_json  # noqa: E402
from sparsevit.experiments.latency import run_latency  # noqa: E402
from sparsevit.experiments.pipeline import Pipeline  # noqa: E402
from sparsevit.experiments.plan import minutes, planned_runs  # noqa: E402
from sparsevit.experiments.report import write_report  # noqa: E402
from sparsevit.experiments.settings import ExperimentError, Settings, SETTING_HELP, settings_from  # noqa: E402
from sparsevit.utils.cli import OneLineParser  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description='SparseViT comparisons at matched latency (make experiments).')
    # a subcommand's errors name the tool, as the top level's (its prog is 'experiments.py run')
    sub = parser.add_subparsers(dest='command', required=True,
                                parser_class=functools.partial(OneLineParser, error_prog=PROG))
    run = sub.add_parser('run', help='the whole pipeline (default settings: EXPERIMENTS_* variables)')
    run.add_argument('--dry-run', action='store_true', help='print the runs and the time estimate, run nothing')
    for field in dataclasses.fields(Settings):
        name = f"--{field.name.replace('_', '-')}"
        env = f'EXPERIMENTS_{field.name.upper()}'
        if field.type is bool:
            run.add_argument(name, action='store_true', default=None, help=f'{SETTING_HELP[field.name]} ({env}=1)')
        else:
            run.add_argument(name, type=field.type, default=None, metavar=field.type.__name__.upper(),
                             help=f'{SETTING_HELP[field.name]} ({env}, default: {field.default})')
    lat = sub.add_parser('latency', help='time the backbones of a spec JSON back to back in this process')
    lat.add_argument('spec', help='JSON: config, batch_size, warmup, repeats, rounds, entries (name, img_size, '
                     'pruning_ratios, backbone)')
    lat.add_argument('--out', required=True, help='result JSON')
    rep = sub.add_parser('report', help='the table and plot again from a finished (or partial) run')
    rep.add_argument('dir', nargs='?', default=None, help='the experiments directory (default: EXPERIMENTS_DIR or '
                     'work_dirs/experiments)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.command == 'latency':
            spec = read_json(args.spec)
            if not spec.get('entries'):
                raise ExperimentError(f'{args.spec}: no entries (or not a JSON spec)')
            try:
                result = run_latency(spec)
            except ValueError as err:  # a bad spec value: one line
                raise ExperimentError(f'{args.spec}: {err}') from None
            write_json(args.out, result)
            return 0
        if args.command == 'report':
            print(write_report(args.dir or os.environ.get('EXPERIMENTS_DIR') or Settings.dir))
            return 0
        overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)}
        st = settings_from(os.environ, overrides)
        if args.dry_run:
            runs = planned_runs(st)
            for i, (name, seconds) in enumerate(runs):
                print(f'{i + 1:2d}. {name:<22} about {minutes(seconds)}')
            print(f'estimated total: about {minutes(sum(s for _, s in runs))} ({len(runs)} runs)')
            return 0
        python = os.environ.get('PYTHON') or sys.executable
        Pipeline(st, python, ROOT).run()
    except ExperimentError as err:
        print(f'{PROG}: error: {err}', file=sys.stderr, flush=True)
        return err.status
    return 0


if __name__ == '__main__':
    sys.exit(main())

