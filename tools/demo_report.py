"""Build the demo's results table (like the SparseViT README's) from the tools' JSON outputs.

    python tools/demo_report.py \
        --row dense CONFIG EVAL LATENCY_JSON[,LATENCY_JSON...] --row sparse CONFIG EVAL LATENCY_JSON[,...] \
        [--own-dense NAME] [--bf16 NAME EVAL [--precision-check JSON]] [--kept-windows LABEL JSON ...] \
        [--markdown results.md] [--json results.json] [--wall-time SECONDS] [--data-style flat|scene]

``EVAL`` is the ``eval_*.json`` written by ``tools/test.py --work-dir DIR --eval bbox segm`` or that directory
(its newest ``eval_*.json`` is used); ``LATENCY_JSON`` is the ``--json`` output of ``tools/measure_latency.py``;
with several (repeated measurements on a shared machine) their median latency is used. The first row is the
reference of the latency ratios and of the accuracy checks (the first row should be dense: mmdet's Swin).
``--own-dense NAME`` names the row of our backbone at zero sparsity: a second ratio column divides by it, giving
the pruning's own gain (the paper's claim) apart from the implementation's (our dense backbone vs mmdet's).

``--bf16 NAME EVAL`` adds the bbox/mask mAP of row NAME's model evaluated with ``tools/test.py --dtype bf16`` next
to its fp32 mAP; ``--precision-check`` adds the fraction of kept windows that agree between fp32 and bf16
(the ``--json`` of ``tools/check_precision.py``). ``--kept-windows LABEL JSON`` adds the kept-window analysis of
``tools/analyze_windows.py`` (its ``--json``) under the title LABEL; repeatable. ``--data-style`` names the
data's style: the dense mAP target (0.5) is that of the ``flat`` data it was set on; another style's dense mAP is
reported without one.
"""
import argparse
import glob
import json
import logging
import os
import os.path as osp
import statistics
import sys
import warnings
from typing import List, Optional, Sequence, Tuple

# Quiet imports: keep stderr to the progress bar and, on bad input, one error line.
warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)

from sparsevit.schedule import format_genes, ratios_to_genes  # noqa: E402
from sparsevit.utils.cli import OneLineParser, write_json  # noqa: E402

#: The demo's targets (issue 3): dense bbox mAP >= 0.5, sparse within 0.05 of it, at a lower latency. The dense
#: target was set on the `flat` data of that issue; none was fixed in advance for another data style, so there the
#: dense mAP is reported without a target (choosing one after seeing the result would make the check meaningless).
DENSE_BBOX_TARGETS = dict(flat=0.5)
DENSE_BBOX_TARGET = DENSE_BBOX_TARGETS['flat']
MAX_BBOX_DROP = 0.05
#: bf16 autocast inference: bbox mAP within 0.02 of fp32 (issue 9).
MAX_BF16_BBOX_CHANGE = 0.02


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(description='Print the demo table (config, latency, bbox mAP, mask mAP).')
    parser.add_argument('--row', nargs=4, action='append', metavar=('NAME', 'CONFIG', 'EVAL', 'LATENCY_JSON'),
                        help='one table row; the first is the reference (dense); LATENCY_JSON may be a '
                        'comma-separated list (median used)')
    parser.add_argument('--own-dense', default=None, metavar='NAME',
                        help='the row of our backbone at zero sparsity: adds the ratio to it (the pruning\'s gain)')
    parser.add_argument('--kept-windows', nargs=2, action='append', default=[], metavar=('LABEL', 'JSON'),
                        help='a kept-window analysis (tools/analyze_windows.py --json) to include, titled LABEL')
    parser.add_argument('--bf16', nargs=2, metavar=('NAME', 'EVAL'), default=None,
                        help="row NAME's model evaluated in bf16 (tools/test.py --dtype bf16): its eval json or dir")
    parser.add_argument('--precision-check', default=None, metavar='JSON',
                        help='the --json of tools/check_precision.py for the --bf16 model')
    parser.add_argument('--markdown', default=None, help='also write the table to this Markdown file')
    parser.add_argument('--json', default=None, help='also write the rows and checks to this JSON file')
    parser.add_argument('--wall-time', type=float, default=None, help='the pipeline wall time in seconds')
    parser.add_argument('--data-style', default='flat', metavar='STYLE',
                        help="the data's style (tools/make_synthetic_data.py --style): the dense mAP target is "
                        f"that of this style ({', '.join(f'{k}: {v:g}' for k, v in DENSE_BBOX_TARGETS.items())}; "
                        'none for another)')
    args = parser.parse_args(argv)
    if not args.row:
        parser.error('give at least one --row (the first is the dense reference)')
    if args.precision_check is not None and args.bf16 is None:
        parser.error('--precision-check needs --bf16 NAME EVAL')
    for flag, name in (('--bf16', args.bf16[0] if args.bf16 else None), ('--own-dense', args.own_dense)):
        if name is not None and name not in [r[0] for r in args.row]:
            parser.error(f"{flag} {name!r} names no --row (rows: {', '.join(r[0] for r in args.row)})")
    return args


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
    from sparsevit.analysis.kept_windows import format_markdown
    return (f"### {label}\n\n{analysis['num_images']} {analysis['split']} images, {analysis['num_objects']} objects; "
            f"recall: object pixels in kept windows / object pixels; precision: kept windows holding an object / "
            f"kept windows; random: mean (± std) over {len(analysis['random_seeds'])} selection seeds.\n\n"
            + format_markdown(analysis))


def report(args: argparse.Namespace) -> str:
    rows = [build_row(*row) for row in args.row]
    precision = precision_rows(rows, args.bf16, args.precision_check) if args.bf16 else None
    results = checks(rows, precision, args.data_style)
    first = rows[0]
    text = [table(rows, args.own_dense), '',
            f"Latency: backbone only, batch {first['batch_size']}, random input, trimmed mean (25 % dropped each "
            f"side), device {first['device']}, median of {len(first['latency_runs_ms'])} interleaved "
            f"measurement(s). mAP: COCO mAP@[.5:.95] on the synthetic val split."]
    if args.wall_time is not None:
        text.append(f'Pipeline wall time: {args.wall_time / 60:.1f} min.')
    if precision is not None:
        text += ['', precision_text(precision)]
    mark = {True: '[x]', False: '[ ]', None: '(no target)'}
    text += [''] + [f"- {mark[c['ok']]} {c['check']} ({c['value']:g})" for c in results]
    kept = {label: load_json(path) for label, path in args.kept_windows}
    if kept:
        text += ['', '## Kept windows'] + [part for label, a in kept.items() for part in ('', kept_windows_text(label,
                                                                                                            a))]
    markdown = '\n'.join(text)
    if args.markdown:
        os.makedirs(osp.dirname(osp.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, 'w') as f:
            f.write(markdown + '\n')
    if args.json:
        write_json(args.json, dict(rows=rows, own_dense=args.own_dense, precision=precision, checks=results,
                                   kept_windows=kept, wall_time_s=args.wall_time))
    return markdown


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        print(report(args))
    except (ValueError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f'demo_report.py: error: {message}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
