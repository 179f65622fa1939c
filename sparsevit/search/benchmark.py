"""The search benchmark of ``tools/benchmark_search.py``: the searchers on a fake objective, compared by the best
score they find for equal steps (plain Python but for building the demo's latency table).

The fake objective stands in for a search on the demo model without any COCO evaluation:

* latency: the additive latency table of the demo's backbone (224x224, batch 4, CPU), built once at small settings
  (1 round: 165 full forwards), then smoothed (:func:`smooth_table`: a cheap build on a shared machine is noisy);
* score (:func:`fake_score`): a fixed smooth function of the genes' kept-window fractions (a loss per gene growing
  with the pruned fraction, larger for the sensitive stages, plus a coupling of the first and last thirds of
  stage 2), plus a fixed noise per configuration (as a COCO evaluation on a fixed image subset: the same
  configuration always scores the same). At 224x224 the stage maps hold 8x8, 4x4, 2x2 and 1 windows, so pruning
  stage 3 at all drops it.

The space is small enough (120k configurations, :func:`all_configs`) to enumerate, so every best found can be shown
as a regret: the :func:`optimum` of the band (or budget) minus the best found.

* :func:`compare_strategies`: the original strategy vs the elitist one on one band, best vs steps and vs
  configurations scored (:func:`best_after`, :func:`best_by_scored`);
* :func:`compare_budgets`: for a total of S steps, the per-budget best of one multi-budget run (S steps) vs one
  single-band search per budget (S / K steps each), and optionally :class:`~.pooled.PooledSearcher`.
"""
import itertools
import json
import math
import os
import os.path as osp
import statistics
import zlib
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..ops.window import num_kept
from ..schedule import DEFAULT_CHOICES, Genes, gene_names, genes_key, genes_per_stage
from .budgets import Budgets
from .evolution import make_searcher
from .latency_table import LatencyTable, build_latency_table, fit_line
from .pooled import PooledSearcher

DEPTHS = (2, 2, 6, 2)
NAMES = gene_names(DEPTHS)
STAGE_OF = {n: int(n.split('.')[-1].split('_')[0]) for n in NAMES}
WINDOWS = (64, 16, 4, 1)  # windows per image of each stage at 224x224 (maps 56, 28, 14, 7; window 7)
# mAP points lost at ratio 1 per gene (stage 0, 1, 2_1, 2_2, 2_3, 3): the later stages hold fewer, more
# informative windows, as the searched configurations of the paper suggest
SENSITIVITY = (3.0, 6.0, 2.0, 2.5, 3.0, 7.0)
DENSE_SCORE, NOISE = 45.0, 0.05
STRATEGIES = ('original', 'elitist')

LatencyFn = Callable[[Genes], float]


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


def demo_table(path: str, config: str, rebuild: bool = False, log: Callable[[str], None] = print) -> LatencyTable:
    """The latency table of the backbone of ``config`` (the demo's) at 224x224, batch 4, on CPU, smoothed
    (:func:`smooth_table`): loaded from ``path``, else built (one round of 165 full forwards, about half a minute;
    said through ``log``) and saved there."""
    if osp.isfile(path) and not rebuild:
        return LatencyTable.from_dict(json.load(open(path)))
    import torch
    from mmcv import Config
    from mmdet.models import build_backbone

    from .. import models  # noqa: F401  (registers the backbone)
    from ..deploy.build import backbone_cfg
    torch.manual_seed(0)
    backbone = build_backbone(backbone_cfg(Config.fromfile(config))).eval()
    log(f'building the demo latency table ({path}) ...')
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


# ---------------------------------------------------------------------------------------------------- space
def all_configs() -> List[Genes]:
    """Every configuration of the space (non-decreasing genes per stage)."""
    per_stage = [list(itertools.combinations_with_replacement(DEFAULT_CHOICES, n)) for n in genes_per_stage(DEPTHS)]
    return [dict(zip(NAMES, sum(combo, ()))) for combo in itertools.product(*per_stage)]


def optimum(points: Sequence[tuple], low: float, high: float, low_open: bool = False) -> Optional[float]:
    """Best score over the enumerated ``(latency, score)`` points with latency in the band."""
    inside = [s for lat, s in points if (low < lat if low_open else low <= lat) and lat <= high]
    return max(inside) if inside else None


# ---------------------------------------------------------------------------------------------------- histories
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


def search_history(strategy: str, latency: LatencyFn, budgets: Budgets, steps: int, seed: int, population: int,
                   parents: int) -> List[dict]:
    """The history of a search of ``steps`` steps on the fake score (``strategy``: a searcher's, or ``'pooled'``:
    :class:`~.pooled.PooledSearcher`)."""
    if strategy == 'pooled':
        searcher = PooledSearcher(DEPTHS, latency, fake_score, budgets, population, parents, seed=seed)
    else:
        searcher = make_searcher(strategy, DEPTHS, latency, fake_score, budgets, population, parents, seed=seed)
    searcher.check_band()
    searcher.run(steps)
    return searcher.history


# ---------------------------------------------------------------------------------------------------- comparisons
def compare_strategies(latency: LatencyFn, points: Sequence[tuple], band: Tuple[float, float],
                       steps: Sequence[int], evaluations: Sequence[int], seeds: int, population: int,
                       parents: int) -> Tuple[dict, int]:
    """Part 1: the original strategy vs the elitist one on ``band`` (ms), one run of ``max(steps)`` per seed.

    Returns:
        The results (JSON): the band, its ``optimum``, ``by_steps`` (per checkpoint, per strategy: the best of each
        seed and the mean configurations scored), ``by_scored`` (per strategy, per seed: the best once each number
        of ``evaluations`` was scored) and ``evaluations``; and the seeds in which the elitist search stopped early.
    """
    low, high = band
    top = optimum(points, low, high)
    budgets = Budgets([high], low)
    histories = {s: [search_history(s, latency, budgets, max(steps), seed, population, parents)
                     for seed in range(seeds)] for s in STRATEGIES}
    by_steps = {s: [best_after(h, steps) for h in histories[s]] for s in STRATEGIES}
    by_scored = {s: [best_by_scored(h, evaluations) for h in histories[s]] for s in STRATEGIES}
    rows = []
    for k, n in enumerate(steps):
        row = dict(steps=n)
        for s in STRATEGIES:
            row[s] = dict(best=[seed_rows[k]['best'] for seed_rows in by_steps[s]],
                          scored=statistics.mean(seed_rows[k]['scored'] for seed_rows in by_steps[s]))
        rows.append(row)
    stopped = sum(len(h) < max(steps) for h in histories['elitist'])
    return dict(band=[low, high], optimum=top, by_steps=rows, by_scored=by_scored,
                evaluations=list(evaluations)), stopped


def budget_optima(points: Sequence[tuple], budgets: Budgets) -> List[Optional[float]]:
    """The :func:`optimum` of each budget (the first includes its lower end, the others do not)."""
    return [optimum(points, *budgets.band(i), low_open=i > 0) for i in range(len(budgets))]


def budget_variants(k: int, pooled: bool) -> List[str]:
    """The searches of :func:`compare_budgets` for ``k`` budgets."""
    return ['multi-budget', f'{k} single-band'] + (['multi, pooled parents'] if pooled else [])


def compare_budgets(latency: LatencyFn, points: Sequence[tuple], budgets: Budgets, totals: Sequence[int],
                    seeds: int, population: int, parents: int, pooled: bool) -> dict:
    """Part 2: for each total of S steps in ``totals``, the per-budget best of one multi-budget run (S steps), of
    one single-band search per budget (S / K steps each) and (``pooled``) of the pooled variant.

    Returns:
        The results (JSON): the budgets, their ``min`` and per total (``rows``): the ``optimum`` per budget, the
        ``best`` per variant, seed and budget, and each variant's ``mean_regret`` over seeds and budgets.
    """
    edges, low, k = list(budgets.edges), budgets.min, len(budgets)
    tops = budget_optima(points, budgets)
    variants = budget_variants(k, pooled)
    out = []
    for total in totals:
        per_variant: Dict[str, List[List[Optional[float]]]] = {v: [] for v in variants}
        for seed in range(seeds):
            history = search_history('original', latency, budgets, total, seed, population, parents)
            per_variant['multi-budget'].append([best_after(history, [total], i)[0]['best'] for i in range(k)])
            single = []
            for i in range(k):
                band = Budgets([edges[i]], budgets.band(i)[0])
                single.append(best_after(search_history('original', latency, band, total // k, seed, population,
                                                        parents), [total // k])[0]['best'])
            per_variant[f'{k} single-band'].append(single)
            if pooled:
                history = search_history('pooled', latency, budgets, total, seed, population, parents)
                per_variant['multi, pooled parents'].append([best_after(history, [total], i)[0]['best']
                                                             for i in range(k)])
        regrets = {v: statistics.mean(tops[i] - b[i] for b in per_variant[v] for i in range(k) if b[i] is not None)
                   for v in variants}
        out.append(dict(total_steps=total, optimum=tops, best=per_variant, mean_regret=regrets))
    return dict(budgets=edges, min=low, rows=out)


# ---------------------------------------------------------------------------------------------------- tables
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


def format_strategies(result: dict, stopped: int, dense: float, band: Sequence[float], population: int,
                      parents: int, seeds: int) -> str:
    """Part 1's tables (markdown): best vs steps and vs configurations scored, per strategy (``band``: the
    fractions of dense the result's band was made of)."""
    (low, high), top, names = result['band'], result['optimum'], STRATEGIES
    out: List[str] = []
    out.append(f'\n## Strategy: original vs elitist, band [{low:.2f}, {high:.2f}] ms ({band[0]:g}-{band[1]:g} x '
               f'dense {dense:.2f} ms), population {population}, parents {parents}, {seeds} seeds')
    out.append(f'optimum of the band (enumerated): {top:.3f}\n')
    out.append('Best score found vs steps (mean ± sd over seeds; regret = optimum - best; scored = configurations '
               'evaluated by then, mean):\n')
    out.append('| steps | original: best | regret | scored | elitist: best | regret | scored |')
    out.append('|---|---|---|---|---|---|---|')
    for row in result['by_steps']:
        cells = []
        for s in names:
            cells += [_mean(row[s]['best']), _regret(row[s]['best'], top), f"{row[s]['scored']:.0f}"]
        out.append(f"| {row['steps']} | " + ' | '.join(cells) + ' |')
    out.append('\nBest score found vs configurations scored (the cost of a real search: one COCO evaluation each):\n')
    out.append('| scored | original: best | regret | elitist: best | regret |')
    out.append('|---|---|---|---|---|')
    for k, n in enumerate(result['evaluations']):
        cells = []
        for s in names:
            bests = [seed_bests[k] for seed_bests in result['by_scored'][s]]
            cells += [_mean(bests), _regret(bests, top)]
        out.append(f'| {n} | ' + ' | '.join(cells) + ' |')
    if stopped:
        out.append(f'\n(the elitist search stopped early, its band exhausted around the parents, in {stopped} of '
              f'{seeds} seeds)')
    return '\n'.join(out)


def format_budgets(result: dict, budgets: Budgets, tops: Sequence[Optional[float]], fractions: Sequence[float],
                   budget_min: float, population: int, parents: int, seeds: int, pooled: bool) -> str:
    """Part 2's table (markdown): per total steps and budget, the best (and regret) of each variant (``tops``: the
    optima; ``fractions``, ``budget_min``: the budgets as fractions of dense, as given)."""
    k = len(budgets)
    variants = budget_variants(k, pooled)
    out: List[str] = []
    out.append(f'\n## Budgets: one multi-budget run vs {k} single-band searches, budgets '
               f"{', '.join(budgets.label(i) for i in range(k))} (fractions {' '.join(f'{f:g}' for f in fractions)} "
          f'of dense, from {budget_min:g}), population {population}, parents {parents}, '
          f'{seeds} seeds')
    out.append('optimum per budget (enumerated): ' + ', '.join(f'{t:.3f}' for t in tops) + '\n')
    out.append('| total steps | budget | optimum | ' + ' | '.join(f'{v}: best (regret)' for v in variants) + ' |')
    out.append('|---|---|---|' + '---|' * len(variants))
    for row in result['rows']:
        total = row['total_steps']
        for i in range(k):
            cells = []
            for v in variants:
                bests = [seed_bests[i] for seed_bests in row['best'][v]]
                cells.append(f'{_mean(bests)} ({_regret(bests, tops[i])})')
            out.append(f'| {total} | {budgets.label(i)} | {tops[i]:.3f} | ' + ' | '.join(cells) + ' |')
        regrets = ' | '.join(f"{row['mean_regret'][v]:.3f}" for v in variants)
        out.append(f'| {total} | mean regret | | {regrets} |')
    return '\n'.join(out)
