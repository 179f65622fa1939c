"""The search step of ``tools/search.py``: set-up, latency (measured or from the table), evolution, outputs.

Every rank runs :func:`run_search` in lockstep: the searcher is seeded identically, latencies come from the table or
from a collective measurement (the same value on every rank), and scores are broadcast by the evaluator; rank 0
writes the files. ``args`` carries the tool's arguments (see ``tools/search.py --help``).

As the original: the score is the mAP of the first ``--eval`` metric x100, computed in fp32 (no fp16 wrapping, even
when the config trains in fp16), with ``torch.backends.cudnn.benchmark`` on CUDA; the latency and score of the
dense configuration and of uniform 0.5 are measured and logged before the search.
"""
import argparse
import os.path as osp
import sys
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmcv import Config
from mmcv.utils import import_modules_from_strings
from mmdet.datasets import build_dataset, replace_ImageToTensor
from mmdet.models import build_detector
from mmdet.utils import compat_cfg
from tqdm import tqdm

from ..schedule import dense_genes, gene_names, genes_key, sparsest_genes
from ..utils import dist
from ..utils.checkpoint import load_weights
from ..utils.config import apply_sparsevit_cfg, get_sparse_backbone
from .budgets import Budgets, Limit
from .evaluator import DetectorEvaluator
from .evolution import EvolutionSearcher, SearchBase, make_searcher
from .latency_table import LatencyTable
from .outputs import SearchFiles, band_tag, budgets_tag
from .timing import Measurer, Meter, check_configs, check_table, latency_protocol, load_or_build_table

PROG = 'search.py'


# ---------------------------------------------------------------------------------------------------- set-up
def load_config(args: argparse.Namespace) -> Config:
    """The config with ``--cfg-options``, the plugin imported, SparseViT keys applied, ready for testing."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    apply_sparsevit_cfg(cfg)
    cfg = compat_cfg(cfg)
    cfg.model.pretrained = None
    cfg.model.train_cfg = None
    cfg.data.test.test_mode = True
    cfg.data.test_dataloader = {**dict(samples_per_gpu=1, workers_per_gpu=2), **cfg.data.get('test_dataloader', {})}
    if cfg.data.test_dataloader['samples_per_gpu'] > 1:  # batched testing needs DefaultFormatBundle, as mmdet
        cfg.data.test.pipeline = replace_ImageToTensor(cfg.data.test.pipeline)
    return cfg


def build_model(cfg: Config, checkpoint: str, device: torch.device):
    """The detector with the checkpoint's weights on ``device`` (eval, fp32 as the original's search), and the test
    dataset."""
    dataset = build_dataset(cfg.data.test)
    model = build_detector(cfg.model, test_cfg=cfg.get('test_cfg'))
    ckpt = load_weights(model, checkpoint)
    model.CLASSES = ckpt.get('meta', {}).get('CLASSES', dataset.CLASSES)
    return model.to(device).eval(), dataset


def build_evaluator(cfg: Config, model, dataset, args: argparse.Namespace, device: torch.device
                    ) -> DetectorEvaluator:
    """The score: ``--eval`` metrics on (a ``--num-images`` subset of) the test set, with the config's loader."""
    loader = cfg.data.test_dataloader
    eval_kwargs = dict(cfg.get('evaluation', {}))
    for key in ('interval', 'tmpdir', 'start', 'gpu_collect', 'save_best', 'rule', 'dynamic_intervals', 'metric'):
        eval_kwargs.pop(key, None)
    return DetectorEvaluator(model, dataset, args.eval, args.num_images, args.seed, loader['samples_per_gpu'],
                             loader['workers_per_gpu'], eval_kwargs, device)


# ---------------------------------------------------------------------------------------------------- search
def make_budgets(args: argparse.Namespace) -> Budgets:
    """``--budgets`` (with ``--min``) or the band ``[--min, --max]``, in milliseconds or as fractions of the dense
    latency (resolved by the searcher's :meth:`~.evolution.SearchBase.check_band`)."""
    if args.budgets:
        return Budgets.from_limits(args.budgets, args.min)
    return Budgets.from_limits([args.max], args.min, band=True)


def files_for(args: argparse.Namespace) -> SearchFiles:
    low = Limit.parse(args.min)
    if args.budgets:
        return SearchFiles(args.work_dir, budgets_tag(args.budgets, low if low.value > 0 else None))
    return SearchFiles(args.work_dir, band_tag(args.max, low))


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
            budgets = self.searcher.budgets
            label = budgets.label(record['budget']) if len(budgets) > 1 else ''
            self.files.log_best(record, self.metric_name, label)
        found = [b['metric'] for b in self.searcher.bests if b is not None]
        self.bar.set_postfix(best=f'{max(found):.2f}' if found else '-', evaluated=len(self.searcher.cache))


def tool_settings(args: argparse.Namespace, table: Optional[LatencyTable]) -> dict:
    """What must match for ``--resume`` besides the searcher's own settings."""
    return dict(config=osp.abspath(args.config), checkpoint=osp.abspath(args.checkpoint), eval=args.eval,
                num_images=args.num_images, img_size=args.img_size, batch_size=args.batch_size,
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


def restore(searcher: SearchBase, saved: Tuple[dict, List[dict]], settings: dict, log) -> dict:
    """Check the saved settings against this search's and give the history to the searcher to replay; returns the
    state."""
    state, history = saved
    mine = dict(settings, **{f'search.{k}': v for k, v in searcher.settings().items()})
    theirs = dict(state.get('tool', {}), **{f'search.{k}': v for k, v in state.get('settings', {}).items()})
    diff = [k.replace('search.', '') for k, v in mine.items() if theirs.get(k) != v]
    if diff:
        raise ValueError(f'--resume: the saved search differs in {", ".join(diff)}; use the same arguments or '
                         f'another --work-dir')
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


def run_search(args: argparse.Namespace) -> dict:
    """The whole search for the arguments of ``tools/search.py`` (validated); returns the summary (every rank)."""
    use_cuda = args.device == 'cuda' or (args.device == 'auto' and torch.cuda.is_available())
    device = dist.init_dist(use_cuda)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # as the original's search
    log = (lambda msg: tqdm.write(f'[search] {msg}', file=sys.stdout)) if dist.is_master() else (lambda msg: None)
    protocol = latency_protocol(args, device)
    cfg = load_config(args)
    model, dataset = build_model(cfg, args.checkpoint, device)
    backbone = get_sparse_backbone(model)
    budgets, files = make_budgets(args), files_for(args)
    measurer = Measurer(backbone, args, device)
    measure = Meter(measurer)
    log(f'latency: {protocol}')
    saved = read_saved(files) if args.resume else None
    if args.latency_table and not osp.isfile(args.latency_table):  # unreachable budgets fail before the build
        precheck_band(backbone.depths, measure, budgets)
    table = load_or_build_table(backbone, args, device, measurer, log) if args.latency_table else None
    latency = Meter(table.predict if table is not None else measure)
    evaluator = build_evaluator(cfg, model, dataset, args, device)
    score, metric_name = Meter(evaluator), f'{args.eval[0]}_mAP'
    bar = tqdm(total=args.iters, desc='search', unit='step', file=sys.stderr,
               disable=args.no_progress or not dist.is_master())
    recorder = Recorder(files, metric_name, bar)
    searcher = make_searcher(args.strategy, backbone.depths, latency, score, budgets, args.population, args.parents,
                             args.mutation_prob, seed=args.seed, max_retries=args.max_retries,
                             on_record=recorder.on_record)
    recorder.searcher = searcher
    dense_ms, sparsest_ms = searcher.check_band(*saved_reference(saved))  # resolves relative budgets
    settings = tool_settings(args, table)
    describe_start(args, searcher.budgets, settings, dense_ms, sparsest_ms, evaluator.num_images, log)
    band = dict(searcher.budgets.to_dict(), sparsest_ms=sparsest_ms)
    reference_ms = dict(dense=dense_ms, sparsest=sparsest_ms)
    if args.resume:
        refs = restore(searcher, saved, settings, log)['references']
    else:
        refs = references(searcher.depths, latency, score, metric_name, log)
        if dist.is_master():
            files.start(header(args, searcher.budgets, settings, protocol, metric_name, dense_ms, sparsest_ms, refs))
            files.write_state(dict(settings=searcher.settings(), tool=settings, references=refs, finished=False,
                                   reference_ms=reference_ms, band=band))
    searcher.run(args.iters)
    bar.close()
    searcher.require_feasible(settings['latency'])
    if dist.is_master():
        files.write_state(dict(settings=searcher.settings(), tool=settings, references=refs, finished=True,
                               reference_ms=reference_ms, band=band, progress=searcher.state_dict()))
    costs = dict(latency=latency, measure=measure, score=score, measure_many=Meter(measurer.many))
    return finish(args, files, searcher, table, costs, metric_name, refs, protocol, log)


def describe_start(args, budgets: Budgets, settings: dict, dense_ms: float, sparsest_ms: float, num_images: int,
                   log) -> None:
    """The first lines of the output: budgets, latency range and source, processes, strategy; unmet budgets."""
    log(f"{budgets.describe()}; dense {dense_ms:.2f} ms, sparsest {sparsest_ms:.2f} ms ({settings['latency']}); "
        f'{dist.world_size()} process(es); scoring {num_images} images; strategy {args.strategy}, '
        f'{args.iters} steps')
    for i, ok in enumerate(budgets.reachable(dense_ms, sparsest_ms) if len(budgets) > 1 else []):
        if not ok:
            log(f'budget {budgets.label(i)} is unreachable (outside [{sparsest_ms:.2f}, {dense_ms:.2f}] ms): '
                f'it takes no turns and will stay empty')


def header(args, budgets: Budgets, settings: dict, protocol: str, metric_name: str, dense_ms: float,
           sparsest_ms: float, refs: List[dict]) -> str:
    """The log's first lines: the command, the budgets (as typed and in ms), latency source and protocol,
    reference points."""
    typed, low = budgets.texts()
    where = f'--budgets {" ".join(typed)} --min {low}' if args.budgets else f'--max {typed[0]} --min {low}'
    lines = [f'{PROG} {args.config} {args.checkpoint} {where} --strategy {args.strategy} --iters {args.iters}',
             budgets.describe(),
             f"latency: {settings['latency']} ({protocol}); dense {dense_ms:.2f} ms, sparsest {sparsest_ms:.2f} ms",
             f'metric: {metric_name} (x100)']
    lines += [f"reference {r['name']}: latency {r['latency']:.2f} ms | {metric_name} {r['metric']:.2f}" for r in refs]
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------------- results
def finish(args: argparse.Namespace, files: SearchFiles, searcher: SearchBase, table: Optional[LatencyTable],
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
        configs = check_configs(fixed, searcher.history, args.check_configs, args.seed)
        check = check_table(table, costs['measure_many'], configs, {})
        measured = {genes_key(row['config']): row['measured_ms'] for row in check['rows']}
    else:
        confirm = ([dense] if searcher.budgets.relative else []) + bests
        measured = dict(zip([genes_key(g) for g in confirm], costs['measure_many'](confirm)))
    # relative band: measured latencies at the search's speed (the dense latency it resolved the band with)
    scale = searcher.reference[0] / measured[genes_key(dense)] if searcher.budgets.relative else 1.0
    summary = dict(
        strategy=args.strategy, metric=metric_name, steps=searcher.steps, evaluated=len(searcher.cache),
        scored=sum(r['feasible'] for r in searcher.cache.values()),
        cached_steps=sum(r['cached'] for r in searcher.history),
        infeasible_steps=sum(not r['feasible'] for r in searcher.history), world_size=dist.world_size(),
        latency='table' if table else 'measured', latency_protocol=protocol, references=refs,
        band=dict(searcher.budgets.to_dict(), sparsest_ms=searcher.reference[1]),
        cost_s={**{f'{k}_per_call': m.mean() for k, m in costs.items()},
                **{f'{k}_calls': m.calls for k, m in costs.items()}},
        table_check=check)
    if len(searcher.budgets) == 1:
        best = searcher.best
        confirmed = measured[genes_key(best['config'])]
        summary.update(best=best, measured_latency_ms=confirmed,
                       measured_in_band=searcher.feasible(scale * confirmed))
        if searcher.budgets.relative:
            summary['measured_fraction'] = confirmed / measured[genes_key(dense)]
    else:
        summary['budgets'] = front_rows(files, searcher, measured)
        for row in summary['budgets']:
            if row['measured_ms'] is not None:
                row['measured_in_budgets'] = searcher.budgets.index(scale * row['measured_ms']) is not None
                if searcher.budgets.relative:
                    row['measured_fraction'] = row['measured_ms'] / measured[genes_key(dense)]
    if dist.is_master():
        files.write_summary(summary)
        write_results(args, files, searcher, summary, measured, metric_name)
        report(summary, files, searcher, log)
    return summary


def front_rows(files: SearchFiles, searcher: SearchBase, measured: Dict[str, float]) -> List[dict]:
    """Per budget: its band (ms, and the fraction of the dense latency), best (or None), measured latency and
    config file."""
    rows, budgets = [], searcher.budgets
    fractions = budgets.fractions
    for i, (name, edge, best) in enumerate(zip(budgets.texts()[0], budgets.edges, searcher.bests)):
        row = dict(budget=edge, name=name, fraction=None if fractions is None else fractions[i],
                   band=budgets.label(i), latency=None, measured_ms=None, metric=None, config=None, step=None,
                   config_file=None)
        if best is not None:
            row.update(latency=best['latency'], measured_ms=measured[genes_key(best['config'])],
                       metric=best['metric'], config=best['config'], step=best['step'],
                       config_file=files.budget_config(name), extra=best['extra'])
        rows.append(row)
    return rows


def write_results(args, files: SearchFiles, searcher: SearchBase, summary: dict, measured: Dict[str, float],
                  metric_name: str) -> None:
    """Rank 0: the final log lines, the ready-to-train config(s), the front and the plot."""
    shape = f'batch {args.batch_size} at {args.img_size}x{args.img_size}'
    if len(searcher.budgets) == 1:
        best, confirmed = summary['best'], summary['measured_latency_ms']
        files.log_line(f"final best: step {best['step']} | {metric_name} {best['metric']:.2f} | latency "
                       f"{best['latency']:.2f} ms, measured {confirmed:.2f} ms")
        comment = (f"Found by tools/search.py: {metric_name} {best['metric']:.2f}, backbone latency {confirmed:.2f} ms "
                   f'measured ({searcher.budgets.describe()}, {shape}).\n'
                   'Search log (genes: one ratio per W-MSA/SW-MSA block pair):')
        files.write_config(files.best_config, best['config'], searcher.depths, args.config, args.checkpoint, comment)
    else:
        for row in summary['budgets']:
            if row['latency'] is None:
                files.log_line(f"final budget {row['band']}: no candidate found")
                continue
            files.log_line(f"final budget {row['band']}: step {row['step']} | {metric_name} {row['metric']:.2f} | "
                           f"latency {row['latency']:.2f} ms, measured {row['measured_ms']:.2f} ms")
            comment = (f"Found by tools/search.py --budgets: {metric_name} {row['metric']:.2f}, backbone latency "
                       f"{row['measured_ms']:.2f} ms measured (budget {row['band']}, {shape}).\n"
                       'Search log (genes: one ratio per W-MSA/SW-MSA block pair):')
            files.write_config(row['config_file'], row['config'], searcher.depths, args.config, args.checkpoint,
                               comment)
        files.write_front(summary['budgets'], metric_name)
    files.plot_history(searcher.history, searcher.bests, searcher.budgets.edges, searcher.budgets.min, metric_name)


def report(summary: dict, files: SearchFiles, searcher: SearchBase, log) -> None:
    """Print the result, the table check and the costs (rank 0)."""
    metric = summary['metric']
    log(f"{summary['steps']} steps: {summary['evaluated']} configurations evaluated, {summary['scored']} scored, "
        f"{summary['cached_steps']} cached steps, {summary['infeasible_steps']} infeasible steps")
    if 'best' in summary:
        best = summary['best']
        fraction = (f" = {summary['measured_fraction']:.3g}x of dense measured now" if 'measured_fraction' in summary
                    else '')
        log(f"best {metric} {best['metric']:.2f} at {best['latency']:.2f} ms ({summary['latency']}), "
            f"{summary['measured_latency_ms']:.2f} ms measured now{fraction}"
            + ('' if summary['measured_in_band'] else ' (OUTSIDE the band: widen it or rebuild the table)'))
    for row in summary.get('budgets', []):
        if row['latency'] is None:
            log(f"best in budget {row['band']}: none found")
        else:
            inside = row['measured_in_budgets']
            log(f"best in budget {row['band']}: {metric} {row['metric']:.2f} at {row['latency']:.2f} ms, "
                f"{row['measured_ms']:.2f} ms measured now"
                + (f" = {row['measured_fraction']:.3g}x of dense measured now" if 'measured_fraction' in row else '')
                + ('' if inside else ' (outside the budgets)'))
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
    paths = [files.log, files.history, files.state, files.summary, files.plot]
    if 'best' in summary:
        paths.append(files.best_config)
    else:
        paths += [files.front_md, files.front_json]
        paths += [row['config_file'] for row in summary['budgets'] if row['config_file']]
    for path in paths:
        log(f'wrote {path}')


def _ms(seconds: Optional[float]) -> str:
    return '-' if seconds is None else f'{1000 * seconds:.3f} ms'
