"""Build the demo's results table (like the SparseViT README's) from the tools' JSON outputs.

    python tools/demo_report.py \
        --row dense CONFIG EVAL LATENCY_JSON[,LATENCY_JSON...] --row sparse CONFIG EVAL LATENCY_JSON[,...] \
        [--own-dense NAME] [--bf16 NAME EVAL [--precision-check JSON]] [--kept-windows LABEL JSON ...] \
        [--markdown results.md] [--json results.json] [--wall-time SECONDS] [--data-style flat|scene]

``EVAL`` is the ``eval_*.json`` written by ``tools/test.py --work-dir DIR --eval bbox segm`` (a detector: the
columns bbox mAP and mask mAP) or ``--eval mIoU`` (a segmentor: mIoU and mAcc, no targets) or that directory (its
newest ``eval_*.json`` is used); ``LATENCY_JSON`` is the ``--json`` output of ``tools/measure_latency.py``; with
several (repeated measurements on a shared machine) their median latency is used. Files of ``--scope segmentor``
(or ``detector``) in the same list add the whole model's latency, its ratio to the first row's and the backbone's
share of it. The first row is the reference of the latency ratios and of the accuracy checks (the first row should
be dense: mmdet's or mmseg's Swin).
``--own-dense NAME`` names the row of our backbone at zero sparsity: a second ratio column divides by it, giving
the pruning's own gain (the paper's claim) apart from the implementation's (our dense backbone vs mmdet's).

``--bf16 NAME EVAL`` adds the bbox/mask mAP of row NAME's model evaluated with ``tools/test.py --dtype bf16`` next
to its fp32 mAP; ``--precision-check`` adds the fraction of kept windows that agree between fp32 and bf16
(the ``--json`` of ``tools/check_precision.py``). ``--kept-windows LABEL JSON`` adds the kept-window analysis of
``tools/analyze_windows.py`` (its ``--json``) under the title LABEL; repeatable. ``--data-style`` names the
data's style: the dense mAP target (0.5) is that of the ``flat`` data it was set on; another style's dense mAP is
reported without one. The report: :mod:`sparsevit.experiments.demo_report`.
"""
import argparse
import logging
import sys
import warnings

# Quiet imports: keep stderr to the progress bar and, on bad input, one error line.
warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)

from sparsevit.experiments.demo_report import DENSE_BBOX_TARGETS, demo_report  # noqa: E402
from sparsevit.utils.cli import OneLineParser  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(description='Print the demo table (config, latency, bbox/mask mAP or mIoU/mAcc).')
    parser.add_argument('--row', nargs=4, action='append', metavar=('NAME', 'CONFIG', 'EVAL', 'LATENCY_JSON'),
                        help='one table row; the first is the reference (dense); LATENCY_JSON may be a '
                        'comma-separated list (median used; files of --scope segmentor/detector add the whole '
                        "model's latency)")
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


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        print(demo_report(args.row, args.own_dense, args.bf16, args.precision_check, args.kept_windows,
                          args.markdown, args.json, args.wall_time, args.data_style))
    except (ValueError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f'demo_report.py: error: {message}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
