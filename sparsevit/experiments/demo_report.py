"""The demo's results table (like the SparseViT README's), built from the tools' JSON outputs
(``tools/demo_report.py``, the last step of ``make demo``): rows of config, sparsity, latency (median of repeated
``tools/measure_latency.py --json`` files) and COCO mAP (``tools/test.py``'s ``eval_*.json``), the demo's targets
as checks, the fp32/bf16 comparison (``tools/check_precision.py``) and the kept-window analyses
(``tools/analyze_windows.py``).
"""
import glob
import json
import os
import os.path as osp
import statistics
from typing import List, Optional, Sequence, Tuple

from ..schedule import format_genes, ratios_to_genes
from ..utils.cli import write_json

#: The demo's targets (issue 3): dense bbox mAP >= 0.5, sparse within 0.05 of it, at a lower latency. The dense
#: target was set on the `flat` data of that issue; none was fixed in advance for another data style, so there the
#: dense mAP is reported without a target (choosing one after seeing the result would make the check meaningless).
DENSE_BBOX_TARGETS = dict(flat=0.5)
DENSE_BBOX_TARGET = DENSE_BBOX_TARGETS['flat']
MAX_BBOX_DROP = 0.05
#: bf16 autocast inference: bbox mAP within 0.02 of fp32 (issue 9).
MAX_BF16_BBOX_CHANGE = 0.02


def load_json(path: str) -> dict:
    if not osp.isfile(path):
        raise ValueError(f'file not found: {path}')
    with open(path) as f:
        return json.load(f)


def eval_file(path: str) -> str:
    """``path`` itself, or the newest ``eval_*.json`` in the directory ``path``."""
    if osp.isdir(path):
        found = sorted(glob.glob(osp.join(path, 'eval_*.json')), key=osp.getmtime)
        if not found:
            raise ValueError(f'no eval_*.json in {path} (run tools/test.py --work-dir {path} --eval bbox segm)')
        return found[-1]
    return path


def sparsity_text(ratios: Optional[list]) -> str:
    """Compact genes of per-block ratios, e.g. ``0.3 / 0 / 0.1 0.2 0.2 / 0`` (stages separated by ``/``)."""
    if ratios is None:
        return 'dense'
    if all(r == 0 for stage in ratios for r in stage):
        return 'dense'
    genes = ratios_to_genes(ratios, [len(s) for s in ratios])
    stages = {}
    for name, value in genes.items():
        stages.setdefault(name.split('.')[-1].split('_')[0], []).append(f'{value:g}')
    return ' / '.join(' '.join(v) for v in stages.values())


def median_latency(paths: Sequence[str]) -> Tuple[float, dict]:
    """Median ``latency_ms`` over the measurement files and the first file's content."""
    runs = [load_json(p) for p in paths]
    return float(statistics.median(r['latency_ms'] for r in runs)), runs[0]


def load_metric(eval_path: str) -> dict:
    """The ``metric`` of an eval json (or of the newest in a directory), with its ``dtype`` (fp32 if absent)."""
    path = eval_file(eval_path)
    record = load_json(path)
    metric = record.get('metric', {})
    missing = [k for k in ('bbox_mAP', 'segm_mAP') if k not in metric]
    if missing:
        raise ValueError(f'{path} has no {missing} (evaluate with --eval bbox segm)')
    return dict(metric, dtype=record.get('dtype', 'fp32'))


def build_row(name: str, config: str, eval_path: str, latency_paths: str) -> dict:
    metric = load_metric(eval_path)
    paths = latency_paths.split(',')
    latency_ms, latency = median_latency(paths)
    ratios = latency.get('pruning_ratios')
    return dict(name=name, config=config, latency_ms=latency_ms,
                latency_runs_ms=[load_json(p)['latency_ms'] for p in paths],
                img_size=latency.get('img_size'), batch_size=latency.get('batch_size'),
                device=latency.get('device'), bbox_mAP=float(metric['bbox_mAP']),
                segm_mAP=float(metric['segm_mAP']), pruning_ratios=ratios, sparsity=sparsity_text(ratios),
                genes=format_genes(ratios_to_genes(ratios, [len(s) for s in ratios])) if ratios else None)


def precision_rows(rows: List[dict], bf16: Sequence[str], check_path: Optional[str]) -> dict:
    """Row NAME's fp32 mAP, its bf16 mAP and (optionally) the kept-window agreement of tools/check_precision.py."""
    name, eval_path = bf16
    row = next(r for r in rows if r['name'] == name)
    metric = load_metric(eval_path)
    if metric['dtype'] != 'bf16':
        raise ValueError(f'{eval_file(eval_path)} was evaluated in {metric["dtype"]}, not bf16 '
                         f'(tools/test.py --dtype bf16)')
    out = dict(name=name, fp32=dict(bbox_mAP=row['bbox_mAP'], segm_mAP=row['segm_mAP']),
               bf16=dict(bbox_mAP=float(metric['bbox_mAP']), segm_mAP=float(metric['segm_mAP'])), windows=None)
    if check_path is not None:
        check = load_json(check_path)
        out['windows'] = {k: check[k] for k in ('agree', 'kept', 'agreement', 'flips', 'same_input_mismatches',
                                                 'num_images', 'dtype')}
    return out


def precision_text(p: dict) -> str:
    """The fp32/bf16 table of one model, and the window agreement line."""
    lines = ['| model | precision | bbox mAP | mask mAP |', '|---|---|---|---|']
    for key, label in (('fp32', 'fp32'), ('bf16', 'bf16 (autocast)')):
        lines.append(f"| {p['name']} | {label} | {p[key]['bbox_mAP']:.3f} | {p[key]['segm_mAP']:.3f} |")
    w = p['windows']
    if w is not None:
        lines += ['', f"Kept windows that agree between fp32 and {w['dtype']} (tools/check_precision.py, "
                      f"{w['num_images']} val images): {w['agree']}/{w['kept']} ({100 * w['agreement']:.2f} %), "
                      f"{w['flips']} flips; same stage input ranked in fp32 and {w['dtype']}: "
                      + ('identical.' if w['same_input_mismatches'] == 0
                         else f"{w['same_input_mismatches']} stage(s) differ.")]
    return '\n'.join(lines)


def checks(rows: List[dict], precision: Optional[dict] = None, style: str = 'flat') -> List[dict]:
    """The demo's targets, evaluated on the rows (the first is the dense reference; later dense rows are skipped).
    A check without a target for the data ``style`` has ``ok`` None (reported, neither passed nor failed)."""
    dense = rows[0]
    target = DENSE_BBOX_TARGETS.get(style)
    if target is None:
        out = [dict(check=f'dense bbox mAP: no target for {style} data (the demo\'s {DENSE_BBOX_TARGET:g} was set on '
                    'flat data)', value=dense['bbox_mAP'], ok=None)]
    else:
        out = [dict(check=f'dense bbox mAP >= {target}', value=dense['bbox_mAP'], ok=dense['bbox_mAP'] >= target)]
    for row in rows[1:]:
        if row['sparsity'] == 'dense':
            continue
        drop = dense['bbox_mAP'] - row['bbox_mAP']
        out.append(dict(check=f"{row['name']}: bbox mAP drop from dense <= {MAX_BBOX_DROP}", value=round(drop, 4),
                        ok=drop <= MAX_BBOX_DROP))
        out.append(dict(check=f"{row['name']}: lower latency than dense",
                        value=round(row['latency_ms'] / dense['latency_ms'], 4),
                        ok=row['latency_ms'] < dense['latency_ms']))
    if precision is not None:
        change = abs(precision['bf16']['bbox_mAP'] - precision['fp32']['bbox_mAP'])
        out.append(dict(check=f"{precision['name']}: bf16 bbox mAP within {MAX_BF16_BBOX_CHANGE} of fp32",
                        value=round(change, 4), ok=change <= MAX_BF16_BBOX_CHANGE))
        if precision['windows'] is not None:
            mismatches = precision['windows']['same_input_mismatches']
            out.append(dict(check=f"{precision['name']}: bf16 ranks the same stage input as fp32 does",
                            value=mismatches, ok=mismatches == 0))
    return out


def table(rows: List[dict], own_dense: Optional[str] = None) -> str:
    """Markdown table like the README's: config, sparsity, resolution, latency, its ratio to the first row (and to
    the ``own_dense`` row), bbox mAP, mask mAP."""
    ref = rows[0]['latency_ms']
    own = next((r['latency_ms'] for r in rows if r['name'] == own_dense), None)
    first = 'vs ' + (rows[0]['name'] if own is not None else 'dense')
    extra = f' vs {own_dense} |' if own is not None else ''
    lines = ['| model | config | sparsity configuration (genes per stage) | resolution | latency (ms) | '
             f'{first} |{extra} bbox mAP | mask mAP |', '|---|---|---|---|---|---|' + ('---|' if own else '')
             + '---|---|']
    for r in rows:
        res = f"{r['img_size']}x{r['img_size']}" if r['img_size'] else '?'
        ratio = f" {r['latency_ms'] / own:.3f} |" if own is not None else ''
        lines.append(f"| {r['name']} | {r['config']} | {r['sparsity']} | {res} | {r['latency_ms']:.2f} | "
                     f"{r['latency_ms'] / ref:.3f} |{ratio} {r['bbox_mAP']:.3f} | {r['segm_mAP']:.3f} |")
    return '\n'.join(lines)


def kept_windows_text(label: str, analysis: dict) -> str:
    """A kept-window analysis (``tools/analyze_windows.py --json``) as a titled markdown section."""
    from ..analysis.kept_windows import format_markdown
    return (f"### {label}\n\n{analysis['num_images']} {analysis['split']} images, {analysis['num_objects']} objects; "
            f"recall: object pixels in kept windows / object pixels; precision: kept windows holding an object / "
            f"kept windows; random: mean (± std) over {len(analysis['random_seeds'])} selection seeds.\n\n"
            + format_markdown(analysis))


def demo_report(row_args: Sequence[Sequence[str]], own_dense: Optional[str] = None,
                bf16: Optional[Sequence[str]] = None, precision_check: Optional[str] = None,
                kept_windows: Sequence[Sequence[str]] = (), markdown: Optional[str] = None,
                json_path: Optional[str] = None, wall_time: Optional[float] = None, data_style: str = 'flat') -> str:
    """The demo's markdown report (the table, the checks, the fp32/bf16 comparison, the kept-window sections),
    also written to ``markdown`` and, with the rows and checks, to ``json_path``.

    Args:
        row_args: per row ``(NAME, CONFIG, EVAL, LATENCY_JSON[,LATENCY_JSON...])`` (:func:`build_row`); the first
            is the dense reference.
        own_dense, bf16 ``(NAME, EVAL)``, precision_check, kept_windows ``[(LABEL, JSON)]``, wall_time (s),
            data_style: as ``tools/demo_report.py``'s flags.

    Raises:
        ValueError, KeyError: a missing or malformed input file.
    """
    rows = [build_row(*row) for row in row_args]
    precision = precision_rows(rows, bf16, precision_check) if bf16 else None
    results = checks(rows, precision, data_style)
    first = rows[0]
    text = [table(rows, own_dense), '',
            f"Latency: backbone only, batch {first['batch_size']}, random input, trimmed mean (25 % dropped each "
            f"side), device {first['device']}, median of {len(first['latency_runs_ms'])} interleaved "
            f"measurement(s). mAP: COCO mAP@[.5:.95] on the synthetic val split."]
    if wall_time is not None:
        text.append(f'Pipeline wall time: {wall_time / 60:.1f} min.')
    if precision is not None:
        text += ['', precision_text(precision)]
    mark = {True: '[x]', False: '[ ]', None: '(no target)'}
    text += [''] + [f"- {mark[c['ok']]} {c['check']} ({c['value']:g})" for c in results]
    kept = {label: load_json(path) for label, path in kept_windows}
    if kept:
        text += ['', '## Kept windows'] + [part for label, a in kept.items() for part in ('', kept_windows_text(label,
                                                                                                            a))]
    report = '\n'.join(text)
    if markdown:
        os.makedirs(osp.dirname(osp.abspath(markdown)), exist_ok=True)
        with open(markdown, 'w') as f:
            f.write(report + '\n')
    if json_path:
        write_json(json_path, dict(rows=rows, own_dense=own_dense, precision=precision, checks=results,
                                   kept_windows=kept, wall_time_s=wall_time))
    return report
