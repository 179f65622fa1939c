"""Backbone speed benchmark: ours vs mmdet's dense Swin-T in one interleaved run, over precisions and runtimes.

    python tools/benchmark_backbone.py --img_size 672 --batch-size 4 --device cpu
    python tools/benchmark_backbone.py --columns eager-fp32,eager-bf16 --rows dense,cfg3   # a cheaper run

Rows: mmdet 2.28.2's dense ``SwinTransformer`` (the baseline) and ``SparseSwinTransformer`` with the same weights,
dense (all ratios 0), the original README's three searched configurations and uniform 0.6. Columns: eager PyTorch
in fp32 / bf16 / fp16 (autocast; fp16 on CUDA only), ``torch.compile(fullgraph=True)`` in the same precisions, and
onnxruntime fp32 (the backbone exported by :mod:`sparsevit.deploy.onnx`, run by an onnxruntime CPU session with
torch's thread count). Every (row, column) cell runs one forward per round, all cells in every round (the start
rotates each round), so machine noise hits all alike; each cell reports the median (or ``--stat trimmed-mean``,
the original's statistic) of its timed rounds and its ratio to mmdet's dense eager fp32.

The issue-9 goals are printed as met / not met / not measured: bf16 cfg3 <= 0.60x our fp32 cfg3; compiled never
slower than eager (same row and precision); onnxruntime's sparse/dense ratio within 0.05 of eager PyTorch's. A cell
that cannot run (a torch.compile graph break, no onnxruntime, an export limit) is shown as n/a with its reason.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
from typing import Callable, Dict, List

import torch
from mmdet.models.backbones import SwinTransformer

from sparsevit.models.backbones import SparseSwinTransformer
from sparsevit.utils.latency import (CompileError, compile_module, first_line, random_images, resolve_device,
                                     time_forwards, trimmed_mean)
from sparsevit.utils.precision import DTYPES, autocast_context, resolve_dtype

BASELINE = 'mmdet dense'
ROWS = {
    'dense': 0.0,
    'cfg1': [[.3, .3], [0, 0], [.1, .1, .2, .2, .2, .2], [0, 0]],
    'cfg2': [[.6, .6], [0, 0], [.2, .2, .4, .4, .5, .5], [0, 0]],
    'cfg3': [[.7, .7], [0, 0], [.2, .2, .4, .4, .5, .5], [0, 0]],
    'uniform 0.6': 0.6,
}
COLUMNS = ('eager-fp32', 'eager-bf16', 'eager-fp16', 'compiled-fp32', 'compiled-bf16', 'compiled-fp16',
           'onnxruntime-fp32')
DEFAULT_COLUMNS = dict(cpu='eager-fp32,eager-bf16,compiled-fp32,compiled-bf16,onnxruntime-fp32',
                       cuda='eager-fp32,eager-fp16')
# The original SparseViT code on 2 CPU cores, eager fp32 (shared/BENCHMARKS.md), and the paper's RTX A6000 figures.
REFERENCE_CPU = {'dense': 0.940, 'uniform 0.6': 0.415, 'cfg1': 0.777, 'cfg2': 0.612, 'cfg3': 0.601}
REFERENCE_A6000 = {'cfg1': 0.864, 'cfg2': 0.716, 'cfg3': 0.688}
BF16_GOAL, ORT_GOAL = 0.60, 0.05


def csv_choice(allowed, what: str) -> Callable[[str], List[str]]:
    def parse(text: str) -> List[str]:
        items = [t.strip() for t in text.split(',') if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f'unknown {what} {bad or text!r}; choose from {", ".join(allowed)}')
        return list(dict.fromkeys(items))
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--img_size', '--img-size', type=int, default=672)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--device', default='auto', help='cpu, cuda or auto (default)')
    parser.add_argument('--columns', type=csv_choice(COLUMNS, 'column'), default=None,
                        help=f'comma-separated, from {", ".join(COLUMNS)} (default on CPU: {DEFAULT_COLUMNS["cpu"]}; '
                        f'on CUDA: {DEFAULT_COLUMNS["cuda"]}); eager-fp32, the baseline\'s, is always measured')
    parser.add_argument('--rows', type=csv_choice((BASELINE, ) + tuple(ROWS), 'row'), default=None,
                        help=f'comma-separated, from {", ".join(ROWS)} (default: all; "{BASELINE}", the baseline, '
                        f'is always measured)')
    parser.add_argument('--num-warmup', type=int, default=2, help='untimed rounds (default: 2)')
    parser.add_argument('--num-repeats', type=int, default=7, help='timed rounds (default: 7)')
    parser.add_argument('--stat', choices=('median', 'trimmed-mean'), default='median',
                        help='per-cell statistic of the timed rounds: median (default) or the original\'s mean of '
                        'the middle 50 %%')
    parser.add_argument('--embed-dims', type=int, default=96, help='Swin-T: 96 (heads: embed_dims / 32 per stage)')
    parser.add_argument('--explicit-attn', action='store_true', help='time the explicit softmax path of ours')
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    if min(args.img_size, args.batch_size, args.num_repeats, args.embed_dims) <= 0 or args.num_warmup < 0:
        parser.error('--img_size, --batch-size, --num-repeats and --embed-dims must be positive, --num-warmup >= 0')
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
    return args


def num_heads(embed_dims: int) -> tuple:
    """Heads per stage for 32-dim heads (Swin-T: 3, 6, 12, 24), at least one."""
    return tuple(max(1, embed_dims * 2 ** i // 32) for i in range(4))


def build_models(args) -> Dict[str, torch.nn.Module]:
    kw = dict(embed_dims=args.embed_dims, depths=(2, 2, 6, 2), num_heads=num_heads(args.embed_dims), window_size=7,
              drop_path_rate=0.0)
    torch.manual_seed(0)
    dense = SwinTransformer(**kw)
    dense.init_weights()
    models = {BASELINE: dense}
    for name in args.rows[1:]:
        model = SparseSwinTransformer(pruning_ratios=ROWS[name], fused_attn=not args.explicit_attn, **kw)
        model.load_state_dict(dense.state_dict())
        models[name] = model
    for m in models.values():
        m.to(args.device).eval()  # mmdet's SwinTransformer.train() returns None: no chaining
    return models


# ------------------------------------------------------------------------------------------------ cells
class Unavailable(Exception):
    """A cell that cannot be measured; the message (one line) is shown instead of its time."""


def torch_cell(model: torch.nn.Module, x: torch.Tensor, column: str) -> Callable[[], object]:
    """One forward of ``model`` (eager or compiled) under the column's autocast."""
    mode, dtype = column.split('-')
    if mode == 'compiled':
        try:
            model = compile_module(model, x, dtype)
        except CompileError as err:
            raise Unavailable(str(err)) from err

    def forward():
        with autocast_context(dtype, x.device):
            return model(x)
    return forward


def onnx_cell(model: torch.nn.Module, x: torch.Tensor, args, workdir: str, name: str,
              checks: Dict[str, dict]) -> Callable[[], object]:
    """Export ``model`` with :mod:`sparsevit.deploy.onnx`, check it, and return one onnxruntime run on ``x``."""
    if x.device.type != 'cpu':
        raise Unavailable('the onnxruntime column runs on CPU only (onnxruntime-gpu is not part of the deploy extra)')
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise Unavailable(f'onnxruntime is not installed ({err}); install the deploy extra: '
                          f'pip install -e .[deploy]') from err
    try:
        from sparsevit.deploy import onnx as deploy
    except ImportError as err:
        raise Unavailable(f'sparsevit.deploy.onnx is not available: {err}') from err
    path = os.path.join(workdir, f'{name.replace(" ", "_")}.onnx')
    try:
        deploy.export_backbone(model, path, img_size=args.img_size, batch_size=args.batch_size, opset=17)
        checks[name] = deploy.check_onnx(model, path, x)
    except Exception as err:  # an export limit or a failed check: report it in the cell, keep benchmarking
        raise Unavailable(f'export failed: {type(err).__name__}: {first_line(err)}') from err
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same cores as the PyTorch columns
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)


def build_cells(args, models, x, workdir: str, checks: Dict[str, dict]) -> Dict[tuple, object]:
    """``{(row, column): callable | Unavailable}``; compiling and exporting happen here, before any timing."""
    cells = {}
    for column in args.columns:
        for row, model in models.items():
            print(f'preparing {row} / {column}', file=sys.stderr, flush=True)
            try:
                if column.startswith('onnxruntime'):
                    cells[row, column] = onnx_cell(model, x, args, workdir, row, checks)
                else:
                    cells[row, column] = torch_cell(model, x, column)
            except Unavailable as err:
                cells[row, column] = err
    if isinstance(cells[BASELINE, 'eager-fp32'], Unavailable):
        raise SystemExit(f'benchmark_backbone.py: error: the baseline failed: {cells[BASELINE, "eager-fp32"]}')
    return cells


def time_cells(args, cells: Dict[tuple, object]) -> Dict[tuple, List[float]]:
    """Interleaved rounds: every runnable cell once per round (rotating start); returns each cell's times (ms)."""
    runnable = [k for k, fn in cells.items() if not isinstance(fn, Unavailable)]
    times = {k: [] for k in runnable}
    total = args.num_warmup + args.num_repeats
    every = max(1, total // 20)  # at most ~20 progress lines
    for r in range(total):
        shift = r % len(runnable)
        for key in runnable[shift:] + runnable[:shift]:
            t = time_forwards(cells[key], 1, args.device)
            if r >= args.num_warmup:
                times[key] += t
        if (r + 1) % every == 0 or r + 1 == total:
            kind = 'warm-up' if r < args.num_warmup else 'timed'
            print(f'round {r + 1}/{total} ({kind}) done', file=sys.stderr, flush=True)
    return times


# ------------------------------------------------------------------------------------------------ report
def summarise(args, cells, times) -> dict:
    """Per cell: ``ms`` and ``ratio`` (to mmdet dense eager fp32) or ``error``."""
    stat = statistics.median if args.stat == 'median' else trimmed_mean
    base = stat(times[BASELINE, 'eager-fp32'])
    table = {}
    for (row, column), fn in cells.items():
        if isinstance(fn, Unavailable):
            table.setdefault(row, {})[column] = dict(error=str(fn))
        else:
            ms = stat(times[row, column])
            table.setdefault(row, {})[column] = dict(ms=ms, ratio=ms / base)
    return table


def goals(table: dict) -> List[dict]:
    """The issue-9 goals evaluated on the table: name, value, met (True/False/None = not measured), detail."""
    def ms(row, column):
        return table.get(row, {}).get(column, {}).get('ms')

    out = []
    fp32, bf16 = ms('cfg3', 'eager-fp32'), ms('cfg3', 'eager-bf16')
    out.append(dict(goal=f'eager bf16 cfg3 <= {BF16_GOAL:.2f}x our eager fp32 cfg3',
                    value=None if None in (fp32, bf16) else bf16 / fp32, limit=BF16_GOAL, detail='bf16/fp32'))
    worst = None
    for row in table:
        for dtype in DTYPES:
            eager, compiled = ms(row, f'eager-{dtype}'), ms(row, f'compiled-{dtype}')
            if None not in (eager, compiled) and (worst is None or compiled / eager > worst[0]):
                worst = (compiled / eager, f'{row}, {dtype}')
    out.append(dict(goal='compiled never slower than eager (same row and precision)',
                    value=None if worst is None else worst[0], limit=1.0,
                    detail=None if worst is None else f'worst compiled/eager at {worst[1]}'))
    worst = None
    ort_dense, eager_dense = ms('dense', 'onnxruntime-fp32'), ms('dense', 'eager-fp32')
    for row in table:
        ort, eager = ms(row, 'onnxruntime-fp32'), ms(row, 'eager-fp32')
        if row in (BASELINE, 'dense') or None in (ort, eager, ort_dense, eager_dense):
            continue
        gap = abs(ort / ort_dense - eager / eager_dense)
        if worst is None or gap > worst[0]:
            worst = (gap, f'{row}: onnxruntime {ort / ort_dense:.3f} vs eager {eager / eager_dense:.3f}')
    out.append(dict(goal=f'onnxruntime sparse/dense ratio within {ORT_GOAL:.2f} of eager PyTorch fp32',
                    value=None if worst is None else worst[0], limit=ORT_GOAL,
                    detail=None if worst is None else f'worst gap at {worst[1]}'))
    for g in out:
        g['met'] = None if g['value'] is None else g['value'] <= g['limit']
    return out


def format_report(args, table: dict, goal_rows: List[dict], checks: Dict[str, dict], name: str) -> str:
    cols = args.columns
    lines = [f'backbone Swin-T (embed {args.embed_dims}), {args.img_size}x{args.img_size}, batch {args.batch_size}, '
             f'{name}, torch {torch.__version__}, {args.stat} of {args.num_repeats} interleaved rounds '
             f'(+{args.num_warmup} warm-up); ratio to {BASELINE} eager-fp32 '
             f'({table[BASELINE]["eager-fp32"]["ms"]:.1f} ms)']
    head = f"{'row':13s}" + ''.join(f'{c:>17s}' for c in cols) + f"{'orig. code CPU':>16s}{'paper A6000':>13s}"
    lines += ['', head]
    errors: Dict[tuple, List[str]] = {}  # (column, reason) -> rows
    for row in args.rows:
        cells = ''
        for c in cols:
            cell = table[row][c]
            if 'error' in cell:
                errors.setdefault((c, cell['error']), []).append(row)
                cells += f'{"n/a":>17s}'
            else:
                cells += f'{cell["ratio"]:>8.3f} ({cell["ms"]:>6.{0 if cell["ms"] >= 100 else 1}f})'
        ref_cpu = f'{REFERENCE_CPU[row]:.3f}' if row in REFERENCE_CPU else ''
        ref_gpu = f'{REFERENCE_A6000[row]:.3f}' if row in REFERENCE_A6000 else ''
        lines.append(f'{row:13s}{cells}{ref_cpu:>16s}{ref_gpu:>13s}')
    lines.append('(cells: ratio (ms); reference columns: eager fp32 ratios of the original code on 2 CPU cores and '
                 'of the paper)')
    if errors:
        lines += ['', 'n/a cells:']
        lines += [f'  {c} ({", ".join(rows) if len(rows) < len(args.rows) else "all rows"}): {reason}'
                  for (c, reason), rows in errors.items()]
    if checks:
        lines += ['', 'onnx checks (sparsevit.deploy.onnx.check_onnx):']
        lines += [f'  {row}: {check_text(c)}' for row, c in checks.items()]
    lines += ['', 'goals:']
    for g in goal_rows:
        state = 'not measured' if g['met'] is None else ('met' if g['met'] else 'NOT met')
        value = '' if g['value'] is None else f': {g["value"]:.3f} (limit {g["limit"]:.2f}; {g["detail"]})'
        lines.append(f'  {g["goal"]}{value} -> {state}')
    return '\n'.join(lines)


def check_text(check: dict) -> str:
    """One line of a ``check_onnx`` result: the worst relative difference against PyTorch and the verdict."""
    if 'max_rel_diff' not in check:
        return json.dumps(check, default=str)
    verdict = 'ok' if check.get('ok') else 'NOT ok'
    return f"max relative difference {check['max_rel_diff']:.1e} (tolerance {check.get('tolerance', '?')}): {verdict}"


def device_label(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'CPU x{torch.get_num_threads()} threads'


def run(args) -> dict:
    models = build_models(args)
    x = random_images(args.batch_size, args.img_size, args.device)
    checks: Dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix='sparsevit_onnx_') as workdir:
        cells = build_cells(args, models, x, workdir, checks)  # compiles (in inference mode) and exports
        with torch.inference_mode():
            times = time_cells(args, cells)
    table = summarise(args, cells, times)
    goal_rows = goals(table)
    name = device_label(args.device)
    print('\n' + format_report(args, table, goal_rows, checks, name))
    result = dict(device=name, torch=torch.__version__, img_size=args.img_size, batch_size=args.batch_size,
                  embed_dims=args.embed_dims, stat=args.stat, num_warmup=args.num_warmup,
                  num_repeats=args.num_repeats, columns=args.columns, rows=args.rows, table=table, goals=goal_rows,
                  onnx_checks=checks, times_ms={f'{r} / {c}': t for (r, c), t in times.items()})
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2, default=str)
    return result


if __name__ == '__main__':
    run(parse_args())
