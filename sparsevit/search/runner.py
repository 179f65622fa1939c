"""The search step of ``tools/search.py``: set-up, latency (measured or from the table), evolution, outputs.

Every rank runs :func:`run_search` in lockstep: the searcher is seeded identically, latencies come from the table or
from a collective measurement (the same value on every rank), and scores are broadcast by the evaluator; rank 0
writes the files. The settings are the tool's (:class:`~.settings.SearchSettings`, see ``tools/search.py --help``).

One band (``--max/--min``) is a search with one budget, through the same code as ``--budgets``; its outputs keep the
original's names and keys (``final best``, ``sparsevit_max42_min37.py``, the summary's ``best``), worded from the
same per-budget results (:func:`wording`, :func:`summary_results`).

As the original: the score is the mAP of the first ``--eval`` metric x100, computed in fp32 (no fp16 wrapping, even
when the config trains in fp16), with ``torch.backends.cudnn.benchmark`` on CUDA; the latency and score of the
dense configuration and of uniform 0.5 are measured and logged before the search.
"""
import dataclasses
import os
import os.path as osp
import sys
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmcv import Config
from mmcv.utils import import_modules_from_strings
from mmdet.utils import compat_cfg
from tqdm import tqdm

from ..schedule import dense_genes, gene_names, genes_key, sparsest_genes
from ..tasks import Task, check_data, evaluation_kwargs, task_of
from ..utils import dist
from ..utils.checkpoint import load_weights
from ..utils.config import get_sparse_backbone, load_config as read_config
from ..utils.files import LockedError, RunLock
from ..utils.interrupt import Interrupted, interrupts_raise
from ..utils.latency import size_text, size_value
from .budgets import Budgets
from .evaluator import DetectorEvaluator, SegmentorEvaluator, ShardedEvaluator
from .evolution import EvolutionSearcher, ReplayMismatch, SearchBase, make_searcher
from .latency_table import LatencyTable
from .outputs import SearchFiles
from .settings import SearchSettings
from .timing import Measurer, Meter, check_configs, check_table, latency_protocol, load_or_build_table

PROG = 'search.py'
#: The lock file of a search in its work directory (:func:`take_lock`).
LOCK_NAME = '.search.lock'


# ---------------------------------------------------------------------------------------------------- set-up
def load_config(settings: SearchSettings) -> Tuple[Config, Task]:
    """The config (:func:`sparsevit.utils.config.load_config`: ``--cfg-options`` merged, SparseViT keys applied)
    with the plugin imported, ready for testing, and its task (a detector's or a segmentor's,
    :func:`sparsevit.tasks.task_of`)."""
    cfg = read_config(settings.config, settings.cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    task = task_of(cfg)
    if task.name == 'detection':
        cfg = compat_cfg(cfg)
    cfg.model.pretrained = None
    cfg.model.train_cfg = None
    cfg.data.test_dataloader = {**dict(samples_per_gpu=1, workers_per_gpu=2), **cfg.data.get('test_dataloader', {})}
    return task.prepare_test(cfg), task  # test mode; mmdet: batched testing with DefaultFormatBundle


def build_model(cfg: Config, task: Task, checkpoint: str, device: torch.device):
    """The detector or segmentor with the checkpoint's weights on ``device`` (eval, fp32 as the original's
    search), and the test dataset."""
    check_data(cfg.data.test, 'data.test')
    dataset = task.build_dataset(cfg.data.test)
    model = task.build_model(cfg.model, test_cfg=cfg.get('test_cfg'))
    ckpt = load_weights(model, checkpoint)
    task.set_classes(model, ckpt.get('meta', {}) or {}, dataset)
    return model.to(device).eval(), dataset


def build_evaluator(cfg: Config, task: Task, model, dataset, settings: SearchSettings, device: torch.device
                    ) -> ShardedEvaluator:
    """The score: ``--eval`` metrics (resolved) on (a ``--num-images`` subset of) the test set, with the config's
    loader: COCO mAP of a detector, mIoU (...) of a segmentor."""
    loader = cfg.data.test_dataloader
    kind = SegmentorEvaluator if task.name == 'segmentation' else DetectorEvaluator
    return kind(model, dataset, settings.eval, settings.num_images, settings.seed, loader['samples_per_gpu'],
                loader['workers_per_gpu'], evaluation_kwargs(cfg), device)


def score_name(task: Task, metric: str) -> str:
    """The score's name in logs and outputs: ``bbox_mAP`` (a detector's COCO metric), ``mIoU`` (a segmentor's)."""
    return f'{metric}_mAP' if task.name == 'detection' else metric


# ---------------------------------------------------------------------------------------------------- search
class Recorder:
    """The searcher's callback: history, the log of best changes, progress bar (files on rank 0)."""

    def __init__(self, files: SearchFiles, metric_name: str, bar: tqdm):
        self.files, self.metric_name, self.bar = files, metric_name, bar
        self.searcher: Optional[SearchBase] = None

    def on_record(self, record: dict, replayed: bool, new_best: bool) -> None:
        self.bar.update(1)
        if not dist.is_master() or replayed:  # a replayed record is already in the files
            return
        self.files.append_record(record)
        if new_best:
            label = wording(self.searcher.budgets, record['budget'], self.files)['label']
            self.files.log_best(record, self.metric_name, label)
        found = [b['metric'] for b in self.searcher.bests if b is not None]
        self.bar.set_postfix(best=f'{max(found):.2f}' if found else '-', evaluated=len(self.searcher.cache))


def tool_settings(settings: SearchSettings, table: Optional[LatencyTable], image_set: str) -> dict:
    """What must match for ``--resume`` besides the searcher's own settings (``image_set``: the evaluator's
    ``image_key``)."""
    s = settings
    return dict(config=osp.abspath(s.config), checkpoint=osp.abspath(s.checkpoint), eval=s.eval,
                num_images=s.num_images, image_set=image_set, img_size=size_value(s.img_size), batch_size=s.batch_size,
                latency='table' if table is not None else 'measured', table_key=table.key if table else None,
                table_calibration=_calibration(table))


def _calibration(table: Optional[LatencyTable]) -> Optional[dict]:
    cal = table.calibration if table is not None else None
    return None if cal is None else dict(offset_ms=cal['offset_ms'], scale=cal['scale'])


def read_saved(files: SearchFiles) -> Tuple[dict, List[dict]]:
    """The saved state and history of ``--resume`` (rank 0 reads, every rank receives)."""
    saved = None
    if dist.is_master():
        try:
            saved = (files.read_state(), files.read_history(repair=True))
        except ValueError as err:
            saved = str(err)
    saved = dist.broadcast_object(saved)
    if isinstance(saved, str):
        raise ValueError(saved)
    return saved


def saved_reference(saved: Optional[Tuple[dict, List[dict]]]) -> Tuple[Optional[float], Optional[float]]:
    """(dense, sparsest) ms that the interrupted search saw (None, None: a fresh search, or a state written before
    they were saved): a resumed search resolves relative budgets and picks turns with the same values."""
    ref = (saved[0].get('reference_ms') or {}) if saved else {}
    return ref.get('dense'), ref.get('sparsest')


def _short(value, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + '...'


def restore(searcher: SearchBase, saved: Tuple[dict, List[dict]], tool: dict, files: SearchFiles, log) -> dict:
    """Check the saved settings (``tool``: :func:`tool_settings`, and the searcher's) against this search's and
    give the history to the searcher to replay; returns the state."""
    state, history = saved
    mine = dict(tool, **{f'search.{k}': v for k, v in searcher.settings().items()})
    theirs = dict(state.get('tool', {}), **{f'search.{k}': v for k, v in state.get('settings', {}).items()})
    diff = [k for k, v in mine.items() if theirs.get(k) != v]
    if diff:
        shown = '; '.join(f"{k.replace('search.', '')} {_short(theirs.get(k))} (now {_short(mine[k])})"
                          for k in diff[:3]) + ('; ...' if len(diff) > 3 else '')
        raise ValueError(f'--resume: {files.state} was written by a search with other settings: {shown}; resume '
                         f'with the same arguments or use another --work-dir (nothing was changed)')
    searcher.resume(history)
    log(f'resumed: replaying {len(history)} recorded steps (nothing is evaluated again)')
    return state


def precheck_band(depths, measure: Callable, budgets: Budgets) -> None:
    """Dense and sparsest latency vs the budgets, measured directly: runs before a (long) table build."""
    EvolutionSearcher(depths, measure, lambda genes: 0.0, budgets, parents=2 * len(budgets),
                      population=2 * len(budgets)).check_band()


def references(depths, latency: Callable, score: Callable, metric_name: str, log) -> List[dict]:
    """The original's reference points: latency and score of the dense configuration and of uniform 0.5."""
    out = []
    for name, genes in (('dense', dense_genes(depths)), ('uniform 0.5', {n: 0.5 for n in gene_names(depths)})):
        ms = float(latency(genes))
        metric, extra = score(genes)
        out.append(dict(name=name, config=genes, latency=ms, metric=metric, extra=extra))
        log(f'reference {name}: latency {ms:.2f} ms, {metric_name} {metric:.2f}')
    return out


def run_search(settings: SearchSettings) -> dict:
    """The whole search with the settings of ``tools/search.py`` (checked: :meth:`~.settings.SearchSettings.check`);
    returns the summary (every rank).

    Around it: one search per work directory (:func:`take_lock`); SIGINT / SIGTERM raise
    :class:`~sparsevit.utils.interrupt.Interrupted` (the state saved, its message says how to resume); a rank
    that dies ends the others within :data:`~sparsevit.utils.dist.LOST_AFTER_S` seconds (:func:`lost_rank`).
    """
    with interrupts_raise():
        use_cuda = settings.device == 'cuda' or (settings.device == 'auto' and torch.cuda.is_available())
        device = dist.init_dist(use_cuda)
        files = SearchFiles(settings.work_dir, settings.tag())
        lock = take_lock(files)
        try:
            dist.start_watchdog(lambda who, message: lost_rank(files, lock, who, message))
            return search(settings, device, files)
        except BaseException:
            dist.stop_watchdog()  # a failure on every rank is not a lost rank
            raise
        finally:
            if lock is not None:
                lock.release()


def take_lock(files: SearchFiles) -> Optional[RunLock]:
    """Rank 0 locks the work directory (``.search.lock``; a stale lock of a dead process is taken over); every
    rank learns whether it could.

    Raises:
        ValueError: one line: another search holds it, or the directory cannot be written.
    """
    lock, error = None, None
    if dist.is_master():
        try:
            lock = RunLock(osp.join(files.work_dir, LOCK_NAME), 'search', '--work-dir').acquire()
        except (LockedError, ValueError) as err:
            error = str(err)
        except OSError as err:
            error = f'--work-dir {files.work_dir} cannot be written: {err.strerror or err}'
    error = dist.broadcast_object(error)
    if error:
        raise ValueError(error)
    return lock


def lost_rank(files: SearchFiles, lock: Optional[RunLock], who: int, message: str) -> None:
    """The watchdog's end of a search that lost rank ``who``: one line (printed by rank 0, or by rank 1 when rank
    0 is the lost one), the lock released, exit 1 at once (the main thread may wait in a collective)."""
    if dist.rank() == (1 if who == 0 else 0):
        print(f'{PROG}: error: {message}; the state and history in {files.work_dir} are kept: run the same command '
              'with --resume to continue', file=sys.stderr, flush=True)
    if lock is not None:
        lock.release()
    os._exit(1)


def search(settings: SearchSettings, device: torch.device, files: SearchFiles) -> dict:
    """:func:`run_search` once the group, the lock and the watchdog are set up."""
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # as the original's search
    log = (lambda msg: tqdm.write(f'[search] {msg}', file=sys.stdout)) if dist.is_master() else (lambda msg: None)
    s, protocol = latency_protocol(settings, device)
    cfg, task = load_config(s)
    s = dataclasses.replace(s, eval=list(s.metrics(task)), metric=None)  # resolved: the scored metric first
    model, dataset = build_model(cfg, task, s.checkpoint, device)
    backbone = get_sparse_backbone(model)
    budgets = s.latency_budgets()
    measurer = Measurer(backbone, s, device)
    measure = Meter(measurer)
    log(f'latency: {protocol}')
    saved = read_saved(files) if s.resume else None
    if s.latency_table and not osp.isfile(s.latency_table):  # unreachable budgets fail before the build
        precheck_band(backbone.depths, measure, budgets)
    table = load_or_build_table(backbone, s, device, measurer, log) if s.latency_table else None
    latency = Meter(table.predict if table is not None else measure)
    evaluator = build_evaluator(cfg, task, model, dataset, s, device)
    score, metric_name = Meter(evaluator), score_name(task, s.eval[0])
    bar = tqdm(total=s.iters, desc='search', unit='step', file=sys.stderr,
               disable=s.no_progress or not dist.is_master())
    recorder = Recorder(files, metric_name, bar)
    searcher = make_searcher(s.strategy, backbone.depths, latency, score, budgets, s.population, s.parents,
                             s.mutation_prob, seed=s.seed, max_retries=s.max_retries, on_record=recorder.on_record)
    recorder.searcher = searcher
    dense_ms, sparsest_ms = searcher.check_band(*saved_reference(saved))  # resolves relative budgets
    tool = tool_settings(s, table, evaluator.image_key)
    describe_start(s, searcher.budgets, tool, dense_ms, sparsest_ms, evaluator.num_images, log)
    band = dict(searcher.budgets.to_dict(), sparsest_ms=sparsest_ms)
    reference_ms = dict(dense=dense_ms, sparsest=sparsest_ms)
    if s.resume:
        refs = restore(searcher, saved, tool, files, log)['references']
    else:
        refs = references(searcher.depths, latency, score, metric_name, log)
        if dist.is_master():
            files.start(header(s, searcher.budgets, tool, protocol, metric_name, dense_ms, sparsest_ms, refs))
            files.write_state(dict(settings=searcher.settings(), tool=tool, references=refs, finished=False,
                                   reference_ms=reference_ms, band=band))
    try:
        searcher.run(s.iters)
    except ReplayMismatch as err:
        raise ValueError(f'--resume: {files.history}: {err}; nothing was changed') from None
    except Interrupted as stop:
        bar.close()
        if dist.is_master():
            files.write_state(dict(settings=searcher.settings(), tool=tool, references=refs, finished=False,
                                   reference_ms=reference_ms, band=band, progress=searcher.state_dict(),
                                   interrupted=stop.name))
        stop.message = (f'interrupted by {stop.name} after {searcher.steps} of {s.iters} steps; the state and '
                        f'history are saved in {files.work_dir}: run the same command with --resume to continue')
        raise
    bar.close()
    searcher.require_feasible(tool['latency'])
    if dist.is_master():
        files.write_state(dict(settings=searcher.settings(), tool=tool, references=refs, finished=True,
                               reference_ms=reference_ms, band=band, progress=searcher.state_dict()))
    costs = dict(latency=latency, measure=measure, score=score, measure_many=Meter(measurer.many))
    return finish(s, files, searcher, table, costs, metric_name, refs, protocol, log)


def describe_start(settings: SearchSettings, budgets: Budgets, tool: dict, dense_ms: float, sparsest_ms: float,
                   num_images: int, log) -> None:
    """The first lines of the output: budgets, latency range and source, processes, strategy; unmet budgets."""
    log(f"{budgets.describe()}; dense {dense_ms:.2f} ms, sparsest {sparsest_ms:.2f} ms ({tool['latency']}); "
        f'{dist.world_size()} process(es); scoring {num_images} images; strategy {settings.strategy}, '
        f'{settings.iters} steps')
    for i, ok in enumerate(budgets.reachable(dense_ms, sparsest_ms)):
        if not ok:
            log(f'budget {budgets.label(i)} is unreachable (outside [{sparsest_ms:.2f}, {dense_ms:.2f}] ms): '
                f'it takes no turns and will stay empty')


def header(settings: SearchSettings, budgets: Budgets, tool: dict, protocol: str, metric_name: str,
           dense_ms: float, sparsest_ms: float, refs: List[dict]) -> str:
    """The log's first lines: the command (the limits by their flags, as typed), the budgets (as typed and in ms),
    latency source and protocol, reference points."""
    s = settings
    typed, low = budgets.texts()
    where = f'--budgets {" ".join(typed)} --min {low}' if s.budgets else f'--max {typed[0]} --min {low}'
    lines = [f'{PROG} {s.config} {s.checkpoint} {where} --strategy {s.strategy} --iters {s.iters}',
             budgets.describe(),
             f"latency: {tool['latency']} ({protocol}); dense {dense_ms:.2f} ms, sparsest {sparsest_ms:.2f} ms",
             f'metric: {metric_name} (x100)']
    lines += [f"reference {r['name']}: latency {r['latency']:.2f} ms | {metric_name} {r['metric']:.2f}" for r in refs]
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------------- results
def finish(settings: SearchSettings, files: SearchFiles, searcher: SearchBase, table: Optional[LatencyTable],
           costs: Dict[str, Meter], metric_name: str, refs: List[dict], protocol: str, log) -> dict:
    """Confirm the best(s) by real measurements, check the table, write the summary, plot, configs (and front).

    A relative band is checked as fractions: each best's measured latency over the dense configuration's, measured
    in the same interleaved run, against the typed fractions (a machine running at another speed than during the
    search does not move a configuration out of the band).
    """
    bests = list({genes_key(b['config']): b['config'] for b in searcher.bests if b is not None}.values())
    dense = dense_genes(searcher.depths)
    check = None
    if table is not None:  # the bests are measured with the check's configurations, interleaved
        fixed = [dense, sparsest_genes(searcher.depths, searcher.choices)] + bests
        configs = check_configs(fixed, searcher.history, settings.check_configs, settings.seed)
        check = check_table(table, costs['measure_many'], configs, {})
        measured = {genes_key(row['config']): row['measured_ms'] for row in check['rows']}
    else:
        confirm = ([dense] if searcher.budgets.relative else []) + bests
        measured = dict(zip([genes_key(g) for g in confirm], costs['measure_many'](confirm)))
    rows = result_rows(files, searcher, measured)
    summary = dict(
        strategy=settings.strategy, metric=metric_name, steps=searcher.steps, evaluated=len(searcher.cache),
        scored=sum(r['feasible'] for r in searcher.cache.values()),
        cached_steps=sum(r['cached'] for r in searcher.history),
        infeasible_steps=sum(not r['feasible'] for r in searcher.history), world_size=dist.world_size(),
        latency='table' if table else 'measured', latency_protocol=protocol, references=refs,
        band=dict(searcher.budgets.to_dict(), sparsest_ms=searcher.reference[1]),
        cost_s={**{f'{k}_per_call': m.mean() for k, m in costs.items()},
                **{f'{k}_calls': m.calls for k, m in costs.items()}},
        table_check=check, **summary_results(rows, searcher.bests))
    if dist.is_master():
        files.write_summary(summary)
        written = write_results(settings, files, searcher, rows, metric_name)
        report(summary, rows, files, written, searcher, log)
    return summary


def result_rows(files: SearchFiles, searcher: SearchBase, measured: Dict[str, float]) -> List[dict]:
    """Per budget: its band (ms, and the fraction of the dense latency), best (or None), its latency measured now
    (``measured``: ms by configuration key) and whether that lies in the budgets, and its config file.

    A relative band is checked at the search's speed: the measured latencies scaled by the dense latency it resolved
    the band with over the dense latency measured now (``measured_fraction``: of dense measured now).
    """
    rows, budgets = [], searcher.budgets
    fractions = budgets.fractions
    dense = measured[genes_key(dense_genes(searcher.depths))] if budgets.relative else None
    scale = searcher.reference[0] / dense if budgets.relative else 1.0
    for i, (name, edge, best) in enumerate(zip(budgets.texts()[0], budgets.edges, searcher.bests)):
        row = dict(budget=edge, name=name, fraction=None if fractions is None else fractions[i],
                   band=budgets.label(i), latency=None, measured_ms=None, metric=None, config=None, step=None,
                   config_file=None)
        if best is not None:
            ms = measured[genes_key(best['config'])]
            row.update(latency=best['latency'], measured_ms=ms, metric=best['metric'], config=best['config'],
                       step=best['step'], config_file=wording(budgets, i, files)['config_file'], extra=best['extra'],
                       measured_in_budgets=budgets.index(scale * ms) is not None)
            if budgets.relative:
                row['measured_fraction'] = ms / dense
        rows.append(row)
    return rows


def wording(budgets: Budgets, i: int, files: SearchFiles) -> Dict[str, str]:
    """How the outputs name budget ``i`` and its result: its ``label`` in the log, the ``final`` log line, who
    ``found`` it and ``where`` in its config's comment, the ``best`` line of the report (with the latency ``source``
    or not) and what it says when the best measured now falls ``outside``, and its ``config_file``.

    One budget is the original's band: no label, ``final best``, ``sparsevit_{tag}.py``; each of several is named by
    its band and has its ``sparsevit_max{B}.py``.
    """
    if len(budgets) == 1:
        return dict(label='', final='best', found='tools/search.py', where=budgets.describe(), best='best ',
                    source=True, outside=' (OUTSIDE the band: widen it or rebuild the table)',
                    config_file=files.best_config)
    label = budgets.label(i)
    return dict(label=label, final=f'budget {label}', found='tools/search.py --budgets', where=f'budget {label}',
                best=f'best in budget {label}: ', source=False, outside=' (outside the budgets)',
                config_file=files.budget_config(budgets.texts()[0][i]))


def summary_results(rows: List[dict], bests: List[Optional[dict]]) -> dict:
    """The results in the summary: ``budgets``, a row per budget; one budget (a band) with the original's keys
    instead: its ``best`` record, ``measured_latency_ms``, ``measured_in_band`` (and ``measured_fraction``)."""
    if len(rows) > 1:
        return dict(budgets=rows)
    row = rows[0]
    out = dict(best=bests[0], measured_latency_ms=row['measured_ms'], measured_in_band=row['measured_in_budgets'])
    if 'measured_fraction' in row:
        out['measured_fraction'] = row['measured_fraction']
    return out


def write_results(settings: SearchSettings, files: SearchFiles, searcher: SearchBase, rows: List[dict],
                  metric_name: str) -> List[str]:
    """Rank 0: the final log lines, the ready-to-train configs, the front (of several budgets) and the plot; returns
    the paths written besides the plot (the front's, then the configs)."""
    shape = f'batch {settings.batch_size} at {size_text(settings.img_size)}'
    configs = []
    for i, row in enumerate(rows):
        say = wording(searcher.budgets, i, files)
        if row['latency'] is None:
            files.log_line(f"final {say['final']}: no candidate found")
            continue
        files.log_line(f"final {say['final']}: step {row['step']} | {metric_name} {row['metric']:.2f} | "
                       f"latency {row['latency']:.2f} ms, measured {row['measured_ms']:.2f} ms")
        comment = (f"Found by {say['found']}: {metric_name} {row['metric']:.2f}, backbone latency "
                   f"{row['measured_ms']:.2f} ms measured ({say['where']}, {shape}).\n"
                   'Search log (genes: one ratio per W-MSA/SW-MSA block pair):')
        configs.append(files.write_config(row['config_file'], row['config'], searcher.depths, settings.config,
                                          settings.checkpoint, comment))
    front = []
    if len(rows) > 1:
        files.write_front(rows, metric_name)
        front = [files.front_md, files.front_json]
    files.plot_history(searcher.history, searcher.bests, searcher.budgets.edges, searcher.budgets.min, metric_name)
    return front + configs


def report(summary: dict, rows: List[dict], files: SearchFiles, written: List[str], searcher: SearchBase,
           log) -> None:
    """Print the results, the table check, the costs and the files written (rank 0)."""
    metric = summary['metric']
    log(f"{summary['steps']} steps: {summary['evaluated']} configurations evaluated, {summary['scored']} scored, "
        f"{summary['cached_steps']} cached steps, {summary['infeasible_steps']} infeasible steps")
    for i, row in enumerate(rows):
        say = wording(searcher.budgets, i, files)
        if row['latency'] is None:
            log(f"{say['best']}none found")
            continue
        source = f" ({summary['latency']})" if say['source'] else ''
        fraction = (f" = {row['measured_fraction']:.3g}x of dense measured now" if 'measured_fraction' in row
                    else '')
        log(f"{say['best']}{metric} {row['metric']:.2f} at {row['latency']:.2f} ms{source}, "
            f"{row['measured_ms']:.2f} ms measured now{fraction}"
            + ('' if row['measured_in_budgets'] else say['outside']))
    check = summary['table_check']
    for row in check['rows'] if check else []:
        log(f"table check: predicted {row['predicted_ms']:.2f} ms, measured {row['measured_ms']:.2f} ms, error "
            f"{row['error_pct']:+.1f} % ({row['rescaled_error_pct']:+.1f} % at the current machine speed)")
    if check:
        log(f"table error: mean {check['mean_abs_error_pct']:.1f} %, max {check['max_abs_error_pct']:.1f} %; the "
            f"machine runs the dense model at {100 * check['speed_ratio']:.0f} % of the table's time, and at that "
            f"speed: mean {check['mean_abs_rescaled_error_pct']:.1f} %, "
            f"max {check['max_abs_rescaled_error_pct']:.1f} %")
    cost = summary['cost_s']
    log(f"latency protocol: {summary['latency_protocol']}")
    log(f"cost per call: latency {_ms(cost['latency_per_call'])} ({summary['latency']}), real measurement "
        f"{_ms(cost['measure_per_call'])}, score {_ms(cost['score_per_call'])}")
    for path in [files.log, files.history, files.state, files.summary, files.plot, *written]:
        log(f'wrote {path}')


def _ms(seconds: Optional[float]) -> str:
    return '-' if seconds is None else f'{1000 * seconds:.3f} ms'
