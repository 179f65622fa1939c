"""Files of a search run under ``--work-dir`` (written by rank 0).

For ``--max 42 --min 37``:

* ``search_max42_min37.txt`` — the original's log: every time the best improves, the iteration, metric and latency,
  then the configuration in ``backbone.stages.0 : 0.3`` lines;
* ``search_max42_min37_history.jsonl`` — one record per evaluated configuration, flushed as it goes;
* ``search_max42_min37_state.json`` — the searcher's state after every iteration (``--resume`` reads it);
* ``search_max42_min37_summary.json`` — the best, its measured latency, the table's error, costs per candidate;
* ``search_max42_min37.png`` — latency vs metric of every candidate, the band and the best marked;
* ``sparsevit_max42_min37.py`` — the best configuration as a ready-to-train config.
"""
import json
import os
import os.path as osp
from typing import List, Mapping, Optional, Sequence, Union

from ..schedule import Genes, format_genes, genes_to_ratios


class SearchFiles:
    """Paths and writers of one search's outputs.

    Args:
        work_dir: output directory (created).
        max_latency, min_latency: the band; they name the files like the original (``search_max42_min37.txt``):
            strings as typed by the user, or numbers (formatted with ``:g``).
    """

    def __init__(self, work_dir: str, max_latency: Union[str, float], min_latency: Union[str, float]):
        self.work_dir = work_dir
        tag = f'max{_tag(max_latency)}_min{_tag(min_latency)}'
        self.log = osp.join(work_dir, f'search_{tag}.txt')
        self.history = osp.join(work_dir, f'search_{tag}_history.jsonl')
        self.state = osp.join(work_dir, f'search_{tag}_state.json')
        self.summary = osp.join(work_dir, f'search_{tag}_summary.json')
        self.plot = osp.join(work_dir, f'search_{tag}.png')
        self.best_config = osp.join(work_dir, f'sparsevit_{tag}.py')

    def start(self, header: str) -> None:
        """A fresh search: create the directory, empty the history, start the log with ``header`` lines."""
        os.makedirs(self.work_dir, exist_ok=True)
        open(self.history, 'w').close()
        with open(self.log, 'w') as f:
            f.write(''.join(f'# {line}\n' for line in header.splitlines()) + '\n')

    # ------------------------------------------------------------------------------------------------ log
    def log_best(self, record: Mapping, metric_name: str) -> None:
        """Append an improvement of the best: iteration, metric, latency, then the configuration."""
        with open(self.log, 'a') as f:
            f.write(f"iter {record['iteration']} | {metric_name} {record['metric']:.4f} | "
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
            ValueError: if a line other than the last is not valid JSON.
        """
        if not osp.exists(self.history):
            return []
        with open(self.history) as f:
            lines = f.read().splitlines()
        records = []
        for n, line in enumerate(lines):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if n != len(lines) - 1:
                    raise ValueError(f'{self.history} line {n + 1} is not valid JSON') from None
                if repair:
                    with open(self.history, 'w') as f:
                        f.write(''.join(json.dumps(r) + '\n' for r in records))
        return records

    # ------------------------------------------------------------------------------------------------ state
    def write_state(self, state: Mapping) -> None:
        _write_json(self.state, state)

    def read_state(self) -> dict:
        """The saved state; ValueError with a clear message if there is none to resume."""
        if not osp.exists(self.state):
            raise ValueError(f'--resume: no search state {self.state}; run without --resume to start a search')
        with open(self.state) as f:
            return json.load(f)

    def write_summary(self, summary: Mapping) -> None:
        _write_json(self.summary, summary)

    # ------------------------------------------------------------------------------------------------ results
    def write_best_config(self, genes: Genes, depths: Sequence[int], base_config: str, checkpoint: str,
                          comment: str) -> str:
        """Write the ready-to-train config: ``_base_`` (relative when possible), ``pruning_ratios``, ``load_from``."""
        ratios = genes_to_ratios(genes, depths)
        text = ''.join(f'# {line}\n' for line in comment.splitlines())
        text += ''.join(f'#   {line}\n' for line in format_genes(genes).splitlines())
        text += (f'_base_ = {relative_to(base_config, self.work_dir)!r}\n'
                 "custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)\n\n"
                 '# one list per stage, one ratio per block (fraction of windows removed)\n'
                 f'pruning_ratios = {ratios!r}\n\n'
                 f'load_from = {checkpoint!r}\n')
        with open(self.best_config, 'w') as f:
            f.write(text)
        return self.best_config

    def plot_history(self, history: Sequence[Mapping], best: Optional[Mapping], min_latency: float,
                     max_latency: float, metric_name: str) -> str:
        """Latency vs metric of every scored candidate, infeasible ones as a rug, the band shaded, the best starred."""
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        scored = [r for r in history if r['feasible']]
        infeasible = [r['latency'] for r in history if not r['feasible']]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.axvspan(min_latency, max_latency, color='tab:green', alpha=0.12, label='latency band')
        if scored:
            ax.scatter([r['latency'] for r in scored], [r['metric'] for r in scored], s=12, alpha=0.7,
                       label=f'evaluated ({len(scored)})')
        if infeasible:
            low = min((r['metric'] for r in scored), default=0.0)
            ax.plot(infeasible, [low] * len(infeasible), '|', color='tab:gray', alpha=0.6,
                    label=f'outside the band, not scored ({len(infeasible)})')
        if best is not None:
            ax.scatter([best['latency']], [best['metric']], marker='*', s=220, color='tab:red', zorder=3,
                       label=f"best: {best['metric']:.4f} at {best['latency']:.2f} ms")
        ax.set_xlabel('backbone latency (ms)')
        ax.set_ylabel(metric_name)
        ax.set_title(f'SparseViT search, band [{min_latency:g}, {max_latency:g}] ms')
        ax.legend(loc='best', fontsize=8)
        fig.tight_layout()
        fig.savefig(self.plot, dpi=120)
        plt.close(fig)
        return self.plot


def _tag(value: Union[str, float]) -> str:
    return value if isinstance(value, str) else f'{value:g}'


def relative_to(path: str, start: str) -> str:
    """``path`` relative to directory ``start`` when they share a top-level directory (e.g. both in the repo),
    else absolute (a relative path through ``/`` would break as soon as either moves)."""
    path, start = osp.abspath(path), osp.abspath(start)
    try:
        shared = osp.commonpath([path, start])
    except ValueError:  # different drives
        return path
    return osp.relpath(path, start) if shared != osp.dirname(shared) else path


def _write_json(path: str, data: Mapping) -> None:
    """Write JSON atomically (temporary file renamed over ``path``)."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
