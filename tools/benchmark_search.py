"""Search benchmark on a fake objective: the original strategy vs the elitist one, and one multi-budget run vs one
single-band search per budget, for equal step budgets and several seeds.

    python tools/benchmark_search.py                       # both comparisons, 5 seeds (about a minute)
    python tools/benchmark_search.py --seeds 3 --steps 100 1000 --multi-steps 2000 --no-pooled   # a quick look

The fake objective (see :mod:`sparsevit.search.benchmark`) stands in for a search on the demo model without any COCO
evaluation: latency from the smoothed additive latency table of the demo's backbone
(``configs/demo/mask_rcnn_sparsevit_demo.py``, 224x224, batch 4, CPU; built once, cached under
``work_dirs/benchmark_search/``), a fixed smooth score of the kept-window fractions plus a fixed noise per
configuration. The space is small enough (120k configurations) to enumerate, so every best found is also shown as a
regret: the optimum of the band (or budget) minus the best found. Nothing is timed: the figures are search quality,
not speed.

Part 1 (issue 7): ``--strategy original`` vs ``elitist`` on one band, best score found vs steps (mean over seeds),
and the configurations each had scored by then (the real cost of a search is its evaluations).
Part 2 (issue 8): for a total of S steps, the per-budget best of one multi-budget run (S steps) vs one single-band
search per budget (S / K steps each); ``--pooled`` adds a variant of the multi-budget run in which every step
draws its parents from all budgets alike (the design the searcher does not use; shown for the record).

This file parses the arguments and prints; the comparisons and their tables are :mod:`sparsevit.search.benchmark`'s.
"""
import argparse
import json
import logging
import os.path as osp
import sys
import time

from sparsevit.search import benchmark as bench
from sparsevit.search.budgets import Budgets

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_sparsevit_demo.py')
DEFAULT_TABLE = osp.join(ROOT, 'work_dirs', 'benchmark_search', 'demo_latency_table.json')


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Search strategies on a fake objective (no timing).')
    p.add_argument('--seeds', type=int, default=5, help='seeds per setting (default: 5)')
    p.add_argument('--steps', type=int, nargs='+', default=[100, 300, 1000, 3000, 10000],
                   help='part 1: step budgets (checkpoints of one run per seed; default: 100 300 1000 3000 10000)')
    p.add_argument('--evaluations', type=int, nargs='+', default=[50, 100, 200, 300, 500],
                   help='part 1: configurations scored (default: 50 100 200 300 500)')
    p.add_argument('--band', type=float, nargs=2, default=[0.75, 0.85],
                   help='part 1: the band as fractions of the dense latency (default: 0.75 0.85)')
    p.add_argument('--multi-steps', type=int, nargs='+', default=[1000, 4000, 10000],
                   help='part 2: total steps S (default: 1000 4000 10000)')
    p.add_argument('--budgets', type=float, nargs='+', default=[0.65, 0.72, 0.79, 0.86],
                   help='part 2: budgets as fractions of the dense latency (default: 0.65 0.72 0.79 0.86)')
    p.add_argument('--budget-min', type=float, default=0.58,
                   help='part 2: lower end of the first budget, fraction of dense (default: 0.58)')
    p.add_argument('--population', type=int, default=100, help='default: 100 (the original)')
    p.add_argument('--parents', type=int, default=25, help='default: 25 (the original)')
    p.add_argument('--pooled', dest='pooled', action='store_true', default=True,
                   help='part 2: also the pooled-parents variant (default)')
    p.add_argument('--no-pooled', dest='pooled', action='store_false')
    p.add_argument('--parts', nargs='+', choices=('strategies', 'budgets'), default=['strategies', 'budgets'])
    p.add_argument('--table', default=DEFAULT_TABLE, help=f'cached demo latency table (default: {DEFAULT_TABLE})')
    p.add_argument('--rebuild', action='store_true', help='rebuild the latency table')
    p.add_argument('--json', default=None, metavar='PATH', help='also write the results as JSON')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger('sparsevit.search.evolution').setLevel(logging.ERROR)  # exhausted bands: counted instead
    start = time.perf_counter()
    table = bench.demo_table(args.table, DEMO, args.rebuild, log=lambda line: print(line, flush=True))
    dense = table.additive(dict.fromkeys(bench.NAMES, 0.0))
    points = [(table.additive(g), bench.fake_score(g)) for g in bench.all_configs()]
    print(f'fake objective: latency from {osp.relpath(args.table, ROOT)} (demo backbone, 224x224, batch 4, '
          f'additive), score = {bench.DENSE_SCORE:g} - sum(sensitivity * pruned^1.5) - coupling + noise (sd '
          f'{bench.NOISE:g}); {len(points)} configurations, dense {dense:.2f} ms')
    results = {}
    if 'strategies' in args.parts:
        band = (args.band[0] * dense, args.band[1] * dense)
        results['strategies'], stopped = bench.compare_strategies(
            table.additive, points, band, args.steps, args.evaluations, args.seeds, args.population, args.parents)
        print(bench.format_strategies(results['strategies'], stopped, dense, args.band, args.population, args.parents,
                                      args.seeds))
    if 'budgets' in args.parts:
        budgets = Budgets([f * dense for f in args.budgets], args.budget_min * dense)
        results['budgets'] = bench.compare_budgets(table.additive, points, budgets, args.multi_steps, args.seeds,
                                                   args.population, args.parents, args.pooled)
        print(bench.format_budgets(results['budgets'], budgets, bench.budget_optima(points, budgets), args.budgets,
                                   args.budget_min, args.population, args.parents, args.seeds, args.pooled))
    print(f'\n({time.perf_counter() - start:.0f} s)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
