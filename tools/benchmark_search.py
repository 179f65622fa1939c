"""Search benchmark on a fake objective: the original strategy vs the elitist one, and one multi-budget run vs one
single-band search per budget, for equal step budgets and several seeds.

    python tools/benchmark_search.py                       # both comparisons, 5 seeds (about a minute)
    python tools/benchmark_search.py --seeds 3 --steps 100 1000 --multi-steps 2000 --no-pooled   # a quick look

The fake objective stands in for a search on the demo model without any COCO evaluation:

* latency: the additive latency table of the demo's backbone (``configs/demo/mask_rcnn_sparsevit_demo.py``,
  224x224, batch 4, CPU), built once at small settings (1 round: 165 full forwards), then smoothed: per stage, a
  least-squares line of the entries against the stage's kept-window fraction replaces them (a cheap build on a
  shared machine is noisy); cached under ``work_dirs/benchmark_search/``;
* score: a fixed smooth function of the genes' kept-window fractions (a loss per gene growing with the pruned
  fraction, larger for the sensitive stages, plus a coupling of the first and last thirds of stage 2), plus a fixed
  noise per configuration (as a COCO evaluation on a fixed image subset: the same configuration always scores the
  same). At 224x224 the stage maps hold 8x8, 4x4, 2x2 and 1 windows, so pruning stage 3 at all drops it.

The space is small enough (120k configurations) to enumerate, so every best found is also shown as a regret: the
optimum of the band (or budget) minus the best found. Nothing is timed: the figures are search quality, not speed.

Part 1 (issue 7): ``--strategy original`` vs ``elitist`` on one band, best score found vs steps (mean over seeds),
and the configurations each had scored by then (the real cost of a search is its evaluations).
Part 2 (issue 8): for a total of S steps, the per-budget best of one multi-budget run (S steps) vs one single-band
search per budget (S / K steps each); ``--pooled`` adds a variant of the multi-budget run in which every step
draws its parents from all budgets alike (the design the searcher does not use; shown for the record).
"""
import argparse
import itertools
import json
import logging
import math
import os
import os.path as osp
import statistics
import sys
import time
import zlib
from typing import Dict, List, Optional, Sequence

from sparsevit.schedule import DEFAULT_CHOICES, Genes, gene_names, genes_key, genes_per_stage
from sparsevit.search.budgets import Budgets
from sparsevit.search.evolution import make_searcher
from sparsevit.search.pooled import PooledSearcher
from sparsevit.ops.window import num_kept
from sparsevit.search.latency_table import LatencyTable, build_latency_table, fit_line

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_sparsevit_demo.py')
DEFAULT_TABLE = osp.join(ROOT, 'work_dirs', 'benchmark_search', 'demo_latency_table.json')
DEPTHS = (2, 2, 6, 2)
NAMES = gene_names(DEPTHS)
STAGE_OF = {n: int(n.split('.')[-1].split('_')[0]) for n in NAMES}
WINDOWS = (64, 16, 4, 1)  # windows per image of each stage at 224x224 (maps 56, 28, 14, 7; window 7)
# mAP points lost at ratio 1 per gene (stage 0, 1, 2_1, 2_2, 2_3, 3): the later stages hold fewer, more
# informative windows, as the searched configurations of the paper suggest
SENSITIVITY = (3.0, 6.0, 2.0, 2.5, 3.0, 7.0)
DENSE_SCORE, NOISE = 45.0, 0.05


# ---------------------------------------------------------------------------------------------------- objective
def kept_fraction(stage: int, ratio: float) -> float:
    """Kept windows / windows of a stage of the demo backbone at 224x224 (``floor(nW * (1 - ratio)) / nW``)."""
    nw = WINDOWS[stage]
    return num_kept(nw, ratio) / nw


def smooth_table(table: LatencyTable) -> LatencyTable:
    """Per stage, replace the entries by a least-squares line against the stage's mean kept-window fraction."""
    stages = []
    for i, entries in enumerate(table.stages):
        xs = {name: statistics.mean(kept_fraction(i, float(v)) for v in name.split(',')) for name in entries}
        offset, scale = fit_line([xs[n] for n in entries], list(entries.values()))
        stages.append({name: offset + scale * xs[name] for name in entries})
    return LatencyTable(table.key, table.fixed_ms, stages, dict(table.meta, smoothed=True))


def demo_table(path: str, rebuild: bool = False) -> LatencyTable:
    """The demo backbone's latency table at 224x224, batch 4, on CPU, smoothed (:func:`smooth_table`): loaded from
    ``path``, else built (one round of 165 full forwards, about half a minute) and saved there."""
    if osp.isfile(path) and not rebuild:
        return LatencyTable.from_dict(json.load(open(path)))
    import torch
    from mmcv import Config
    from mmdet.models import build_backbone

    import sparsevit  # noqa: F401  (registers the backbone)
    cfg = Config.fromfile(DEMO)
    cfg.model.backbone.pop('init_cfg', None)
    torch.manual_seed(0)
    backbone = build_backbone(cfg.model.backbone).eval()
    print(f'building the demo latency table ({path}) ...', flush=True)
    table = smooth_table(build_latency_table(backbone, img_size=224, batch_size=4, num_warmup=1, num_rounds=1,
                                             device='cpu'))
    os.makedirs(osp.dirname(path), exist_ok=True)
    table.save(path)
    return table


def fake_score(genes: Genes) -> float:
    """A fixed smooth function of the genes' pruned-window fractions plus a fixed noise per configuration
    (mAP-like, x100)."""
    pruned = [1.0 - kept_fraction(STAGE_OF[n], genes[n]) for n in NAMES]
    loss = sum(s * v ** 1.5 for s, v in zip(SENSITIVITY, pruned))
    loss += 1.5 * pruned[2] * pruned[4]  # the first and last third of stage 2 hurt together
    return DENSE_SCORE - loss + NOISE * fixed_gauss(genes_key(genes))


def fixed_gauss(key: str) -> float:
    """A standard normal draw fixed by ``key`` (Box-Muller on two CRC32 hashes; cheaper than a seeded Random)."""
    data = key.encode()
    u1 = (zlib.crc32(data) + 0.5) / 2 ** 32
    u2 = (zlib.crc32(data, 0x5bd1e995) + 0.5) / 2 ** 32
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def all_configs() -> List[Genes]:
    """Every configuration of the space (non-decreasing genes per stage)."""
    per_stage = [list(itertools.combinations_with_replacement(DEFAULT_CHOICES, n)) for n in genes_per_stage(DEPTHS)]
    return [dict(zip(NAMES, sum(combo, ()))) for combo in itertools.product(*per_stage)]


def optimum(points: Sequence[tuple], low: float, high: float, low_open: bool = False) -> Optional[float]:
    """Best score over the enumerated ``(latency, score)`` points with latency in the band."""
    inside = [s for lat, s in points if (low < lat if low_open else low <= lat) and lat <= high]
    return max(inside) if inside else None


# ---------------------------------------------------------------------------------------------------- searches
def best_after(history: Sequence[dict], checkpoints: Sequence[int], budget: Optional[int] = None) -> List[dict]:
    """Best feasible metric (of ``budget`` when given) and scored configurations after each checkpoint step."""
    out, best, scored, seen, i = [], None, 0, set(), 0
    for n in sorted(checkpoints):
        while i < min(n, len(history)):
            r = history[i]
            if r['feasible'] and not r['cached'] and genes_key(r['config']) not in seen:
                seen.add(genes_key(r['config']))
                scored += 1
            if r['feasible'] and (budget is None or r['budget'] == budget):
                best = r['metric'] if best is None else max(best, r['metric'])
            i += 1
        out.append(dict(steps=n, best=best, scored=scored))
    return out


def run(strategy: str, latency, budgets: Budgets, steps: int, seed: int, args, cls=None) -> List[dict]:
    if cls is not None:
        searcher = cls(DEPTHS, latency, fake_score, budgets, args.population, args.parents, seed=seed)
    else:
        searcher = make_searcher(strategy, DEPTHS, latency, fake_score, budgets, args.population, args.parents,
                                 seed=seed)
    searcher.check_band()
    searcher.run(steps)
    return searcher.history


def _mean(values: Sequence[Optional[float]]) -> str:
    found = [v for v in values if v is not None]
    if not found:
        return 'none'
    text = f'{statistics.mean(found):.3f}'
    if len(found) > 1:
        text += f' ± {statistics.stdev(found):.3f}'
    return text + ('' if len(found) == len(values) else f' ({len(values) - len(found)} none)')


def _regret(values: Sequence[Optional[float]], best: Optional[float]) -> str:
    found = [best - v for v in values if v is not None]
    return f'{statistics.mean(found):.3f}' if found and best is not None else '–'


# ---------------------------------------------------------------------------------------------------- parts
def best_by_scored(history: Sequence[dict], evaluations: Sequence[int]) -> List[Optional[float]]:
    """Best feasible metric once ``n`` configurations have been scored, for each ``n`` (None: not reached)."""
    out, best, seen = {}, None, set()
    wanted = sorted(evaluations)
    for r in history:
        if not r['feasible']:
            continue
        best = r['metric'] if best is None else max(best, r['metric'])
        seen.add(genes_key(r['config']))
        while wanted and len(seen) >= wanted[0]:
            out[wanted.pop(0)] = best
    return [out.get(n) for n in evaluations]


def strategies(table: LatencyTable, points: Sequence[tuple], dense: float, args) -> dict:
    """Part 1: original vs elitist on one band, best vs steps and vs scored configurations."""
    low, high = args.band[0] * dense, args.band[1] * dense
    top = optimum(points, low, high)
    budgets = Budgets([high], low)
    names = ('original', 'elitist')
    histories = {s: [run(s, table.additive, budgets, max(args.steps), seed, args) for seed in range(args.seeds)]
                 for s in names}
    by_steps = {s: [best_after(h, args.steps) for h in histories[s]] for s in names}
    by_scored = {s: [best_by_scored(h, args.evaluations) for h in histories[s]] for s in names}
    print(f'\n## Strategy: original vs elitist, band [{low:.2f}, {high:.2f}] ms ({args.band[0]:g}-{args.band[1]:g} x '
          f'dense {dense:.2f} ms), population {args.population}, parents {args.parents}, {args.seeds} seeds')
    print(f'optimum of the band (enumerated): {top:.3f}\n')
    print('Best score found vs steps (mean ± sd over seeds; regret = optimum - best; scored = configurations '
          'evaluated by then, mean):\n')
    print('| steps | original: best | regret | scored | elitist: best | regret | scored |')
    print('|---|---|---|---|---|---|---|')
    rows = []
    for k, n in enumerate(args.steps):
        cells, row = [], dict(steps=n)
        for s in names:
            bests = [seed_rows[k]['best'] for seed_rows in by_steps[s]]
            scored = statistics.mean(seed_rows[k]['scored'] for seed_rows in by_steps[s])
            cells += [_mean(bests), _regret(bests, top), f'{scored:.0f}']
            row[s] = dict(best=bests, scored=scored)
        rows.append(row)
        print(f'| {n} | ' + ' | '.join(cells) + ' |')
    print('\nBest score found vs configurations scored (the cost of a real search: one COCO evaluation each):\n')
    print('| scored | original: best | regret | elitist: best | regret |')
    print('|---|---|---|---|---|')
    for k, n in enumerate(args.evaluations):
        cells = []
        for s in names:
            bests = [seed_bests[k] for seed_bests in by_scored[s]]
            cells += [_mean(bests), _regret(bests, top)]
        print(f'| {n} | ' + ' | '.join(cells) + ' |')
    stopped = sum(len(h) < max(args.steps) for h in histories['elitist'])
    if stopped:
        print(f'\n(the elitist search stopped early, its band exhausted around the parents, in {stopped} of '
              f'{args.seeds} seeds)')
    return dict(band=[low, high], optimum=top, by_steps=rows,
                by_scored={s: by_scored[s] for s in names}, evaluations=list(args.evaluations))


def budgets_part(table: LatencyTable, points: Sequence[tuple], dense: float, args) -> dict:
    """Part 2: one multi-budget run vs one single-band search per budget, S steps in all."""
    edges = [f * dense for f in args.budgets]
    low = args.budget_min * dense
    budgets = Budgets(edges, low)
    k = len(edges)
    tops = [optimum(points, *budgets.band(i), low_open=i > 0) for i in range(k)]
    variants = ['multi-budget', f'{k} single-band'] + (['multi, pooled parents'] if args.pooled else [])
    print(f'\n## Budgets: one multi-budget run vs {k} single-band searches, budgets '
          f"{', '.join(budgets.label(i) for i in range(k))} (fractions {' '.join(f'{f:g}' for f in args.budgets)} "
          f'of dense, from {args.budget_min:g}), population {args.population}, parents {args.parents}, '
          f'{args.seeds} seeds')
    print('optimum per budget (enumerated): ' + ', '.join(f'{t:.3f}' for t in tops) + '\n')
    print('| total steps | budget | optimum | ' + ' | '.join(f'{v}: best (regret)' for v in variants) + ' |')
    print('|---|---|---|' + '---|' * len(variants))
    out = []
    for total in args.multi_steps:
        per_variant: Dict[str, List[List[Optional[float]]]] = {v: [] for v in variants}
        for seed in range(args.seeds):
            history = run('original', table.additive, budgets, total, seed, args)
            per_variant['multi-budget'].append([best_after(history, [total], i)[0]['best'] for i in range(k)])
            single = []
            for i in range(k):
                band = Budgets([edges[i]], budgets.band(i)[0])
                single.append(best_after(run('original', table.additive, band, total // k, seed, args),
                                         [total // k])[0]['best'])
            per_variant[f'{k} single-band'].append(single)
            if args.pooled:
                history = run('original', table.additive, budgets, total, seed, args, cls=PooledSearcher)
                per_variant['multi, pooled parents'].append([best_after(history, [total], i)[0]['best']
                                                             for i in range(k)])
        for i in range(k):
            cells = []
            for v in variants:
                bests = [seed_bests[i] for seed_bests in per_variant[v]]
                cells.append(f'{_mean(bests)} ({_regret(bests, tops[i])})')
            print(f'| {total} | {budgets.label(i)} | {tops[i]:.3f} | ' + ' | '.join(cells) + ' |')
        regrets = {v: statistics.mean(tops[i] - b[i] for b in per_variant[v] for i in range(k) if b[i] is not None)
                   for v in variants}
        print(f'| {total} | mean regret | | ' + ' | '.join(f'{regrets[v]:.3f}' for v in variants) + ' |')
        out.append(dict(total_steps=total, optimum=tops, best={v: per_variant[v] for v in variants},
                        mean_regret=regrets))
    return dict(budgets=edges, min=low, rows=out)


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
    table = demo_table(args.table, args.rebuild)
    dense = table.additive(dict.fromkeys(NAMES, 0.0))
    points = [(table.additive(g), fake_score(g)) for g in all_configs()]
    print(f'fake objective: latency from {osp.relpath(args.table, ROOT)} (demo backbone, 224x224, batch 4, '
          f'additive), score = {DENSE_SCORE:g} - sum(sensitivity * pruned^1.5) - coupling + noise (sd {NOISE:g}); '
          f'{len(points)} configurations, dense {dense:.2f} ms')
    results = {}
    if 'strategies' in args.parts:
        results['strategies'] = strategies(table, points, dense, args)
    if 'budgets' in args.parts:
        results['budgets'] = budgets_part(table, points, dense, args)
    print(f'\n({time.perf_counter() - start:.0f} s)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
