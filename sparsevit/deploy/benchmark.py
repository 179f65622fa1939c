"""The backbone benchmark of ``tools/benchmark_backbone.py``: ours vs mmdet's dense Swin-T in one interleaved run,
over precisions and runtimes.

Rows (:func:`rows`): mmdet 2.28.2's dense ``SwinTransformer`` (the baseline) and ``SparseSwinTransformer`` with the
same weights, dense (all ratios 0), the original README's three searched configurations (their ``pruning_ratios``
read from ``configs/sparsevit/sparsevit_cfg*.py``) and uniform 0.6. Columns (:data:`COLUMNS`): eager PyTorch in
fp32 / bf16 / fp16 (autocast; fp16 on CUDA only), ``torch.compile(fullgraph=True)`` in the same precisions, and
onnxruntime fp32 (the backbone exported by :mod:`sparsevit.deploy.onnx`, run by an onnxruntime CPU session with
torch's thread count). Every runnable (row, column) cell runs one forward per round, all cells in every round (the
start rotates each round: :func:`sparsevit.utils.latency.interleave`), so machine noise hits all alike; each cell
reports the median (or the trimmed mean, the original's statistic) of its timed rounds and its ratio to mmdet's
dense eager fp32. A cell that cannot run (a torch.compile graph break, no onnxruntime, an export limit) is
:class:`Unavailable`, shown as n/a with its reason.

:func:`goals` evaluates the issue-9 goals on the table: bf16 cfg3 <= 0.60x our fp32 cfg3; compiled never slower
than eager (same row and precision); onnxruntime's sparse/dense ratio within 0.05 of eager PyTorch's.
"""
import dataclasses
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
from typing import Callable, Dict, List

import torch

from ..utils.config import read_pruning_ratios
from ..utils.latency import (CompileError, compile_module, device_name, first_line, interleave, random_images,
                             time_forwards, trimmed_mean)
from ..utils.precision import DTYPES, autocast_context

BASELINE = 'mmdet dense'
#: The original README's searched configurations, by row name: their finetune configs (relative to the checkout).
SEARCHED_CONFIGS = {'cfg1': 'configs/sparsevit/sparsevit_cfg1_42ms.py',
                    'cfg2': 'configs/sparsevit/sparsevit_cfg2_35ms.py',
                    'cfg3': 'configs/sparsevit/sparsevit_cfg3_33ms.py'}
COLUMNS = ('eager-fp32', 'eager-bf16', 'eager-fp16', 'compiled-fp32', 'compiled-bf16', 'compiled-fp16',
           'onnxruntime-fp32')
DEFAULT_COLUMNS = dict(cpu='eager-fp32,eager-bf16,compiled-fp32,compiled-bf16,onnxruntime-fp32',
                       cuda='eager-fp32,eager-fp16')
# The original SparseViT code on 2 CPU cores, eager fp32 (shared/BENCHMARKS.md), and the paper's RTX A6000 figures.
REFERENCE_CPU = {'dense': 0.940, 'uniform 0.6': 0.415, 'cfg1': 0.777, 'cfg2': 0.612, 'cfg3': 0.601}
REFERENCE_A6000 = {'cfg1': 0.864, 'cfg2': 0.716, 'cfg3': 0.688}
BF16_GOAL, ORT_GOAL = 0.60, 0.05


def rows(root: str) -> Dict[str, object]:
    """The sparse rows' ``pruning_ratios`` by name, the searched ones read from :data:`SEARCHED_CONFIGS` under
    ``root`` (the checkout)."""
    searched = {name: read_pruning_ratios(osp.join(root, path)) for name, path in SEARCHED_CONFIGS.items()}
    return {'dense': 0.0, **searched, 'uniform 0.6': 0.6}


@dataclasses.dataclass
class Benchmark:
    """What to measure: the input, the device, the cells (``rows``: name -> ``pruning_ratios``, the baseline's
    first with None; ``columns``: the baseline's ``eager-fp32`` first), the rounds and the statistic
    (``'median'`` or ``'trimmed-mean'``), the width of Swin-T (``embed_dims``, 32-dim heads) and the attention path
    of ours (``explicit_attn``: the explicit softmax instead of the fused one)."""
    img_size: int
    batch_size: int
    device: torch.device
    columns: List[str]
    rows: Dict[str, object]
    num_warmup: int
    num_repeats: int
    stat: str = 'median'
    embed_dims: int = 96
    explicit_attn: bool = False


def num_heads(embed_dims: int) -> tuple:
    """Heads per stage for 32-dim heads (Swin-T: 3, 6, 12, 24), at least one."""
    return tuple(max(1, embed_dims * 2 ** i // 32) for i in range(4))


def build_models(b: Benchmark) -> Dict[str, torch.nn.Module]:
    """mmdet's dense Swin-T (seeded init) and ours with its weights, one per sparse row, in eval mode."""
    from mmdet.models.backbones import SwinTransformer
    from ..models.backbones import SparseSwinTransformer
    kw = dict(embed_dims=b.embed_dims, depths=(2, 2, 6, 2), num_heads=num_heads(b.embed_dims), window_size=7,
              drop_path_rate=0.0)
    torch.manual_seed(0)
    dense = SwinTransformer(**kw)
    dense.init_weights()
    models = {BASELINE: dense}
    for name in list(b.rows)[1:]:
        model = SparseSwinTransformer(pruning_ratios=b.rows[name], fused_attn=not b.explicit_attn, **kw)
        model.load_state_dict(dense.state_dict())
        models[name] = model
    for m in models.values():
        m.to(b.device).eval()  # mmdet's SwinTransformer.train() returns None: no chaining
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


def onnx_cell(model: torch.nn.Module, x: torch.Tensor, b: Benchmark, workdir: str, name: str,
              checks: Dict[str, dict]) -> Callable[[], object]:
    """Export ``model`` with :mod:`sparsevit.deploy.onnx`, check it, and return one onnxruntime run on ``x``."""
    if x.device.type != 'cpu':
        raise Unavailable('the onnxruntime column runs on CPU only (onnxruntime-gpu is not part of the deploy extra)')
    try:
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise Unavailable(f'onnxruntime is not installed ({err}); install the deploy extra: '
                          f'pip install -e .[deploy]') from err
    try:
        from . import onnx as deploy
    except ImportError as err:
        raise Unavailable(f'sparsevit.deploy.onnx is not available: {err}') from err
    path = os.path.join(workdir, f'{name.replace(" ", "_")}.onnx')
    try:
        deploy.export_backbone(model, path, img_size=b.img_size, batch_size=b.batch_size, opset=17)
        checks[name] = deploy.check_onnx(model, path, x)
    except Exception as err:  # an export limit or a failed check: report it in the cell, keep benchmarking
        raise Unavailable(f'export failed: {type(err).__name__}: {first_line(err)}') from err
    session = deploy.ort_session(path, threads=torch.get_num_threads())  # the same cores as the PyTorch columns
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)


def build_cells(b: Benchmark, models, x, workdir: str, checks: Dict[str, dict]) -> Dict[tuple, object]:
    """``{(row, column): callable | Unavailable}``; compiling and exporting happen here, before any timing."""
    cells = {}
    for column in b.columns:
        for row, model in models.items():
            print(f'preparing {row} / {column}', file=sys.stderr, flush=True)
            try:
                if column.startswith('onnxruntime'):
                    cells[row, column] = onnx_cell(model, x, b, workdir, row, checks)
                else:
                    cells[row, column] = torch_cell(model, x, column)
            except Unavailable as err:
                cells[row, column] = err
    if isinstance(cells[BASELINE, 'eager-fp32'], Unavailable):
        raise SystemExit(f'benchmark_backbone.py: error: the baseline failed: {cells[BASELINE, "eager-fp32"]}')
    return cells


def time_cells(b: Benchmark, cells: Dict[tuple, object]) -> Dict[tuple, List[float]]:
    """Interleaved rounds: every runnable cell once per round (rotating start); returns each cell's times (ms)."""
    runnable = [k for k, fn in cells.items() if not isinstance(fn, Unavailable)]
    total = b.num_warmup + b.num_repeats
    every = max(1, total // 20)  # at most ~20 progress lines

    def progress(r: int) -> None:
        if (r + 1) % every == 0 or r + 1 == total:
            kind = 'warm-up' if r < b.num_warmup else 'timed'
            print(f'round {r + 1}/{total} ({kind}) done', file=sys.stderr, flush=True)

    return interleave(runnable, b.num_repeats, lambda key: time_forwards(cells[key], 1, b.device)[0],
                      warmup=b.num_warmup, order='rotate', on_round=progress)


# ------------------------------------------------------------------------------------------------ report
def summarise(b: Benchmark, cells, times) -> dict:
    """Per cell: ``ms`` and ``ratio`` (to mmdet dense eager fp32) or ``error``."""
    stat = statistics.median if b.stat == 'median' else trimmed_mean
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


def format_report(b: Benchmark, table: dict, goal_rows: List[dict], checks: Dict[str, dict], name: str) -> str:
    cols = b.columns
    lines = [f'backbone Swin-T (embed {b.embed_dims}), {b.img_size}x{b.img_size}, batch {b.batch_size}, '
             f'{name}, torch {torch.__version__}, {b.stat} of {b.num_repeats} interleaved rounds '
             f'(+{b.num_warmup} warm-up); ratio to {BASELINE} eager-fp32 '
             f'({table[BASELINE]["eager-fp32"]["ms"]:.1f} ms)']
    head = f"{'row':13s}" + ''.join(f'{c:>17s}' for c in cols) + f"{'orig. code CPU':>16s}{'paper A6000':>13s}"
    lines += ['', head]
    errors: Dict[tuple, List[str]] = {}  # (column, reason) -> rows
    for row in b.rows:
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
        lines += [f'  {c} ({", ".join(rows) if len(rows) < len(b.rows) else "all rows"}): {reason}'
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


def run_benchmark(b: Benchmark) -> dict:
    """Build, prepare and time every cell, print the report; the result (the table, the goals, every cell's
    times) as the tool's ``--json`` holds it."""
    models = build_models(b)
    x = random_images(b.batch_size, b.img_size, b.device)
    checks: Dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix='sparsevit_onnx_') as workdir:
        cells = build_cells(b, models, x, workdir, checks)  # compiles (in inference mode) and exports
        with torch.inference_mode():
            times = time_cells(b, cells)
    table = summarise(b, cells, times)
    goal_rows = goals(table)
    name = device_name(b.device, cpu='CPU x{threads} threads')
    print('\n' + format_report(b, table, goal_rows, checks, name))
    return dict(device=name, torch=torch.__version__, img_size=b.img_size, batch_size=b.batch_size,
                embed_dims=b.embed_dims, stat=b.stat, num_warmup=b.num_warmup, num_repeats=b.num_repeats,
                columns=b.columns, rows=list(b.rows), table=table, goals=goal_rows, onnx_checks=checks,
                times_ms={f'{r} / {c}': t for (r, c), t in times.items()})
