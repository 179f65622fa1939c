"""Files of a search run under ``--work-dir`` (written by rank 0).

For ``--max 42 --min 37`` (tag ``max42_min37``; ``--budgets 33 36 39 42`` gives ``budgets33_36_39_42``; limits
relative to the dense latency keep their ``x``: ``--max 0.85x --min 0.6x`` gives ``max0.85x_min0.6x``, so a
fraction is never mistaken for milliseconds):

* ``search_{tag}.txt`` — the original's log: the reference points (dense, uniform 0.5), then every time the best
  changes, the step, metric and latency, then the configuration in ``backbone.stages.0 : 0.3`` lines;
* ``search_{tag}_history.jsonl`` — one record per step, flushed as it goes (its line count is the steps run);
* ``search_{tag}_state.json`` — the settings and reference points (``--resume`` checks them, then replays the
  history), and the progress at the end;
* ``search_{tag}_summary.json`` — the best(s), measured latencies, the table's error, the protocol, costs;
* ``search_{tag}.png`` — latency vs metric of every candidate, the band (or the budgets and the front) marked;
* one band: ``sparsevit_{tag}.py`` — the best configuration as a ready-to-train config;
* budgets: ``sparsevit_max{B}.py`` per budget, and ``front.md`` / ``front.json`` — the latency-accuracy front.
"""
import json
import os
import os.path as osp
from typing import List, Mapping, Optional, Sequence, Union

from ..schedule import Genes, format_genes, genes_to_ratios
from ..utils.files import write_atomic, write_json


def band_tag(max_latency: Union[str, float], min_latency: Union[str, float]) -> str:
    """``max42_min37``: the original's naming, with the values as typed."""
    return f'max{_tag(max_latency)}_min{_tag(min_latency)}'


def budgets_tag(budgets: Sequence[Union[str, float]], min_latency: Union[str, float, None] = None) -> str:
    """``budgets33_36_39_42`` (``_min20`` appended when a lower end is given)."""
    tag = 'budgets' + '_'.join(_tag(b) for b in budgets)
    return tag if min_latency is None else f'{tag}_min{_tag(min_latency)}'


class SearchFiles:
    """Paths and writers of one search's outputs.

    Args:
        work_dir: output directory (created by :meth:`start`).
        tag: names the files, see :func:`band_tag` and :func:`budgets_tag`.
    """

    def __init__(self, work_dir: str, tag: str):
        self.work_dir, self.tag = work_dir, tag
        self.log = osp.join(work_dir, f'search_{tag}.txt')
        self.history = osp.join(work_dir, f'search_{tag}_history.jsonl')
        self.state = osp.join(work_dir, f'search_{tag}_state.json')
        self.summary = osp.join(work_dir, f'search_{tag}_summary.json')
        self.plot = osp.join(work_dir, f'search_{tag}.png')
        self.best_config = osp.join(work_dir, f'sparsevit_{tag}.py')
        self.front_md = osp.join(work_dir, 'front.md')
        self.front_json = osp.join(work_dir, 'front.json')

    def budget_config(self, budget: Union[str, float]) -> str:
        """Path of the ready-to-train config of one budget: ``sparsevit_max{B}.py``."""
        return osp.join(self.work_dir, f'sparsevit_max{_tag(budget)}.py')

    def start(self, header: str) -> None:
        """A fresh search: create the directory, empty the history, start the log with ``header`` lines."""
        os.makedirs(self.work_dir, exist_ok=True)
        open(self.history, 'w').close()
        with open(self.log, 'w') as f:
            f.write(''.join(f'# {line}\n' for line in header.splitlines()) + '\n')

    # ------------------------------------------------------------------------------------------------ log
    def log_best(self, record: Mapping, metric_name: str, budget_label: str = '') -> None:
        """Append a change of the best: step, metric, latency (and budget), then the configuration."""
        where = f' | budget {budget_label}' if budget_label else ''
        with open(self.log, 'a') as f:
            f.write(f"step {record['step']}{where} | {metric_name} {record['metric']:.2f} | "
                    f"latency {record['latency']:.2f} ms\n{format_genes(record['config'])}\n\n")

    def log_line(self, line: str) -> None:
        with open(self.log, 'a') as f:
            f.write(line.rstrip('\n') + '\n')

    # ------------------------------------------------------------------------------------------------ history
    def append_record(self, record: Mapping) -> None:
        """Append one record to the JSONL history and flush it to disk."""
        with open(self.history, 'a') as f:
            f.write(json.dumps(record) + '\n')
            f.flush()
            os.fsync(f.fileno())

    def read_history(self, repair: bool = False) -> List[dict]:
        """All records of the history; a truncated last line (a killed write) is dropped (and removed if
        ``repair``).

        Raises:
            ValueError: if a line other than the last is not valid JSON, or a line is not a record
                (:func:`record_problem`).
        """
        if not osp.exists(self.history):
            return []
        with open(self.history) as f:
            lines = f.read().splitlines()
        records = []
        for n, line in enumerate(lines):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if n != len(lines) - 1:
                    raise ValueError(f'{self.history} line {n + 1} is not valid JSON (a file edited or broken '
                                     'by hand: restore it or start a new search without --resume)') from None
                continue
            problem = record_problem(record, n)
            if problem:
                raise ValueError(f'{self.history} line {n + 1} is not a search record: {problem}')
            records.append(record)
        if len(records) < len(lines) and repair:
            write_atomic(self.history, ''.join(json.dumps(r) + '\n' for r in records))
        return records

    # ------------------------------------------------------------------------------------------------ state
    def write_state(self, state: Mapping) -> None:
        write_json(self.state, state)

    def read_state(self) -> dict:
        """The saved state; ValueError with a clear message if there is none to resume, or it is not a state."""
        if not osp.exists(self.state):
            raise ValueError(f'--resume: no search state {self.state}; run without --resume to start a search')
        try:
            with open(self.state) as f:
                state = json.load(f)
        except (OSError, ValueError) as err:
            raise ValueError(f'--resume: {self.state} cannot be read ({err}); nothing was changed: restore it, or '
                             'start a new search without --resume') from None
        missing = [k for k in ('settings', 'tool', 'references') if not isinstance(state, dict) or k not in state]
        if missing:
            raise ValueError(f'--resume: {self.state} is not a search state (no {", ".join(missing)}); nothing '
                             'was changed')
        return state

    def write_summary(self, summary: Mapping) -> None:
        write_json(self.summary, summary)

    # ------------------------------------------------------------------------------------------------ results
    def write_config(self, path: str, genes: Genes, depths: Sequence[int], base_config: str, checkpoint: str,
                     comment: str) -> str:
        """Write a ready-to-train config: ``_base_`` (relative when possible), ``pruning_ratios``, ``load_from``."""
        ratios = genes_to_ratios(genes, depths)
        text = ''.join(f'# {line}\n' for line in comment.splitlines())
        text += ''.join(f'#   {line}\n' for line in format_genes(genes).splitlines())
        text += (f'_base_ = {relative_to(base_config, self.work_dir)!r}\n'
                 "custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)\n\n"
                 '# one list per stage, one ratio per block (fraction of windows removed)\n'
                 f'pruning_ratios = {ratios!r}\n\n'
                 f'load_from = {checkpoint!r}\n')
        return write_atomic(path, text)

    def write_front(self, rows: Sequence[Mapping], metric_name: str) -> None:
        """``front.json`` (the rows as given) and ``front.md`` (budget, latency, metric, config) of a multi-budget
        search; a row without a candidate (``latency`` None) is an unmet budget."""
        write_json(self.front_json, dict(metric=metric_name, budgets=list(rows)))
        relative = any(str(row.get('name', '')).endswith('x') for row in rows)
        budget = 'budget (of dense)' if relative else 'budget (ms)'
        lines = [f'| {budget} | band | latency (ms) | measured (ms) | {metric_name} | genes per stage | config |',
                 '|---|---|---|---|---|---|---|']
        for row in rows:
            name = row.get('name') or f"{row['budget']:g}"
            if row['latency'] is None:
                lines.append(f"| {name} | {row['band']} | – | – | – | no candidate found | – |")
                continue
            lines.append(f"| {name} | {row['band']} | {row['latency']:.2f} | {row['measured_ms']:.2f} | "
                         f"{row['metric']:.2f} | {genes_per_stage_text(row['config'])} | "
                         f"{osp.basename(row['config_file'])} |")
        write_atomic(self.front_md, '\n'.join(lines) + '\n')

    def plot_history(self, history: Sequence[Mapping], bests: Sequence[Optional[Mapping]], edges: Sequence[float],
                     min_latency: float, metric_name: str) -> str:
        """Latency vs metric of every scored candidate, infeasible ones as a rug at the bottom.

        One band: the band shaded and the best starred. Budgets: each budget's upper end as a dashed line, the
        bests starred and the front (best metric at latency <= x) drawn as a step line.
        """
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        scored = [r for r in history if r['feasible'] and not r.get('cached')]
        infeasible = [r['latency'] for r in history if not r['feasible'] and not r.get('cached')]
        found = sorted((b for b in bests if b is not None), key=lambda r: r['latency'])
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        if len(edges) == 1:
            ax.axvspan(min_latency, edges[0], color='tab:green', alpha=0.12, label='latency band')
        else:
            for i, edge in enumerate(edges):
                ax.axvline(edge, color='tab:green', ls='--', lw=1, label='budgets' if i == 0 else None)
                ax.annotate(f'{edge:g} ms', (edge, 1.0), xycoords=('data', 'axes fraction'), xytext=(-3, -4),
                            textcoords='offset points', rotation=90, ha='right', va='top', fontsize=7,
                            color='tab:green')
        if scored:
            ax.scatter([r['latency'] for r in scored], [r['metric'] for r in scored], s=12, alpha=0.6,
                       label=f'evaluated ({len(scored)})')
        if infeasible:
            low = min((r['metric'] for r in scored), default=0.0)
            ax.plot(infeasible, [low] * len(infeasible), '|', color='tab:gray', alpha=0.6,
                    label=f'outside the budgets, not scored ({len(infeasible)})')
        if len(found) > 1:
            front = [max(r['metric'] for r in found[:i + 1]) for i in range(len(found))]
            xs = [r['latency'] for r in found] + [edges[-1]]
            ax.step(xs, front + front[-1:], where='post', color='tab:red', lw=1.5, label='front')
        for i, best in enumerate(found):
            label = (f"best: {best['metric']:.2f} at {best['latency']:.2f} ms" if len(found) == 1
                     else 'best per budget' if i == 0 else None)
            ax.scatter([best['latency']], [best['metric']], marker='*', s=200, color='tab:red', zorder=3,
                       label=label)
        ax.set_xlabel('backbone latency (ms)')
        ax.set_ylabel(metric_name)
        title = (f'band [{min_latency:g}, {edges[0]:g}] ms' if len(edges) == 1
                 else 'budgets ' + ' '.join(f'{e:g}' for e in edges) + ' ms')
        ax.set_title(f'SparseViT search, {title}')
        ax.legend(loc='best', fontsize=8)
        fig.tight_layout()
        fig.savefig(self.plot, dpi=120)
        plt.close(fig)
        return self.plot


#: The fields every history record has (:func:`record_problem`).
RECORD_FIELDS = dict(step=int, config=dict, feasible=bool, latency=(int, float))


def record_problem(record, line: int) -> str:
    """What is wrong with history record number ``line`` (0-based), or ``''``."""
    if not isinstance(record, dict):
        return f'a {type(record).__name__}, not an object'
    for key, kind in RECORD_FIELDS.items():
        if not isinstance(record.get(key), kind):
            return f'field {key!r} missing or of the wrong type'
    if record['step'] != line:
        return f"step {record['step']} where step {line} was expected"
    if record['feasible'] and not isinstance(record.get('metric'), (int, float)):
        return "a feasible record without a numeric 'metric'"
    return ''


def genes_per_stage_text(genes: Mapping[str, float]) -> str:
    """E.g. ``0.5 / 0 / 0, 0.3, 0.4 / 0.1``: the genes grouped by stage (names ``backbone.stages.{i}[_j]``)."""
    stages: dict = {}
    for name, value in genes.items():
        stages.setdefault(name.split('.')[-1].split('_')[0], []).append(f'{value:g}')
    return ' / '.join(', '.join(v) for v in stages.values())


def _tag(value) -> str:
    """A limit as typed (a :class:`~.budgets.Limit` or a string), else the number formatted."""
    return value if isinstance(value, str) else getattr(value, 'text', None) or f'{value:g}'


def relative_to(path: str, start: str) -> str:
    """``path`` relative to directory ``start`` when they share a top-level directory (e.g. both in the repo),
    else absolute (a relative path through ``/`` would break as soon as either moves)."""
    path, start = osp.abspath(path), osp.abspath(start)
    try:
        shared = osp.commonpath([path, start])
    except ValueError:  # different drives
        return path
    return osp.relpath(path, start) if shared != osp.dirname(shared) else path


