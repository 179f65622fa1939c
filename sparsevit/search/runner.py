"""The search step of ``tools/search.py``: set-up, latency (measured or from the table), evolution, outputs.

Every rank runs :func:`run_search` in lockstep: the searcher is seeded identically, latencies come from the table or
from a collective measurement (the same value on every rank), and scores are broadcast by the evaluator; rank 0
writes the files. ``args`` carries the tool's arguments (see ``tools/search.py --help``).
"""
import argparse
import os.path as osp
import random
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
from mmcv import Config
from mmcv.runner import _load_checkpoint, wrap_fp16_model
from mmcv.utils import import_modules_from_strings
from mmdet.datasets import build_dataset, replace_ImageToTensor
from mmdet.models import build_detector
from mmdet.utils import compat_cfg
from tqdm import tqdm

from ..schedule import dense_genes, genes_key, genes_to_ratios, sparsest_genes
from ..utils import dist
from ..utils.config import apply_sparsevit_cfg, get_sparse_backbone
from ..utils.latency import measure_backbone_latency, trimmed_mean
from .evaluator import DetectorEvaluator
from .evolution import EvolutionSearcher
from .latency_table import LatencyTable, build_latency_table, table_key
from .outputs import SearchFiles

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
    """The detector with the checkpoint's weights on ``device`` (eval), and the test dataset."""
    dataset = build_dataset(cfg.data.test)
    model = build_detector(cfg.model, test_cfg=cfg.get('test_cfg'))
    if cfg.get('fp16') is not None and device.type == 'cuda':
        wrap_fp16_model(model)
    ckpt = load_weights(model, checkpoint)
    model.CLASSES = ckpt.get('meta', {}).get('CLASSES', dataset.CLASSES)
    return model.to(device).eval(), dataset


def load_weights(model: torch.nn.Module, checkpoint: str) -> dict:
    """Load a detector checkpoint; ValueError if it cannot be read or lacks weights of the model (a search on
    partly random weights would be meaningless). Extra weights in the checkpoint are ignored."""
    try:
        ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    except Exception as err:  # torch.load raises many types for a bad file
        raise ValueError(f'cannot read checkpoint {checkpoint}: {type(err).__name__} {err}') from err
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'checkpoint {checkpoint} holds no state_dict')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    try:
        missing, _ = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        detail = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise ValueError(f"checkpoint {checkpoint} does not fit the config's model: {detail}") from err
    if missing:
        raise ValueError(f"checkpoint {checkpoint} does not fit the config's model: {len(missing)} weights "
                         f'missing, e.g. {missing[:3]}')
    return ckpt


def build_evaluator(cfg: Config, model, dataset, args: argparse.Namespace, device: torch.device
                    ) -> DetectorEvaluator:
    """The score: ``--eval`` metrics on (a ``--num-images`` subset of) the test set, with the config's loader."""
    loader = cfg.data.test_dataloader
    eval_kwargs = dict(cfg.get('evaluation', {}))
    for key in ('interval', 'tmpdir', 'start', 'gpu_collect', 'save_best', 'rule', 'dynamic_intervals', 'metric'):
        eval_kwargs.pop(key, None)
    return DetectorEvaluator(model, dataset, args.eval, args.num_images, args.seed, loader['samples_per_gpu'],
                             loader['workers_per_gpu'], eval_kwargs, device)


# ---------------------------------------------------------------------------------------------------- latency
class Meter:
    """Wraps a callable, counting its calls and their wall time (for the cost-per-candidate report)."""

    def __init__(self, fn: Callable):
        self.fn, self.calls, self.seconds = fn, 0, 0.0

    def __call__(self, *args):
        start = time.perf_counter()
        out = self.fn(*args)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out

    def mean(self) -> Optional[float]:
        return self.seconds / self.calls if self.calls else None


def make_measure(backbone, args: argparse.Namespace, device: torch.device) -> Callable[[dict], float]:
    """Real latency of a configuration on every rank (collective): GPU ranks split the timed runs; on CPU rank 0
    times alone with every core while the others wait."""
    def measure(genes: dict) -> float:
        backbone.set_pruning_ratios(genes_to_ratios(genes, backbone.depths))
        settings = dict(img_size=args.img_size, batch_size=args.batch_size, num_warmup=args.num_warmup,
                        device=device)
        if device.type == 'cuda' and dist.world_size() > 1:
            share = len(range(dist.rank(), args.num_repeats, dist.world_size()))
            times = measure_backbone_latency(backbone, num_repeats=share, **settings)['times_ms'] if share else []
            return trimmed_mean(sum(dist.all_gather_objects(times), []))
        latency = None
        if dist.is_master():
            with dist.full_threads():
                latency = measure_backbone_latency(backbone, num_repeats=args.num_repeats, **settings)['latency_ms']
        return dist.broadcast_object(latency)
    return measure


def load_or_build_table(backbone, args: argparse.Namespace, device: torch.device, log) -> LatencyTable:
    """The latency table at ``--latency-table``: loaded by rank 0 if present (a stale one is rejected), built and
    saved otherwise; every rank receives it."""
    with dist.full_threads():
        key = table_key(backbone, args.img_size, args.batch_size, device)
    found = None
    if dist.is_master() and osp.isfile(args.latency_table):
        try:
            found = LatencyTable.load(args.latency_table, expected_key=key).to_dict()
        except ValueError as err:
            found = str(err)
    found = dist.broadcast_object(found)
    if isinstance(found, str):
        raise ValueError(found)
    if found is not None:
        log(f'latency table: loaded {args.latency_table}')
        return LatencyTable(found['key'], found['fixed_ms'], found['stages'], found['meta'])
    return build_table(backbone, args, device, log)


def build_table(backbone, args: argparse.Namespace, device: torch.device, log) -> LatencyTable:
    """Measure the table (GPU ranks share the entries; on CPU rank 0 measures alone), save it on rank 0."""
    log(f'latency table: building {args.latency_table} (one measurement per stage configuration)')
    start = time.perf_counter()
    settings = dict(img_size=args.img_size, batch_size=args.batch_size, num_warmup=args.num_warmup,
                    num_repeats=args.num_repeats, device=device, seed=args.seed)
    data = None
    if device.type == 'cuda' and dist.world_size() > 1:
        data = build_latency_table(backbone, shard=(dist.rank(), dist.world_size()),
                                   gather=dist.all_gather_objects, **settings).to_dict()
    elif dist.is_master():
        with dist.full_threads():
            bar = tqdm(total=args.num_repeats, desc='latency table', unit='round', file=sys.stderr,
                       disable=args.no_progress)
            data = build_latency_table(backbone, progress=lambda _: bar.update(), **settings).to_dict()
            bar.close()
    data = dist.broadcast_object(data)
    seconds = time.perf_counter() - start
    table = LatencyTable(data['key'], data['fixed_ms'], data['stages'], {**data['meta'], 'build_seconds': seconds})
    if dist.is_master():
        table.save(args.latency_table)
    log(f'latency table: {sum(len(s) for s in table.stages)} entries built in {seconds:.1f} s')
    return table


# ---------------------------------------------------------------------------------------------------- search
class Recorder:
    """The searcher's callbacks: history, the log of improvements, state and progress bar (files on rank 0)."""

    def __init__(self, files: SearchFiles, metric_name: str, tool_settings: dict, bar: tqdm):
        self.files, self.metric_name, self.tool_settings, self.bar = files, metric_name, tool_settings, bar
        self.searcher: Optional[EvolutionSearcher] = None

    def on_record(self, record: dict, replayed: bool) -> None:
        if not dist.is_master() or replayed:  # a replayed record is already in the files
            return
        self.files.append_record(record)
        best = self.searcher.best
        if record is best:
            self.files.log_best(record, self.metric_name)
        self.bar.set_postfix(best=f"{best['metric']:.4f}" if best else '-', evaluated=record['index'] + 1)

    def on_iteration(self, searcher: EvolutionSearcher) -> None:
        if dist.is_master():
            self.files.write_state(dict(searcher.state_dict(), tool=self.tool_settings))
            self.bar.update(searcher.iteration - self.bar.n)


def tool_settings(args: argparse.Namespace, table: Optional[LatencyTable]) -> dict:
    """What must match for ``--resume`` besides the searcher's own settings."""
    return dict(config=osp.abspath(args.config), checkpoint=osp.abspath(args.checkpoint), eval=args.eval,
                num_images=args.num_images, img_size=args.img_size, batch_size=args.batch_size,
                latency='table' if table is not None else 'measured', table_key=table.key if table else None)


def restore(searcher: EvolutionSearcher, files: SearchFiles, settings: dict, log) -> None:
    """Load the saved state and history (rank 0 reads, every rank receives) into the searcher."""
    saved = None
    if dist.is_master():
        try:
            saved = (files.read_state(), files.read_history(repair=True))
        except ValueError as err:
            saved = str(err)
    saved = dist.broadcast_object(saved)
    if isinstance(saved, str):
        raise ValueError(saved)
    state, history = saved
    diff = [k for k, v in settings.items() if state.get('tool', {}).get(k) != v]
    if diff:
        raise ValueError(f'--resume: the saved search differs in {", ".join(diff)}; use the same arguments or '
                         f'another --work-dir')
    searcher.load_state_dict(state, history)
    log(f'resumed at iteration {searcher.iteration}: {state["num_records"]} records, '
        f'{len(history) - state["num_records"]} to replay')


def precheck_band(depths, measure: Callable, args: argparse.Namespace) -> None:
    """Dense and sparsest latency vs the band, measured directly: runs before a (long) table build."""
    EvolutionSearcher(depths, measure, lambda genes: 0.0, args.max, args.min, 2, 1).check_band()


def check_table(table: LatencyTable, measure: Callable, searcher: EvolutionSearcher, measured: Dict[str, float],
                num_random: int, seed: int) -> dict:
    """Predicted vs measured latency on dense, sparsest, best and ``num_random`` evaluated configurations.

    All are measured now (``measured`` holds the ones already measured now). ``speed_ratio`` (measured / predicted
    dense latency) tells how much the machine's speed changed since the table was built; ``rescaled_error_pct``
    removes that common factor, leaving the table's own (additivity) error.
    """
    depths = searcher.depths
    configs = [dense_genes(depths), sparsest_genes(depths, searcher.choices), searcher.best['config']]
    others = [r['config'] for r in searcher.history]
    configs += random.Random(seed).sample(others, min(num_random, len(others)))
    rows, done = [], set()
    for genes in configs:
        key = genes_key(genes)
        if key not in done:
            done.add(key)
            real = measured[key] if key in measured else measure(genes)
            rows.append(dict(config=genes, predicted_ms=table.predict(genes), measured_ms=real))
    ratio = rows[0]['measured_ms'] / rows[0]['predicted_ms']
    for row in rows:
        row['error_pct'] = 100.0 * (row['predicted_ms'] - row['measured_ms']) / row['measured_ms']
        row['rescaled_error_pct'] = 100.0 * (row['predicted_ms'] * ratio - row['measured_ms']) / row['measured_ms']
    return dict(rows=rows, speed_ratio=ratio, **_abs_stats('error_pct', rows), **_abs_stats('rescaled_error_pct', rows))


def _abs_stats(key: str, rows: List[dict]) -> dict:
    errors = [abs(r[key]) for r in rows]
    return {f'mean_abs_{key}': sum(errors) / len(errors), f'max_abs_{key}': max(errors)}


def run_search(args: argparse.Namespace) -> dict:
    """The whole search for the arguments of ``tools/search.py`` (validated); returns the summary (every rank)."""
    use_cuda = args.device == 'cuda' or (args.device == 'auto' and torch.cuda.is_available())
    device = dist.init_dist(use_cuda)
    log = (lambda msg: tqdm.write(f'[search] {msg}', file=sys.stdout)) if dist.is_master() else (lambda msg: None)
    cfg = load_config(args)
    model, dataset = build_model(cfg, args.checkpoint, device)
    backbone = get_sparse_backbone(model)
    files = SearchFiles(args.work_dir, _typed(args.max), _typed(args.min))
    measure = Meter(make_measure(backbone, args, device))
    table_missing = bool(args.latency_table) and not osp.isfile(args.latency_table)
    if table_missing:  # a band no configuration meets fails before the (long) table build
        precheck_band(backbone.depths, measure, args)
    table = load_or_build_table(backbone, args, device, log) if args.latency_table else None
    latency = Meter(table.predict if table is not None else measure)
    evaluator = build_evaluator(cfg, model, dataset, args, device)
    score, metric_name = Meter(evaluator), f'{args.eval[0]}_mAP'
    settings = tool_settings(args, table)
    bar = tqdm(total=args.iters, desc='search', unit='iter', file=sys.stderr,
               disable=args.no_progress or not dist.is_master())
    recorder = Recorder(files, metric_name, settings, bar)
    searcher = EvolutionSearcher(backbone.depths, latency, score, args.max, args.min, args.population, args.parents,
                                 args.mutation_prob, seed=args.seed, max_retries=args.max_retries,
                                 on_record=recorder.on_record)
    recorder.searcher = searcher
    dense_ms, sparsest_ms = searcher.check_band()
    log(f"band [{args.min:g}, {args.max:g}] ms; dense {dense_ms:.2f} ms, sparsest {sparsest_ms:.2f} ms "
        f"({settings['latency']}); {dist.world_size()} process(es); scoring {evaluator.num_images} images")
    if args.resume:
        restore(searcher, files, settings, log)
        bar.update(max(searcher.iteration, 0))
    elif dist.is_master():
        files.start(f'{PROG} {args.config} {args.checkpoint} --max {_typed(args.max)} --min {_typed(args.min)}\n'
                    f"latency: {settings['latency']}; dense {dense_ms:.2f} ms, sparsest {sparsest_ms:.2f} ms; "
                    f'metric: {metric_name}')
        files.write_state(dict(searcher.state_dict(), tool=settings))
    best = searcher.run(args.iters, on_iteration=recorder.on_iteration)
    bar.close()
    if best is None:
        raise ValueError('the search evaluated no configuration inside the band')
    costs = dict(latency=latency, measure=measure, score=score)
    return finish(args, files, searcher, best, table, costs, metric_name, log)


def finish(args: argparse.Namespace, files: SearchFiles, searcher: EvolutionSearcher, best: dict,
           table: Optional[LatencyTable], costs: Dict[str, Meter], metric_name: str, log) -> dict:
    """Confirm the best by a real measurement, check the table, write the summary, plot and best config."""
    confirmed = costs['measure'](best['config'])
    measured = {genes_key(best['config']): confirmed}  # the check compares measurements taken now
    check = check_table(table, costs['measure'], searcher, measured, args.check_configs, args.seed) if table else None
    summary = dict(
        best=best, metric=metric_name, measured_latency_ms=confirmed, measured_in_band=searcher.feasible(confirmed),
        iterations=searcher.iteration, evaluated=len(searcher.history),
        scored=sum(r['feasible'] for r in searcher.history), exhausted=searcher.exhausted,
        world_size=dist.world_size(), latency='table' if table else 'measured',
        cost_s={**{f'{k}_per_call': m.mean() for k, m in costs.items()},
                **{f'{k}_calls': m.calls for k, m in costs.items()}},
        table_check=check)
    if dist.is_master():
        files.write_summary(summary)
        files.log_line(f"final best: iter {best['iteration']} | {metric_name} {best['metric']:.4f} | latency "
                       f"{best['latency']:.2f} ms, measured {confirmed:.2f} ms")
        comment = (f"Found by tools/search.py: {metric_name} {best['metric']:.4f}, backbone latency "
                   f'{confirmed:.2f} ms measured (band [{args.min:g}, {args.max:g}] ms, batch {args.batch_size} at '
                   f'{args.img_size}x{args.img_size}).\nSearch log (genes: one ratio per W-MSA/SW-MSA block pair):')
        files.write_best_config(best['config'], searcher.depths, args.config, args.checkpoint, comment)
        files.plot_history(searcher.history, best, args.min, args.max, metric_name)
        report(summary, files, log)
    return summary


def report(summary: dict, files: SearchFiles, log) -> None:
    """Print the result, the table check and the costs (rank 0)."""
    best, cost = summary['best'], summary['cost_s']
    log(f"best {summary['metric']} {best['metric']:.4f} at {best['latency']:.2f} ms ({summary['latency']}), "
        f"{summary['measured_latency_ms']:.2f} ms measured now"
        + ('' if summary['measured_in_band'] else ' (OUTSIDE the band: widen it or rebuild the table)'))
    check = summary['table_check']
    for row in check['rows'] if check else []:
        log(f"table check: predicted {row['predicted_ms']:.2f} ms, measured {row['measured_ms']:.2f} ms, error "
            f"{row['error_pct']:+.1f} % ({row['rescaled_error_pct']:+.1f} % at the current machine speed)")
    if check:
        log(f"table error: mean {check['mean_abs_error_pct']:.1f} %, max {check['max_abs_error_pct']:.1f} %; the "
            f"machine runs the dense model at {100 * check['speed_ratio']:.0f} % of the table's time, and at that "
            f"speed: mean {check['mean_abs_rescaled_error_pct']:.1f} %, "
            f"max {check['max_abs_rescaled_error_pct']:.1f} %")
    log(f"cost per call: latency {_ms(cost['latency_per_call'])} ({summary['latency']}), real measurement "
        f"{_ms(cost['measure_per_call'])}, score {_ms(cost['score_per_call'])}")
    for path in (files.log, files.history, files.state, files.summary, files.plot, files.best_config):
        log(f'wrote {path}')


def _typed(latency) -> str:
    """A band limit as the user typed it (``tools/search.py`` keeps the text), else formatted."""
    return getattr(latency, 'text', None) or f'{latency:g}'


def _ms(seconds: Optional[float]) -> str:
    return '-' if seconds is None else f'{1000 * seconds:.3f} ms'
