"""Latency-constrained evolutionary search of SparseViT's layer-wise sparsity (the original's search step).

    torchpack dist-run -np 8 python tools/search.py configs/sparsevit/mask_rcnn_sparsevit.py \\
        mask_rcnn_sparsevit_saa.pth --max 42 --min 37

also with ``-np 1`` or as plain ``python tools/search.py ...`` (one process), on GPUs (nccl) or CPU (gloo).
Finds the configuration (one pruning ratio per W-MSA/SW-MSA block pair) with the best bbox mAP among those whose
backbone latency (batch ``--batch-size`` at ``--img_size``) lies in ``[--min, --max]`` ms. Every rank runs the same
seeded search in lockstep; the test images of each candidate are sharded over the ranks.

Latency: measured per candidate like ``tools/measure_latency.py`` (on GPUs the ranks split the timed runs; on CPU
rank 0 times alone with every core while the others wait), or, with ``--latency-table PATH``, predicted from an
additive per-stage table (built once and saved there, loaded afterwards), checked against real measurements at
the end. Outputs (see ``sparsevit/search/outputs.py``) go to ``--work-dir``: the original's log
``search_max{MAX}_min{MIN}.txt``, a JSONL history, a state file for ``--resume``, a summary, a PNG and the best
configuration as a ready-to-train config ``sparsevit_max{MAX}_min{MIN}.py``.
"""
import argparse
import logging
import os.path as osp
import random
import sys
import time
import warnings
from typing import Callable, Dict, List, Optional

# import-time notices of torch/mmcv that would bury a one-line error message
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)
warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV will release v2.0.0')

import torch  # noqa: E402
from mmcv import Config, DictAction  # noqa: E402
from tqdm import tqdm  # noqa: E402

from sparsevit.schedule import dense_genes, genes_key, genes_to_ratios, sparsest_genes  # noqa: E402
from sparsevit.search import EvolutionSearcher, LatencyTable, build_latency_table, table_key  # noqa: E402
from sparsevit.search.outputs import SearchFiles  # noqa: E402
from sparsevit.utils import dist  # noqa: E402
from sparsevit.utils.config import apply_sparsevit_cfg, get_sparse_backbone  # noqa: E402
from sparsevit.utils.latency import measure_backbone_latency, resolve_device, trimmed_mean  # noqa: E402

PROG = 'search.py'


class Milliseconds(float):
    """A latency argument that remembers how it was typed: the outputs are named with it, as the original's
    (``--max 42 --min 37`` -> ``search_max42_min37.txt``)."""

    def __new__(cls, text: str) -> 'Milliseconds':
        value = super().__new__(cls, text)
        value.text = text.strip()
        return value


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line (no usage dump) and exits 2."""

    def error(self, message: str):
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description='Latency-constrained evolutionary search of SparseViT sparsity.')
    p.add_argument('config', help='search config, e.g. configs/sparsevit/mask_rcnn_sparsevit.py')
    p.add_argument('checkpoint', help='the Sparsity-Aware Adaptation checkpoint')
    p.add_argument('--max', type=Milliseconds, required=True, help='upper end of the latency band (ms)')
    p.add_argument('--min', type=Milliseconds, default=Milliseconds('0'),
                   help='lower end of the latency band (ms, default: 0)')
    p.add_argument('--work-dir', default='work_dirs/', help='output directory (default: work_dirs/)')
    p.add_argument('--iters', type=int, default=10000, help='evolution iterations (default: 10000, as the original)')
    p.add_argument('--population', type=int, default=100, help='feasible candidates per iteration (default: 100)')
    p.add_argument('--parents', type=int, default=25, help='top candidates kept as parents (default: 25)')
    p.add_argument('--mutation-prob', type=float, default=0.1, help='per-gene resampling probability (default: 0.1)')
    p.add_argument('--seed', type=int, default=0, help='seed of the search and of the --num-images subset')
    p.add_argument('--num-images', type=int, default=None,
                   help='score on a fixed seeded subset of this many test images (default: the whole test set)')
    p.add_argument('--img_size', '--img-size', dest='img_size', type=int, default=672,
                   help='square input of the latency measurement (default: 672)')
    p.add_argument('--batch-size', '--batch_size', dest='batch_size', type=int, default=4,
                   help='batch of the latency measurement (default: 4)')
    p.add_argument('--num-warmup', type=int, default=10, help='untimed forwards per measurement (default: 10)')
    p.add_argument('--num-repeats', type=int, default=50, help='timed forwards per measurement (default: 50)')
    p.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto', help='default: cuda if available')
    p.add_argument('--latency-table', default=None, metavar='PATH',
                   help='predict latency from an additive per-stage table: built and saved at PATH if missing')
    p.add_argument('--check-configs', type=int, default=5,
                   help='with a table: random evaluated configs measured to check it, besides dense, sparsest and '
                   'best (default: 5)')
    p.add_argument('--max-retries', type=int, default=1000,
                   help='rejected draws (duplicate or outside the band) in a row before giving up (default: 1000)')
    p.add_argument('--eval', nargs='+', choices=('bbox', 'segm'), default=['bbox'],
                   help='COCO metrics; the search maximises the mAP of the first (default: bbox)')
    p.add_argument('--resume', action='store_true', help='continue the search saved in --work-dir')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (key=value)')
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Raise ValueError naming the first bad argument and what is allowed."""
    rules = [
        (args.max > 0, f'--max must be a positive latency in ms, got {args.max:g}'),
        (args.min >= 0, f'--min must be >= 0 ms, got {args.min:g}'),
        (args.min <= args.max, f'--min {args.min:g} is above --max {args.max:g}; the band needs min <= max'),
        (args.iters >= 0, f'--iters must be >= 0, got {args.iters}'),
        (args.population >= 2, f'--population must be >= 2, got {args.population}'),
        (1 <= args.parents < args.population,
         f'--parents must be in [1, --population - 1] = [1, {args.population - 1}], got {args.parents}'),
        (0 <= args.mutation_prob <= 1, f'--mutation-prob must be in [0, 1], got {args.mutation_prob:g}'),
        (args.num_images is None or args.num_images >= 1, f'--num-images must be >= 1, got {args.num_images}'),
        (args.img_size > 0, f'--img_size must be positive, got {args.img_size}'),
        (args.batch_size > 0, f'--batch-size must be positive, got {args.batch_size}'),
        (args.num_warmup >= 0, f'--num-warmup must be >= 0, got {args.num_warmup}'),
        (args.num_repeats >= 1, f'--num-repeats must be >= 1, got {args.num_repeats}'),
        (args.check_configs >= 0, f'--check-configs must be >= 0, got {args.check_configs}'),
        (args.max_retries >= 1, f'--max-retries must be >= 1, got {args.max_retries}'),
        (osp.isfile(args.config), f'config file not found: {args.config}'),
        (osp.isfile(args.checkpoint), f'checkpoint not found: {args.checkpoint}'),
    ]
    for ok, message in rules:
        if not ok:
            raise ValueError(message)
    resolve_device(args.device)


# ---------------------------------------------------------------------------------------------------- set-up
def load_config(args: argparse.Namespace) -> Config:
    """The config with ``--cfg-options``, the plugin imported, SparseViT keys applied, ready for testing."""
    from mmcv.utils import import_modules_from_strings
    from mmdet.datasets import replace_ImageToTensor
    from mmdet.utils import compat_cfg
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
    from mmcv.runner import load_checkpoint, wrap_fp16_model
    from mmdet.datasets import build_dataset
    from mmdet.models import build_detector
    dataset = build_dataset(cfg.data.test)
    model = build_detector(cfg.model, test_cfg=cfg.get('test_cfg'))
    if cfg.get('fp16') is not None and device.type == 'cuda':
        wrap_fp16_model(model)
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.CLASSES = ckpt.get('meta', {}).get('CLASSES', dataset.CLASSES)
    return model.to(device).eval(), dataset


def build_evaluator(cfg: Config, model, dataset, args: argparse.Namespace, device: torch.device):
    from sparsevit.search.evaluator import DetectorEvaluator
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
    timed = torch.nn.Sequential(backbone)  # keeps `.to().eval()` chains working: mmdet Swin's train() returns None

    def measure(genes: dict) -> float:
        backbone.set_pruning_ratios(genes_to_ratios(genes, backbone.depths))
        settings = dict(img_size=args.img_size, batch_size=args.batch_size, num_warmup=args.num_warmup,
                        device=device)
        if device.type == 'cuda' and dist.world_size() > 1:
            share = len(range(dist.rank(), args.num_repeats, dist.world_size()))
            times = measure_backbone_latency(timed, num_repeats=share, **settings)['times_ms'] if share else []
            return trimmed_mean(sum(dist.all_gather_objects(times), []))
        latency = None
        if dist.is_master():
            with dist.full_threads():
                latency = measure_backbone_latency(timed, num_repeats=args.num_repeats, **settings)['latency_ms']
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


def precheck_band(depths, measure: Callable, measured: Dict[str, float], args: argparse.Namespace) -> None:
    """Dense and sparsest latency vs the band, measured directly: runs before a (long) table build."""
    def cached(genes: dict) -> float:
        measured[genes_key(genes)] = measure(genes)
        return measured[genes_key(genes)]

    EvolutionSearcher(depths, cached, lambda genes: 0.0, args.max, args.min, 2, 1).check_band()


def check_table(table: LatencyTable, measure: Callable, searcher: EvolutionSearcher, measured: Dict[str, float],
                num_random: int, seed: int) -> List[dict]:
    """Predicted vs measured latency on dense, sparsest, best and ``num_random`` evaluated configurations."""
    depths = searcher.depths
    configs = [dense_genes(depths), sparsest_genes(depths, searcher.choices), searcher.best['config']]
    others = [r['config'] for r in searcher.history]
    configs += random.Random(seed).sample(others, min(num_random, len(others)))
    rows, done = [], set()
    for genes in configs:
        key = genes_key(genes)
        if key in done:
            continue
        done.add(key)
        real = measured[key] if key in measured else measure(genes)
        predicted = table.predict(genes)
        rows.append(dict(config=genes, predicted_ms=predicted, measured_ms=real,
                         error_pct=100.0 * (predicted - real) / real))
    return rows


def run(args: argparse.Namespace) -> dict:
    """The whole search; returns the summary (on every rank)."""
    check_args(args)
    use_cuda = args.device == 'cuda' or (args.device == 'auto' and torch.cuda.is_available())
    device = dist.init_dist(use_cuda)
    log = (lambda msg: tqdm.write(f'[search] {msg}', file=sys.stdout)) if dist.is_master() else (lambda msg: None)
    cfg = load_config(args)
    model, dataset = build_model(cfg, args.checkpoint, device)
    backbone = get_sparse_backbone(model)
    files = SearchFiles(args.work_dir, args.max.text, args.min.text)
    measure, measured = Meter(make_measure(backbone, args, device)), {}
    table_missing = bool(args.latency_table) and not osp.isfile(args.latency_table)
    if table_missing:  # a band no configuration meets fails before the (long) table build
        precheck_band(backbone.depths, measure, measured, args)
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
        files.start(f'{PROG} {args.config} {args.checkpoint} --max {args.max:g} --min {args.min:g}\n'
                    f"latency: {settings['latency']}; dense {dense_ms:.2f} ms, sparsest {sparsest_ms:.2f} ms; "
                    f'metric: {metric_name}')
        files.write_state(dict(searcher.state_dict(), tool=settings))
    best = searcher.run(args.iters, on_iteration=recorder.on_iteration)
    bar.close()
    if best is None:
        raise ValueError('the search evaluated no configuration inside the band')
    costs = dict(latency=latency, measure=measure, score=score)
    return finish(args, files, searcher, best, table, costs, measured, metric_name, log)


def finish(args: argparse.Namespace, files: SearchFiles, searcher: EvolutionSearcher, best: dict,
           table: Optional[LatencyTable], costs: Dict[str, Meter], measured: Dict[str, float], metric_name: str,
           log) -> dict:
    """Confirm the best by a real measurement, check the table, write the summary, plot and best config."""
    confirmed = costs['measure'](best['config'])
    measured = {**measured, genes_key(best['config']): confirmed}
    rows = check_table(table, costs['measure'], searcher, measured, args.check_configs, args.seed) if table else []
    errors = [abs(r['error_pct']) for r in rows]
    summary = dict(
        best=best, metric=metric_name, measured_latency_ms=confirmed, measured_in_band=searcher.feasible(confirmed),
        iterations=searcher.iteration, evaluated=len(searcher.history),
        scored=sum(r['feasible'] for r in searcher.history), exhausted=searcher.exhausted,
        world_size=dist.world_size(), latency='table' if table else 'measured',
        cost_s={**{f'{k}_per_call': m.mean() for k, m in costs.items()},
                **{f'{k}_calls': m.calls for k, m in costs.items()}},
        table_check=rows, table_max_abs_error_pct=max(errors) if errors else None,
        table_mean_abs_error_pct=sum(errors) / len(errors) if errors else None)
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
    for row in summary['table_check']:
        log(f"table check: predicted {row['predicted_ms']:.2f} ms, measured {row['measured_ms']:.2f} ms, error "
            f"{row['error_pct']:+.1f} %")
    if summary['table_check']:
        log(f"table error: mean {summary['table_mean_abs_error_pct']:.1f} %, max "
            f"{summary['table_max_abs_error_pct']:.1f} %")
    log(f"cost per call: latency {_ms(cost['latency_per_call'])} ({summary['latency']}), real measurement "
        f"{_ms(cost['measure_per_call'])}, score {_ms(cost['score_per_call'])}")
    for path in (files.log, files.history, files.state, files.summary, files.plot, files.best_config):
        log(f'wrote {path}')


def _ms(seconds: Optional[float]) -> str:
    return '-' if seconds is None else f'{1000 * seconds:.3f} ms'


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (ValueError, OSError, dist.DistError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f'{PROG}: error: {message}', file=sys.stderr, flush=True)
        return 1
    dist.destroy_dist()
    return 0


if __name__ == '__main__':
    sys.exit(main())
