"""Backbone speed benchmark: ours vs mmdet's dense Swin-T in one interleaved run, over precisions and runtimes.

    python tools/benchmark_backbone.py --img_size 672 --batch-size 4 --device cpu
    python tools/benchmark_backbone.py --columns eager-fp32,eager-bf16 --rows dense,cfg3   # a cheaper run

Rows: mmdet 2.28.2's dense ``SwinTransformer`` (the baseline) and ``SparseSwinTransformer`` with the same weights,
dense (all ratios 0), the original README's three searched configurations (``configs/sparsevit/sparsevit_cfg*.py``)
and uniform 0.6. Columns: eager PyTorch in fp32 / bf16 / fp16 (autocast; fp16 on CUDA only),
``torch.compile(fullgraph=True)`` in the same precisions, and onnxruntime fp32. Every (row, column) cell runs one
forward per round, all cells in every round (the start rotates each round), so machine noise hits all alike; each
cell reports the median (or ``--stat trimmed-mean``, the original's statistic) of its timed rounds and its ratio to
mmdet's dense eager fp32. The benchmark itself: :mod:`sparsevit.deploy.benchmark`.

The issue-9 goals are printed as met / not met / not measured: bf16 cfg3 <= 0.60x our fp32 cfg3; compiled never
slower than eager (same row and precision); onnxruntime's sparse/dense ratio within 0.05 of eager PyTorch's. A cell
that cannot run (a torch.compile graph break, no onnxruntime, an export limit) is shown as n/a with its reason.
"""
import argparse
import os.path as osp
from typing import Callable, List

from sparsevit.deploy.benchmark import (BASELINE, COLUMNS, DEFAULT_COLUMNS, Benchmark, num_heads, rows,
                                        run_benchmark)
from sparsevit.utils.cli import OneLineParser, check_outputs, int_at_least, write_json
from sparsevit.utils.latency import resolve_device
from sparsevit.utils.precision import resolve_dtype

ROWS = rows(osp.dirname(osp.dirname(osp.abspath(__file__))))


def csv_choice(allowed, what: str) -> Callable[[str], List[str]]:
    def parse(text: str) -> List[str]:
        items = [t.strip() for t in text.split(',') if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f'unknown {what} {bad or text!r}; choose from {", ".join(allowed)}')
        return list(dict.fromkeys(items))
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--img_size', '--img-size', type=int_at_least(1), default=672)
    parser.add_argument('--batch-size', type=int_at_least(1), default=4)
    parser.add_argument('--device', default='auto', help='cpu, cuda or auto (default)')
    parser.add_argument('--columns', type=csv_choice(COLUMNS, 'column'), default=None,
                        help=f'comma-separated, from {", ".join(COLUMNS)} (default on CPU: {DEFAULT_COLUMNS["cpu"]}; '
                        f'on CUDA: {DEFAULT_COLUMNS["cuda"]}); eager-fp32, the baseline\'s, is always measured')
    parser.add_argument('--rows', type=csv_choice((BASELINE, ) + tuple(ROWS), 'row'), default=None,
                        help=f'comma-separated, from {", ".join(ROWS)} (default: all; "{BASELINE}", the baseline, '
                        f'is always measured)')
    parser.add_argument('--num-warmup', type=int_at_least(0), default=2, help='untimed rounds (default: 2)')
    parser.add_argument('--num-repeats', type=int_at_least(1), default=7, help='timed rounds (default: 7)')
    parser.add_argument('--stat', choices=('median', 'trimmed-mean'), default='median',
                        help='per-cell statistic of the timed rounds: median (default) or the original\'s mean of '
                        'the middle 50 %%')
    parser.add_argument('--embed-dims', type=int_at_least(1), default=96, help='Swin-T: 96 (heads: embed_dims / 32 per stage)')
    parser.add_argument('--explicit-attn', action='store_true', help='time the explicit softmax path of ours')
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    if any(args.embed_dims * 2 ** i % h for i, h in enumerate(num_heads(args.embed_dims))):
        parser.error(f'--embed-dims {args.embed_dims} does not split into 32-dim heads; use a multiple of 32 (or 16)')
    try:
        args.device = resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    columns = args.columns or DEFAULT_COLUMNS[args.device.type].split(',')
    args.columns = ['eager-fp32'] + [c for c in columns if c != 'eager-fp32']  # the baseline's column
    for col in args.columns:
        try:
            resolve_dtype(col.split('-')[1], args.device)
        except ValueError as err:
            parser.error(f'--columns {col}: {err}')
    args.rows = [BASELINE] + [r for r in (args.rows or ROWS) if r != BASELINE]
    check_outputs(parser, args, '--json')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    result = run_benchmark(Benchmark(
        img_size=args.img_size, batch_size=args.batch_size, device=args.device, columns=args.columns,
        rows={r: ROWS.get(r) for r in args.rows}, num_warmup=args.num_warmup, num_repeats=args.num_repeats,
        stat=args.stat, embed_dims=args.embed_dims, explicit_attn=args.explicit_attn))
    if args.json:
        write_json(args.json, result, default=str)
    return result


if __name__ == '__main__':
    main()
