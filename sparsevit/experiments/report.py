"""The results of ``make experiments``: records, comparisons, verdicts, ``results.md``, ``results.json`` and
``tradeoff.png``, built from the files a run leaves (:func:`write_report`).

* A **record** is one row of the table (:func:`collect`): a model with its latency (median of the interleaved
  rounds, every round, their spread), its backbone GMACs (analytic, for the windows it keeps) and its COCO
  metrics; a row evaluated several times (the random-window rows, one evaluation per selection seed) has the
  mean of its evaluations.
* A **pair** is one comparison of SparseViT with a baseline (:func:`comparison_pairs`): per budget (or, for the
  width baselines, with the SparseViT row of closest latency), the latency gap, the compute of both, the bbox mAP
  difference and its paired bootstrap interval over the val images. A comparison at matched latency more than
  3 % apart is "not matched": shown, left out of the verdict. A comparison at the same ratios (random windows,
  no SAA) is matched by construction (the same windows kept, the same MACs).
* A **verdict** (:func:`verdict`) counts the pairs where SparseViT is ahead (the interval above 0), within noise
  (it contains 0) and behind.
"""
import collections
import contextlib
import glob
import io
import os.path as osp
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence

from .files import read_json, write_json
from .matching import MATCH_TOLERANCE, is_matched, latency_gap, nearest
from .noise import (BOOTSTRAP_LEVEL, SPREAD_LIMIT, ImageResamples, latency_spread, read_detections,
                    spread_flagged)
from .settings import ExperimentError

METRICS = ('bbox_mAP', 'segm_mAP', 'bbox_mAP_s', 'bbox_mAP_m', 'segm_mAP_s', 'segm_mAP_m')
#: What tools/test.py writes with ``--eval-options jsonfile_prefix=DIR/results``: the detections of the bootstrap.
DETECTIONS = 'results.bbox.json'


class Comparison(NamedTuple):
    """One table of the report: SparseViT (``other``) against the baseline ``base``; ``same_ratios``: the two keep
    the same windows (matched by construction), else they are compared at matched latency."""
    title: str
    base: str
    other: str
    what: str
    same_ratios: bool


COMPARISONS = (
    Comparison('Sparsity vs resolution', 'resolution', 'sparsevit',
               'dense model at a reduced input size vs SparseViT at the full size; budget i = the latency of size i',
               False),
    Comparison('Sparsity vs width', 'width', 'sparsevit',
               'dense models of reduced width (embed dims scaled, heads kept), trained from scratch as long as '
               "SparseViT's whole path (dense + SAA epochs), at the full size, vs the searched SparseViT row of "
               'closest latency', False),
    Comparison('Window selection', 'random', 'sparsevit',
               'random windows (mean over selection seeds) vs L2-norm windows, same ratios and weights (SAA, '
               'trained with L2 selection)', True),
    Comparison('Non-uniform vs uniform sparsity', 'uniform', 'sparsevit',
               'one ratio for every block, the one of closest latency, vs the searched per-block ratios (SAA '
               'weights)', False),
    Comparison('With vs without SAA', 'no_saa', 'sparsevit',
               'the dense weights finetuned as long without sparsity vs the SAA weights, at the searched ratios',
               True),
)
METHOD_LABELS = dict(resolution='dense, lower resolution', sparsevit='SparseViT (searched, L2, SAA)',
                     random='random windows (searched ratios)', uniform='uniform ratio (SAA)',
                     no_saa='searched ratios, no SAA', width='dense, reduced width')
REFERENCE_LABELS = dict(resolution='dense, full resolution', sparsevit='SparseViT (SAA weights), dense')
#: Plot colour, marker and line per method.
PLOT_STYLES = dict(resolution=('tab:blue', 's', '-'), sparsevit=('tab:red', 'o', '-'),
                   width=('tab:orange', 'D', '-.'), random=('tab:gray', 'x', '--'),
                   uniform=('tab:green', '^', '--'), no_saa=('tab:purple', 'v', ':'))


def sparsity_text(ratios: Optional[Sequence[Sequence[float]]]) -> str:
    """Genes per stage (one ratio per W-MSA/SW-MSA pair), e.g. ``0.3 / 0 / 0.1 0.2 0.2 / 0``; ``dense``;
    ``uniform 0.4``."""
    if ratios is None or all(r == 0 for stage in ratios for r in stage):
        return 'dense'
    flat = {r for stage in ratios for r in stage}
    if len(flat) == 1:
        return f'uniform {flat.pop():g}'
    return ' / '.join(' '.join(f'{stage[j]:g}' for j in range(0, len(stage), 2)) for stage in ratios)


def newest_eval(work_dir: str) -> Optional[dict]:
    """The ``metric`` dict of the newest ``eval_*.json`` that tools/test.py wrote in ``work_dir`` (None if none)."""
    found = sorted(glob.glob(osp.join(work_dir, 'eval_*.json')), key=osp.getmtime)
    return read_json(found[-1]).get('metric') if found else None


# ----------------------------------------------------------------------------------------------------------------
# Records and pairs
# ----------------------------------------------------------------------------------------------------------------
def _metric(metric: Mapping, key: str) -> Optional[float]:
    """A COCO metric of an eval json; None where COCO could not compute it (-1: no object of that size)."""
    value = metric.get(key)
    return float(value) if value is not None and float(value) >= 0 else None


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def record_label(row: Mapping) -> str:
    """The model column: the method's label (the reference rows have their own), with the width factor."""
    if row['budget'] is None and row['method'] in REFERENCE_LABELS:
        return REFERENCE_LABELS[row['method']]
    label = METHOD_LABELS[row['method']]
    return f"{label} x{row['width']:g}" if row.get('width') is not None else label


def collect(rows: Sequence[Mapping], latency: Mapping[str, Mapping],
            evals: Mapping[str, Optional[dict]]) -> List[dict]:
    """The table's records, one per row group (``group``: the rows of the seeds of one random-window row; else
    the row itself), in the rows' order. Metrics are the mean over the group's evaluations; a group without any
    is left out. Latency: the group's latency entry (median, rounds, spread, GMACs)."""
    groups: Dict[str, List[Mapping]] = collections.OrderedDict()
    for row in rows:
        groups.setdefault(row.get('group') or row['name'], []).append(row)
    records = []
    for group, members in groups.items():
        evaluated = [m for m in members if evals.get(m['name']) is not None]
        if not evaluated:
            continue
        first = members[0]
        lat = latency[first['latency_key']]
        spread = latency_spread(lat['runs_ms'])
        values = {k: _mean([_metric(evals[m['name']], k) for m in evaluated]) for k in METRICS}
        seeds = [m['seed'] for m in evaluated] if first.get('seed') is not None else None
        record = dict(name=group, method=first['method'], label=record_label(first), weights=first['weights'],
                      img_size=first['img_size'], budget=first['budget'], width=first.get('width'),
                      sparsity=sparsity_text(first['pruning_ratios']), pruning_ratios=first['pruning_ratios'],
                      latency_ms=lat['latency_ms'], latency_runs_ms=lat['runs_ms'], latency_spread=spread,
                      spread_flag=spread_flagged(spread), gmacs=lat.get('gmacs'),
                      evals=[m['name'] for m in evaluated], seeds=seeds, **values)
        if seeds is not None:
            record['bbox_mAP_seeds'] = [_metric(evals[m['name']], 'bbox_mAP') for m in evaluated]
        records.append(record)
    return records


def _difference(a: Mapping, b: Mapping, metric: str) -> Optional[float]:
    return None if a[metric] is None or b[metric] is None else a[metric] - b[metric]


def _couples(records: Sequence[dict], comparison: Comparison) -> List[tuple]:
    """(SparseViT record, baseline record, pair label) of a comparison."""
    sparse = {r['budget']: r for r in records if r['method'] == comparison.other and r['budget'] is not None}
    if comparison.base == 'width':
        by_name = {r['name']: r for r in sparse.values()}
        out = []
        for base in (r for r in records if r['method'] == 'width'):
            name = nearest(base['latency_ms'], {n: r['latency_ms'] for n, r in by_name.items()})
            if name is not None:
                out.append((by_name[name], base, f"x{base['width']:g} vs budget {by_name[name]['budget'] + 1}"))
        return out
    bases = {r['budget']: r for r in records if r['method'] == comparison.base and r['budget'] is not None}
    return [(sparse[i], bases[i], f'budget {i + 1}') for i in sorted(sparse) if i in bases]


def comparison_pairs(records: Sequence[dict], comparison: Comparison,
                     resamples: Optional[ImageResamples] = None, tolerance: float = MATCH_TOLERANCE) -> List[dict]:
    """The pairs of one comparison: SparseViT (``a``) against the baseline (``b``), with the latency gap
    (``a / b - 1``), ``match`` ('same ratios', 'matched' or 'not matched'), the bbox mAP difference (and on
    small objects) and, when ``resamples`` has both rows' evaluations, its bootstrap interval; ``verdict``:
    'ahead', 'behind' or 'within noise' from the interval, else by the sign of the difference."""
    pairs = []
    for a, b, label in _couples(records, comparison):
        gap = latency_gap(a['latency_ms'], b['latency_ms'])
        match = 'same ratios' if comparison.same_ratios else 'matched' if is_matched(gap, tolerance) else 'not matched'
        delta = _difference(a, b, 'bbox_mAP')
        boot = None
        if resamples is not None and all(k in resamples for k in a['evals'] + b['evals']):
            boot = resamples.compare(a['evals'], b['evals'])
        if boot is not None:
            decision = boot.verdict
        else:
            decision = None if delta is None else 'ahead' if delta > 0 else 'behind' if delta < 0 else 'tied'
        pairs.append(dict(comparison=comparison.title, label=label, a=a['name'], b=b['name'], budget=a['budget'],
                          latency_ms=a['latency_ms'], base_latency_ms=b['latency_ms'], gap=gap, gmacs=a['gmacs'],
                          base_gmacs=b['gmacs'], match=match, delta=delta,
                          delta_small=_difference(a, b, 'bbox_mAP_s'),
                          low=None if boot is None else boot.low, high=None if boot is None else boot.high,
                          level=None if boot is None else boot.level, verdict=decision))
    return pairs


def verdict(pairs: Sequence[Mapping], comparison: Comparison) -> str:
    """One line: at how many compared pairs SparseViT is ahead, within noise and behind (bbox mAP, 95 % interval),
    which pairs are left out (not matched), then every pair's numbers."""
    if not pairs:
        return 'no budget has both rows evaluated'
    counted = [p for p in pairs if p['match'] != 'not matched']
    left = [p for p in pairs if p['match'] == 'not matched']
    unit = 'widths' if comparison.base == 'width' else 'budgets'
    kind = ' (same ratios)' if comparison.same_ratios else ' at matched latency'
    head = f'{METHOD_LABELS[comparison.other]} vs {METHOD_LABELS[comparison.base]}: '
    tally = collections.Counter(p['verdict'] for p in counted)
    if not counted:
        head += (f'no comparison at matched latency (all {len(pairs)} more than {MATCH_TOLERANCE:.0%} apart in '
                 f'latency)')
    elif all(p['low'] is not None for p in counted):
        head += (f"ahead at {tally['ahead']}, within noise at {tally['within noise']}, behind at {tally['behind']} "
                 f"of {len(counted)} {unit}{kind} (95 % paired bootstrap interval of the bbox mAP difference over "
                 f"the val images)")
    else:
        head += (f"ahead at {tally['ahead']}/{len(counted)} {unit}{kind} (by the point difference: no per-image "
                 'detections, no interval)')
    if left:
        head += (f'; not matched (more than {MATCH_TOLERANCE:.0%} apart in latency), left out: '
                 + ', '.join(p['label'] for p in left))

    def part(p: Mapping) -> str:
        gmacs = (f"; {p['gmacs']:.2f} vs {p['base_gmacs']:.2f} GMACs" if p['gmacs'] is not None
                 and p['base_gmacs'] is not None else '')
        delta = '–' if p['delta'] is None else f"{p['delta']:+.3f}"
        boot = f" {interval_text_of(p)} {p['verdict']}" if p['low'] is not None else ''
        small = f" (small {p['delta_small']:+.3f})" if p['delta_small'] is not None else ''
        return (f"{p['label']} ({p['latency_ms']:.1f} vs {p['base_latency_ms']:.1f} ms, {p['gap']:+.1%}{gmacs}): "
                f"{delta}{boot}{small}" + (' [not matched]' if p['match'] == 'not matched' else ''))
    return head + '. bbox mAP difference (SparseViT - baseline): ' + '; '.join(part(p) for p in pairs)


def interval_text_of(pair: Mapping) -> str:
    """A pair's interval of the difference, ``[-0.012, +0.034]``; ``–`` without one."""
    return '–' if pair['low'] is None else f"[{pair['low']:+.3f}, {pair['high']:+.3f}]"


# ----------------------------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------------------------
def _fmt(value: Optional[float], digits: int = 3) -> str:
    return '–' if value is None else f'{value:.{digits}f}'


def markdown_table(records: Sequence[dict], reference_ms: float) -> str:
    """The rows, slowest first: latency with its spread across rounds (flagged above :data:`SPREAD_LIMIT`),
    relative to dense, backbone GMACs, COCO metrics."""
    lines = ['| model | weights | input | sparsity (genes per stage) | latency (ms) | spread | vs dense | GMACs | '
             'bbox mAP | mask mAP | bbox mAP S | bbox mAP M |', '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in sorted(records, key=lambda r: -r['latency_ms']):
        notes = ([f"budget {r['budget'] + 1}"] if r['budget'] is not None else []) + (
            [f"mean of {len(r['seeds'])} seeds"] if r.get('seeds') else [])
        model = r['label'] + (f" ({', '.join(notes)})" if notes else '')
        spread = f"{r['latency_spread']:.0%}" + (' (!)' if r['spread_flag'] else '')
        lines.append(f"| {model} | {r['weights']} | {r['img_size']} | {r['sparsity']} | {r['latency_ms']:.1f} | "
                     f"{spread} | {r['latency_ms'] / reference_ms:.2f} | {_fmt(r['gmacs'], 2)} | "
                     f"{_fmt(r['bbox_mAP'])} | {_fmt(r['segm_mAP'])} | {_fmt(r['bbox_mAP_s'])} | "
                     f"{_fmt(r['bbox_mAP_m'])} |")
    return '\n'.join(lines)


def pairs_table(pairs: Sequence[Mapping]) -> str:
    """One line per pair: latencies and gap, GMACs, match, the bbox mAP difference, its interval, the verdict."""
    lines = ['| pair | latency (ms): SparseViT / baseline | gap | GMACs: SparseViT / baseline | match | '
             'Δ bbox mAP | 95 % interval | verdict |', '|---|---|---|---|---|---|---|---|']
    for p in pairs:
        gmacs = f"{_fmt(p['gmacs'], 2)} / {_fmt(p['base_gmacs'], 2)}"
        delta = '–' if p['delta'] is None else f"{p['delta']:+.3f}"
        lines.append(f"| {p['label']} | {p['latency_ms']:.1f} / {p['base_latency_ms']:.1f} | {p['gap']:+.1%} | "
                     f"{gmacs} | {p['match']} | {delta} | {interval_text_of(p)} | {p['verdict'] or '–'} |")
    return '\n'.join(lines)


def matching_markdown(matches: Mapping[str, Mapping]) -> str:
    """The candidates each budget timed beside its baseline, and the one compared."""
    lines = ['| budget | baseline (ms) | candidate | search metric | predicted (ms) | measured (ms) | vs baseline | '
             'compared |', '|---|---|---|---|---|---|---|---|']
    for budget, m in sorted(matches.items(), key=lambda kv: int(kv[0])):
        for c in m['candidates']:
            chosen = ('yes' if m['matched'] else 'yes, not matched') if c['name'] == m['picked'] else ''
            lines.append(f"| {int(budget) + 1} | {m['baseline_ms']:.1f} | rank {c['rank']} | {c['metric']:.3f} | "
                         f"{c['predicted_ms']:.1f} | {c['measured_ms']:.1f} | {c['gap']:+.1%} | {chosen} |")
    return '\n'.join(lines)


def kept_windows_markdown(analyses: Mapping[str, dict]) -> List[str]:
    """The kept-window analysis of each weights (``{'SAA weights': result, ...}``) as markdown lines."""
    from ..analysis.kept_windows import format_markdown
    text = []
    for title, result in analyses.items():
        text += [f'### {title}', '', f"{result['num_images']} val images, {result['num_objects']} objects; random "
                 f"selection over {len(result['random_seeds'])} seeds.", '', format_markdown(result).rstrip(), '']
    return text


def report_markdown(records: Sequence[dict], comparisons: Sequence[tuple], meta: dict) -> str:
    """The results: one section per comparison (its rows, its pairs, its verdict), the matching of the budgets,
    the kept-window analysis, and how everything was measured. ``comparisons``: ``(Comparison, pairs)``."""
    st = meta['settings']
    dense = next((r for r in records if r['name'] == 'dense'), None)
    ref = dense['latency_ms'] if dense else max(r['latency_ms'] for r in records)
    text = [f"# SparseViT experiments on the small-objects synthetic data ({st['img_size']} px, "
            f"{st.get('style', 'flat')} style)", '']
    for comparison, pairs in comparisons:
        base, other = comparison.base, comparison.other
        rows = [r for r in records if r['method'] == base or (r['method'] == other and (
            r['budget'] is not None or base == 'resolution'))]
        if not any(r['method'] == base for r in rows):
            continue
        text += [f'## {comparison.title}', '', f'{comparison.what[0].upper()}{comparison.what[1:]}.', '',
                 markdown_table(rows, ref), '']
        if pairs:
            text += [pairs_table(pairs), '']
        text += [f'**{verdict(pairs, comparison)}**', '']
    if meta.get('matches'):
        text += ['## Matching the budgets', '', f"Up to {st.get('match_candidates', 1)} search candidates per "
                 "budget (rank 0: the search's best of the budget; then the best by the search metric, on the "
                 "held-out split, in each bin of predicted latency around the budget's edge, from the whole "
                 'history), timed in the same interleaved run as their baseline; compared: the best by search '
                 f"metric within {MATCH_TOLERANCE:.0%} of the baseline's latency, else the closest (not matched).",
                 '', matching_markdown(meta['matches']), '']
    if meta.get('kept_windows'):
        text += ['## Kept windows', '', 'Do the windows SparseViT keeps hold the objects? Uniform ratios on the '
                 'val split (`tools/analyze_windows.py`; definitions in `sparsevit.analysis.kept_windows`).', '']
        text += kept_windows_markdown(meta['kept_windows'])
    lat = meta['latency']
    text += ['Latency: backbone only, batch {b}, random input, {w} warm-up + {n} timed forwards, trimmed mean (25 % '
             'each side), median of {k} interleaved rounds in one process, {t} threads, torch {v}; "spread": '
             '(max - min) / median of the rounds, (!) above {lim:.0%}; "vs dense": the dense model at {s} px. GMACs: '
             'backbone multiply-accumulates of one image for the windows kept (analytic, '
             '`sparsevit.analysis.compute`). mAP: COCO mAP@[.5:.95] on the val split ({nv} images; random-window '
             'rows: the mean of their seeds); S/M: objects below 32² px / 32²–96² px of area; intervals: paired '
             'bootstrap over the val images ({bs} resamples of {bi} images). Training: {de} epochs dense, then {ae} '
             'epochs of SAA (SparseViT rows, random, uniform) or of dense finetune at the row\'s size (resolution '
             'and no-SAA rows); width rows: {we} epochs from scratch. The search ({search}) scored candidates on the '
             'held-out search split ({ns} images).'.format(
                 b=lat['batch_size'], w=lat['warmup'], n=lat['repeats'], k=lat['rounds'], t=lat['threads'],
                 v=lat['torch'], lim=SPREAD_LIMIT, s=st['img_size'], nv=st['num_val'], de=st['dense_epochs'],
                 ae=st['adapt_epochs'], we=st['dense_epochs'] + st['adapt_epochs'], ns=st['num_search'],
                 bs=meta.get('bootstrap_samples') or '–', bi=meta.get('bootstrap_images') or '–',
                 search=f"multi-budget, {st['search_steps']} steps")]
    if meta.get('wall_time_s'):
        text.append(f"Wall time of the run: {meta['wall_time_s'] / 60:.1f} min.")
    return '\n'.join(text) + '\n'


# ----------------------------------------------------------------------------------------------------------------
# Plot
# ----------------------------------------------------------------------------------------------------------------
def plot_tradeoff(records: Sequence[dict], path: str) -> str:
    """``bbox mAP`` vs backbone latency (all objects, small objects) and vs backbone GMACs, one curve per method,
    as the paper's figure."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    panels = (('latency_ms', 'bbox_mAP', 'backbone latency (ms)', 'all objects'),
              ('latency_ms', 'bbox_mAP_s', 'backbone latency (ms)', 'small objects'),
              ('gmacs', 'bbox_mAP', 'backbone GMACs (one image)', 'all objects, vs compute'))
    for ax, (x_key, metric, x_label, title) in zip(axes, panels):
        for method, (colour, marker, line) in PLOT_STYLES.items():
            points = sorted(((r[x_key], r[metric], r) for r in records
                             if r['method'] == method and r[metric] is not None and r.get(x_key) is not None),
                            key=lambda p: p[:2])  # two budgets can pick the same row: ties must not compare dicts
            if not points:
                continue
            ax.plot([p[0] for p in points], [p[1] for p in points], line, marker=marker, color=colour,
                    label=METHOD_LABELS[method])
            if method in ('resolution', 'width'):
                for x, y, r in points:
                    note = f"{r['img_size']}" if method == 'resolution' else f"x{r['width']:g}"
                    ax.annotate(note, (x, y), textcoords='offset points', xytext=(4, -10), fontsize=7, color=colour)
        ax.set_xlabel(x_label)
        ax.set_ylabel('bbox mAP' + (' (small objects)' if metric.endswith('_s') else ''))
        ax.set_title(f'bbox mAP, {title}')
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------------------
# The whole report
# ----------------------------------------------------------------------------------------------------------------
def image_resamples(ann_file: Optional[str], rows: Sequence[Mapping], work_dir: str,
                    seed: int = 0) -> Optional[ImageResamples]:
    """The bootstrap of a run: the val ground truth and every row's detections (``eval/NAME/results.bbox.json``)
    that exist; None without the ground truth or without any detections."""
    paths = {r['name']: osp.join(work_dir, 'eval', r['name'], DETECTIONS) for r in rows}
    paths = {n: p for n, p in paths.items() if osp.isfile(p)}
    if not ann_file or not osp.isfile(ann_file) or not paths:
        return None
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(ann_file)
    resamples = ImageResamples(coco_gt, seed=seed)
    for name, path in paths.items():
        resamples.add(name, read_detections(path))
    return resamples


def write_report(work_dir: str, wall_time_s: Optional[float] = None) -> str:
    """Build ``results.md``, ``results.json`` and ``tradeoff.png`` in ``work_dir`` from its ``rows.json``,
    ``latency.json``, ``eval/*/`` (``eval_*.json``, and the detections of the bootstrap) and ``windows_*.json``
    (the kept-window analyses); returns the markdown."""
    meta = read_json(osp.join(work_dir, 'rows.json'))
    latency = read_json(osp.join(work_dir, 'latency.json'))
    if not meta.get('rows') or not latency.get('results'):
        raise ExperimentError(f'{work_dir} has no rows.json / latency.json: run the experiments first')
    evals = {r['name']: newest_eval(osp.join(work_dir, 'eval', r['name'])) for r in meta['rows']}
    records = collect(meta['rows'], latency['results'], evals)
    if not records:
        raise ExperimentError(f'no evaluation found under {osp.join(work_dir, "eval")}')
    resamples = image_resamples(meta.get('val_ann'), [r for r in meta['rows'] if evals.get(r['name'])], work_dir,
                                meta['settings'].get('seed', 0))
    comparisons = [(c, comparison_pairs(records, c, resamples)) for c in COMPARISONS]
    windows = {title: read_json(osp.join(work_dir, f'windows_{key}.json'))
               for key, title in (('saa', 'SAA weights'), ('dense', 'dense weights (finetuned as long)'))}
    windows = {title: result for title, result in windows.items() if result.get('settings')}
    meta = dict(meta, latency={k: v for k, v in latency.items() if k != 'results'}, wall_time_s=wall_time_s,
                kept_windows=windows, bootstrap_samples=resamples.num_samples if resamples else None,
                bootstrap_images=resamples.num_images if resamples else None)
    text = report_markdown(records, comparisons, meta)
    with open(osp.join(work_dir, 'results.md'), 'w') as f:
        f.write(text)
    missing = [r['name'] for r in meta['rows'] if evals.get(r['name']) is None]
    write_json(osp.join(work_dir, 'results.json'), dict(
        rows=records, pairs=[p for _, pairs in comparisons for p in pairs],
        verdicts={c.title: verdict(pairs, c) for c, pairs in comparisons}, missing=missing,
        settings=meta['settings'], sizes=meta['sizes'], budgets_ms=meta['budgets_ms'], matches=meta.get('matches'),
        latency=meta['latency'], kept_windows=windows, wall_time_s=wall_time_s,
        bootstrap=dict(samples=meta['bootstrap_samples'], level=BOOTSTRAP_LEVEL, metric='bbox mAP',
                       images=meta['bootstrap_images'])))
    plot_tradeoff(records, osp.join(work_dir, 'tradeoff.png'))
    return text
