"""Latency of the search's candidates: measured (a collective over the ranks) or from the latency table, and the
end-of-run check of the table against real measurements.

Measured latency follows the original's protocol on CUDA: every rank times ``num_warmup`` + ``num_repeats``
forwards on its own GPU (200 + 300 by default), the samples of all ranks are gathered and the trimmed mean is taken
over all of them. (The original meant this; its aggregation drops whole ranks and gives NaN below 4 ranks.) On
CPU all ranks share the cores, so rank 0 times alone with every core (a short protocol by default, with a progress
bar) while the others wait, and broadcasts the result. Several configurations (the table's calibration and
end-of-run check) are timed interleaved, round by round, so that a change of load hits them all alike.
"""
import dataclasses
import os.path as osp
import random
import sys
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

from ..schedule import DEFAULT_CHOICES, Genes, genes_key, genes_to_ratios
from ..utils import dist
from ..utils.latency import default_protocol, interleave, random_images, time_forwards, trimmed_mean
from .latency_table import (LatencyTable, build_latency_table, calibrate_table, describe_calibration,
                            forward_schedule, table_key, table_rounds)
from .settings import SearchSettings


def latency_protocol(settings: SearchSettings, device: torch.device) -> Tuple[SearchSettings, str]:
    """The settings with ``num_warmup`` / ``num_repeats`` resolved (None: the device's default), and the protocol
    described."""
    warmup, repeats, text = default_protocol('search', device, settings.num_warmup, settings.num_repeats)
    settings = dataclasses.replace(settings, num_warmup=warmup, num_repeats=repeats)
    if device.type == 'cuda':
        return settings, f'{text}, per rank; the samples of all {dist.world_size()} rank(s) gathered'
    return settings, f'{text}, on rank 0 with every core while the other ranks wait'


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


@torch.inference_mode()
def time_interleaved(backbone, configs: Sequence[Genes], img_size: int, batch_size: int, num_warmup: int,
                     num_repeats: int, device: torch.device, progress: Optional[Callable[[int], None]] = None,
                     seed: int = 0) -> List[List[float]]:
    """Full-forward times (ms) of several configurations, interleaved: ``num_warmup`` forwards of each, then
    ``num_repeats`` rounds of one timed forward of every configuration. A change of the machine's load then affects
    all configurations alike (a calibration or check measured one configuration after the other would fit the load
    instead). ``progress(round)`` is called after each round; the backbone's ratios are restored afterwards."""
    saved = backbone.pruning_ratios
    x = random_images(batch_size, img_size, device, seed)
    ratios = [genes_to_ratios(g, backbone.depths) for g in configs]

    def measure(i: int) -> float:
        backbone.set_pruning_ratios(ratios[i])
        return time_forwards(lambda: backbone(x), 1, device)[0]

    try:
        for r in ratios:  # the warm-up: every configuration's forwards in a row
            backbone.set_pruning_ratios(r)
            for _ in range(num_warmup):
                backbone(x)
        times = interleave(range(len(ratios)), num_repeats, measure, order='same', on_round=progress)
    finally:
        backbone.set_pruning_ratios([list(s) for s in saved])
    return [times[i] for i in range(len(ratios))]


class Measurer:
    """Real latency of configurations, the same values on every rank (collectives: every rank calls them).

    ``measurer(genes)`` measures one configuration (the search's candidates without a table); ``measurer.many(
    configs)`` measures several interleaved (:func:`time_interleaved`: the table's calibration and check), with
    the protocol of ``settings`` (resolved: :func:`latency_protocol`).
    """

    def __init__(self, backbone, settings: SearchSettings, device: torch.device):
        self.backbone, self.settings, self.device = backbone, settings, device

    def __call__(self, genes: Genes) -> float:
        return self.many([genes])[0]

    def many(self, configs: Sequence[Genes]) -> List[float]:
        s = self.settings
        protocol = dict(img_size=s.img_size, batch_size=s.batch_size, num_warmup=s.num_warmup,
                        num_repeats=s.num_repeats, device=self.device)
        if self.device.type == 'cuda':  # every rank times everything on its GPU; all samples are gathered
            times = time_interleaved(self.backbone, configs, **protocol)
            gathered = dist.all_gather_objects(times)
            return [trimmed_mean(sum((rank_times[i] for rank_times in gathered), [])) for i in range(len(configs))]
        latencies = None
        if dist.is_master():
            with dist.full_threads():
                bar = tqdm(total=s.num_repeats, desc='latency', unit='round', leave=False, file=sys.stderr,
                           disable=s.no_progress)
                times = time_interleaved(self.backbone, configs, progress=lambda _: bar.update(), **protocol)
                bar.close()
            latencies = [trimmed_mean(t) for t in times]
        return dist.broadcast_object(latencies)


def load_or_build_table(backbone, settings: SearchSettings, device: torch.device, measure: 'Measurer', log
                        ) -> LatencyTable:
    """The latency table at ``--latency-table``: loaded by rank 0 if present (a stale one is rejected), built,
    calibrated and saved otherwise; every rank receives it."""
    with dist.full_threads():
        key = table_key(backbone, settings.img_size, settings.batch_size, device)
    found = None
    if dist.is_master() and osp.isfile(settings.latency_table):
        try:
            found = LatencyTable.load(settings.latency_table, expected_key=key).to_dict()
        except ValueError as err:
            found = str(err)
    found = dist.broadcast_object(found)
    if isinstance(found, str):
        raise ValueError(found)
    if found is not None:
        log(f'latency table: loaded {settings.latency_table}')
        return LatencyTable.from_dict(found)
    return build_table(backbone, settings, device, measure, log)


def build_table(backbone, settings: SearchSettings, device: torch.device, measure: 'Measurer', log
                ) -> LatencyTable:
    """Time the table inside full forwards (GPU ranks share the forwards; on CPU rank 0 times alone), calibrate it
    with interleaved full forwards of ``--calibration-configs`` configurations, save it on rank 0."""
    s = settings
    rounds = s.table_rounds or table_rounds(s.num_repeats)
    forwards = len(forward_schedule(backbone.depths, DEFAULT_CHOICES, rounds))
    log(f'latency table: building {s.latency_table} ({rounds} round(s): {forwards} full forwards, every stage '
        f'timed inside them)')
    start = time.perf_counter()
    build = dict(img_size=s.img_size, batch_size=s.batch_size, num_warmup=s.num_warmup, num_rounds=rounds,
                 device=device, seed=s.seed)
    data = None
    if device.type == 'cuda' and dist.world_size() > 1:
        data = build_latency_table(backbone, shard=(dist.rank(), dist.world_size()),
                                   gather=dist.all_gather_objects, **build).to_dict()
    elif dist.is_master():
        with dist.full_threads():
            bar = tqdm(total=forwards, desc='latency table', unit='forward', file=sys.stderr,
                       disable=s.no_progress)
            data = build_latency_table(backbone, progress=lambda _: bar.update(), **build).to_dict()
            bar.close()
    table = LatencyTable.from_dict(dist.broadcast_object(data))
    if s.calibration_configs > 0:
        table = calibrate_table(table, measure.many, s.calibration_configs, seed=s.seed)
        cal = table.calibration
        log(f"latency table: calibrated with {len(cal['configs'])} full forwards: {describe_calibration(cal)}")
    table.meta['build_seconds'] = time.perf_counter() - start
    if dist.is_master():
        table.save(s.latency_table)
    log(f"latency table: {sum(len(s) for s in table.stages)} entries built in {table.meta['build_seconds']:.1f} s")
    return table


def check_table(table: LatencyTable, measure_many: Callable, configs: Sequence[Genes],
                measured: Mapping[str, float]) -> dict:
    """Predicted vs measured latency of ``configs`` (dense first), all measured now, interleaved
    (``measure_many(configs) -> ms``; ``measured`` holds those already measured now, by configuration key).

    ``speed_ratio`` (measured / predicted dense latency) tells how much the machine's speed changed since the table
    was built; ``rescaled_error_pct`` removes that common factor, leaving the table's own error.
    """
    unique = list({genes_key(g): g for g in configs}.items())
    todo = [g for key, g in unique if key not in measured]
    now = dict(measured, **dict(zip([genes_key(g) for g in todo], measure_many(todo) if todo else [])))
    rows = [dict(config=dict(g), predicted_ms=table.predict(g), measured_ms=now[key]) for key, g in unique]
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
