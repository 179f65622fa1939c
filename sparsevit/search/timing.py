"""Latency of the search's candidates: measured (a collective over the ranks) or from the latency table, and the
end-of-run check of the table against real measurements.

Measured latency follows the original's protocol on CUDA: every rank times ``num_warmup`` + ``num_repeats``
forwards on its own GPU (200 + 300 by default), the samples of all ranks are gathered and the trimmed mean is taken
over all of them. (The original meant this; its aggregation drops whole ranks and gives NaN below 4 ranks.) On
CPU all ranks share the cores, so rank 0 times alone with every core (a short protocol by default, with a progress
bar) while the others wait, and broadcasts the result.
"""
import argparse
import os.path as osp
import random
import sys
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import torch
from tqdm import tqdm

from ..schedule import Genes, genes_key, genes_to_ratios
from ..utils import dist
from ..utils.latency import default_protocol, measure_backbone_latency, trimmed_mean
from .latency_table import LatencyTable, build_latency_table, calibrate_table, table_key


def latency_protocol(args: argparse.Namespace, device: torch.device) -> str:
    """Resolve ``--num-warmup/--num-repeats`` (None: the device's default) in ``args``; describe the protocol."""
    warmup, repeats, text = default_protocol('search', device, args.num_warmup, args.num_repeats)
    args.num_warmup, args.num_repeats = warmup, repeats
    if device.type == 'cuda':
        return f'{text}, per rank; the samples of all {dist.world_size()} rank(s) gathered'
    return f'{text}, on rank 0 with every core while the other ranks wait'


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


def make_measure(backbone, args: argparse.Namespace, device: torch.device) -> Callable[[Genes], float]:
    """Real latency of a configuration, the same value on every rank (a collective: every rank calls it)."""
    def measure(genes: Genes) -> float:
        backbone.set_pruning_ratios(genes_to_ratios(genes, backbone.depths))
        settings = dict(img_size=args.img_size, batch_size=args.batch_size, num_warmup=args.num_warmup,
                        num_repeats=args.num_repeats, device=device)
        if device.type == 'cuda':
            times = measure_backbone_latency(backbone, **settings)['times_ms']
            return trimmed_mean(sum(dist.all_gather_objects(times), []))
        latency = None
        if dist.is_master():
            with dist.full_threads():
                bar = tqdm(total=args.num_repeats, desc='latency', unit='forward', leave=False, file=sys.stderr,
                           disable=args.no_progress)
                latency = measure_backbone_latency(backbone, progress=lambda _: bar.update(), **settings)
                bar.close()
            latency = latency['latency_ms']
        return dist.broadcast_object(latency)
    return measure


def load_or_build_table(backbone, args: argparse.Namespace, device: torch.device, measure: Callable, log
                        ) -> LatencyTable:
    """The latency table at ``--latency-table``: loaded by rank 0 if present (a stale one is rejected), built,
    calibrated and saved otherwise; every rank receives it."""
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
        return LatencyTable.from_dict(found)
    return build_table(backbone, args, device, measure, log)


def build_table(backbone, args: argparse.Namespace, device: torch.device, measure: Callable, log) -> LatencyTable:
    """Measure the table (GPU ranks share the entries; on CPU rank 0 measures alone), calibrate it with full
    forwards of ``--calibration-configs`` configurations, save it on rank 0."""
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
    table = LatencyTable.from_dict(dist.broadcast_object(data))
    if args.calibration_configs > 0:
        table = calibrate_table(table, measure, args.calibration_configs, seed=args.seed)
        cal = table.calibration
        log(f"latency table: calibrated with {len(cal['configs'])} full forwards: measured = "
            f"{cal['offset_ms']:.3f} ms + {cal['scale']:.4f} x additive (fit error: mean "
            f"{cal['fit_mean_abs_error_pct']:.1f} %, max {cal['fit_max_abs_error_pct']:.1f} %)")
    table.meta['build_seconds'] = time.perf_counter() - start
    if dist.is_master():
        table.save(args.latency_table)
    log(f"latency table: {sum(len(s) for s in table.stages)} entries built in {table.meta['build_seconds']:.1f} s")
    return table


def check_table(table: LatencyTable, measure: Callable, configs: Sequence[Genes], measured: Mapping[str, float]
                ) -> dict:
    """Predicted vs measured latency of ``configs`` (dense first), all measured now (``measured`` holds those
    already measured now, by configuration key).

    ``speed_ratio`` (measured / predicted dense latency) tells how much the machine's speed changed since the table
    was built; ``rescaled_error_pct`` removes that common factor, leaving the table's own error.
    """
    rows, done = [], set()
    for genes in configs:
        key = genes_key(genes)
        if key not in done:
            done.add(key)
            real = measured[key] if key in measured else measure(genes)
            rows.append(dict(config=dict(genes), predicted_ms=table.predict(genes), measured_ms=real))
    ratio = rows[0]['measured_ms'] / rows[0]['predicted_ms']
    for row in rows:
        row['error_pct'] = 100.0 * (row['predicted_ms'] - row['measured_ms']) / row['measured_ms']
        row['rescaled_error_pct'] = 100.0 * (row['predicted_ms'] * ratio - row['measured_ms']) / row['measured_ms']
    return dict(rows=rows, speed_ratio=ratio, **_abs_stats('error_pct', rows),
                **_abs_stats('rescaled_error_pct', rows))


def check_configs(fixed: Sequence[Genes], history: Sequence[Mapping], num_random: int, seed: int) -> List[Genes]:
    """The configurations of the table check: ``fixed`` (dense first) and ``num_random`` distinct evaluated ones."""
    seen = {genes_key(g) for g in fixed}
    others: Dict[str, Genes] = {}
    for r in history:
        others.setdefault(genes_key(r['config']), r['config'])
    pool = [g for k, g in others.items() if k not in seen]
    return list(fixed) + random.Random(seed).sample(pool, min(num_random, len(pool)))


def _abs_stats(key: str, rows: List[dict]) -> dict:
    errors = [abs(r[key]) for r in rows]
    return {f'mean_abs_{key}': sum(errors) / len(errors), f'max_abs_{key}': max(errors)}
