"""The demo's results table (like the SparseViT README's), built from the tools' JSON outputs
(``tools/demo_report.py``, the last step of ``make demo`` and ``make demo-seg``): rows of config, sparsity,
latency (median of repeated ``tools/measure_latency.py --json`` files) and accuracy (``tools/test.py``'s
``eval_*.json``), the demo's targets as checks, the fp32/bf16 comparison (``tools/check_precision.py``) and the
kept-window analyses (``tools/analyze_windows.py``).

The task is read from the eval json (:data:`TASK_METRICS`): a detector's (``--eval bbox segm``) gives the columns
bbox mAP and mask mAP and the detection demo's targets; a segmentor's (``--eval mIoU``: ``mIoU``, ``mAcc``,
``aAcc`` in [0, 1]) gives mIoU and mAcc and no targets (values only). Latency files of the whole model
(``measure_latency.py --scope segmentor`` or ``detector``) given with a row's backbone files add the columns of
the whole model's latency, its ratio to the first row and the backbone's share of it.
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


#: Per task: the metrics of an eval json that name it, and the report's accuracy columns (metric key, label).
TASK_METRICS = dict(detection=(('bbox_mAP', 'bbox mAP'), ('segm_mAP', 'mask mAP')),
                    segmentation=(('mIoU', 'mIoU'), ('mAcc', 'mAcc')))
#: The ``tools/test.py`` flags that write each task's metrics.
EVAL_FLAGS = dict(detection='--eval bbox segm', segmentation='--eval mIoU')
#: What the accuracy numbers are, per task (the report's note).
ACCURACY_NOTE = dict(detection='mAP: COCO mAP@[.5:.95] on the synthetic val split.',
                     segmentation='mIoU / mAcc: mean IoU / mean per-class pixel accuracy over the classes '
                     '(background included) on the synthetic val split.')


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
            raise ValueError(f'no eval_*.json in {path} (run tools/test.py --work-dir {path} --eval bbox segm, '
                             'or --eval mIoU for a segmentor)')
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


def task_of_metric(metric: dict, path: str) -> str:
    """The task whose metrics (:data:`TASK_METRICS`) the eval json's ``metric`` holds."""
    for task, columns in TASK_METRICS.items():
        if all(key in metric for key, _ in columns):
            return task
    wanted = '; '.join(f"{', '.join(k for k, _ in cols)} ({EVAL_FLAGS[t]})" for t, cols in TASK_METRICS.items())
    raise ValueError(f'{path} has none of the metric sets {wanted}')


def load_metric(eval_path: str) -> dict:
    """The ``metric`` of an eval json (or of the newest in a directory), with its ``dtype`` (fp32 if absent) and
    ``task`` (:func:`task_of_metric`)."""
    path = eval_file(eval_path)
    record = load_json(path)
    metric = record.get('metric', {})
    return dict(metric, dtype=record.get('dtype', 'fp32'), task=task_of_metric(metric, path))


def size_label(img_size) -> str:
    """``224x224`` of a side or ``[h, w]`` (a latency json's ``img_size``), ``?`` when unknown."""
    if not img_size:
        return '?'
    from ..utils.latency import size_text
    return size_text(img_size)


def whole_model_latency(runs: Sequence[dict]) -> Optional[dict]:
    """The median latency, backbone share and protocol of the whole-model runs (``--scope segmentor`` or
    ``detector``) of one row, None without any."""
    if not runs:
        return None
    scopes = sorted({r['scope'] for r in runs})
    if len(scopes) > 1:
        raise ValueError(f'latency files of several whole-model scopes in one row: {scopes}')
    return dict(scope=scopes[0], latency_ms=float(statistics.median(r['latency_ms'] for r in runs)),
                latency_runs_ms=[r['latency_ms'] for r in runs],
                backbone_share=float(statistics.median(r['backbone_share'] for r in runs)),
                img_size=runs[0].get('img_size'), batch_size=runs[0].get('batch_size'))


def build_row(name: str, config: str, eval_path: str, latency_paths: str) -> dict:
    """One row: the eval json's accuracy (the task's columns), the median backbone latency of the files of scope
    ``backbone`` among ``latency_paths`` (comma-separated) and of the whole model among the others."""
    metric = load_metric(eval_path)
    runs = {p: load_json(p) for p in latency_paths.split(',')}
    backbone = [p for p, r in runs.items() if r.get('scope', 'backbone') == 'backbone']
    if not backbone:
        raise ValueError(f'row {name!r}: no backbone latency among {latency_paths} (measure_latency.py --scope '
                         'backbone, the default)')
    latency_ms, latency = median_latency(backbone)
    ratios = latency.get('pruning_ratios')
    row = dict(name=name, config=config, task=metric['task'], latency_ms=latency_ms,
               latency_runs_ms=[runs[p]['latency_ms'] for p in backbone],
               img_size=latency.get('img_size'), batch_size=latency.get('batch_size'),
               device=latency.get('device'), pruning_ratios=ratios, sparsity=sparsity_text(ratios),
               genes=format_genes(ratios_to_genes(ratios, [len(s) for s in ratios])) if ratios else None,
               whole=whole_model_latency([r for p, r in runs.items() if p not in backbone]))
    row.update({key: float(metric[key]) for key, _ in TASK_METRICS[metric['task']]})
    return row


def rows_task(rows: List[dict]) -> str:
    """The one task of the rows (ValueError for rows of both)."""
    tasks = sorted({r['task'] for r in rows})
    if len(tasks) > 1:
        raise ValueError(f"rows of different tasks ({', '.join(tasks)}): one report per task")
    return tasks[0]


def precision_rows(rows: List[dict], bf16: Sequence[str], check_path: Optional[str]) -> dict:
    """Row NAME's fp32 mAP, its bf16 mAP and (optionally) the kept-window agreement of tools/check_precision.py."""
    name, eval_path = bf16
    row = next(r for r in rows if r['name'] == name)
    metric = load_metric(eval_path)
    if metric['dtype'] != 'bf16':
        raise ValueError(f'{eval_file(eval_path)} was evaluated in {metric["dtype"]}, not bf16 '
                         f'(tools/test.py --dtype bf16)')
    if metric['task'] != row['task']:
        raise ValueError(f"{eval_file(eval_path)} holds {metric['task']} metrics, row {name!r} {row['task']} ones")
    keys = [key for key, _ in TASK_METRICS[row['task']]]
    out = dict(name=name, task=row['task'], fp32={k: row[k] for k in keys}, bf16={k: float(metric[k]) for k in keys},
               windows=None)
    if check_path is not None:
        check = load_json(check_path)
        out['windows'] = {k: check[k] for k in ('agree', 'kept', 'agreement', 'flips', 'same_input_mismatches',
                                                 'num_images', 'dtype')}
    return out


def precision_text(p: dict) -> str:
    """The fp32/bf16 table of one model, and the window agreement line."""
    columns = TASK_METRICS[p.get('task', 'detection')]
    lines = ['| model | precision | ' + ' | '.join(label for _, label in columns) + ' |',
             '|---|---|' + '---|' * len(columns)]
    for key, label in (('fp32', 'fp32'), ('bf16', 'bf16 (autocast)')):
        lines.append(f"| {p['name']} | {label} | " + ' | '.join(f'{p[key][k]:.3f}' for k, _ in columns) + ' |')
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
    A check without a target for the data ``style`` has ``ok`` None (reported, neither passed nor failed). The
    targets are the detection demo's: none for segmentation rows (an empty list: values only)."""
    if rows_task(rows) != 'detection':
        return []
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
    """Markdown table like the README's: config, sparsity, resolution, backbone latency, its ratio to the first row
    (and to the ``own_dense`` row), the whole model's latency, its ratio to the first row's and the backbone's share
    (when the rows have whole-model runs), then the task's accuracy columns (:data:`TASK_METRICS`)."""
    ref = rows[0]['latency_ms']
    own = next((r['latency_ms'] for r in rows if r['name'] == own_dense), None)
    first = 'vs ' + (rows[0]['name'] if own is not None else 'dense')
    head = ['model', 'config', 'sparsity configuration (genes per stage)', 'resolution',
            'backbone latency (ms)' if rows[0]['whole'] else 'latency (ms)', first]
    head += [f'vs {own_dense}'] if own is not None else []
    whole_ref = rows[0]['whole']
    if whole_ref is not None:
        scope = whole_ref['scope']
        head += [f'{scope} latency (ms)', f'{scope} vs {rows[0]["name"]}', 'backbone share']
    columns = TASK_METRICS[rows_task(rows)]
    head += [label for _, label in columns]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        cells = [r['name'], r['config'], r['sparsity'], size_label(r['img_size']), f"{r['latency_ms']:.2f}",
                 f"{r['latency_ms'] / ref:.3f}"]
        cells += [f"{r['latency_ms'] / own:.3f}"] if own is not None else []
        if whole_ref is not None:
            w = r['whole']
            cells += ([f"{w['latency_ms']:.2f}", f"{w['latency_ms'] / whole_ref['latency_ms']:.3f}",
                       f"{100 * w['backbone_share']:.1f} %"] if w is not None else ['-', '-', '-'])
        cells += [f'{r[key]:.3f}' for key, _ in columns]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def latency_note(rows: List[dict]) -> str:
    """What the latency columns are: the protocol of the first row's runs."""
    first = rows[0]
    text = (f"Latency: backbone only, batch {first['batch_size']}, random input, trimmed mean (25 % dropped each "
            f"side), device {first['device']}, median of {len(first['latency_runs_ms'])} interleaved "
            f"measurement(s).")
    whole = first['whole']
    if whole is not None:
        text += (f" The {whole['scope']}: its whole test forward on random {size_label(whole['img_size'])} input, "
                 f"batch {whole['batch_size']}, median of {len(whole['latency_runs_ms'])} measurement(s) "
                 "interleaved with the backbone's; backbone share: the backbone's time inside those runs.")
    return text


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
    task = rows_task(rows)
    precision = precision_rows(rows, bf16, precision_check) if bf16 else None
    results = checks(rows, precision, data_style)
    text = [table(rows, own_dense), '', f'{latency_note(rows)} {ACCURACY_NOTE[task]}']
    if wall_time is not None:
        text.append(f'Pipeline wall time: {wall_time / 60:.1f} min.')
    if precision is not None:
        text += ['', precision_text(precision)]
    mark = {True: '[x]', False: '[ ]', None: '(no target)'}
    if results:
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
        write_json(json_path, dict(task=task, rows=rows, own_dense=own_dense, precision=precision, checks=results,
                                   kept_windows=kept, wall_time_s=wall_time))
    return report
