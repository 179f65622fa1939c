"""Additive latency lookup table of the sparse backbone, for filtering search candidates in microseconds.

The backbone runs its stages one after the other and a stage's cost depends only on its own ratios (the number of
kept windows is ``floor(nW * (1 - ratio))``, whatever the image), so the latency of a configuration is predicted as

    fixed part (patch embedding, position embedding, output norms, layout changes) + sum over stages of
    the latency of that stage at its configuration.

The table holds one measurement per stage per allowed stage configuration (the non-decreasing tuples of the stage's
genes: 9 + 9 + 165 + 9 = 192 entries for Swin-T with 9 choices) and one of the fixed part. Each entry times
``backbone.forward_stage(i, x)`` on that stage's real input (captured from a dense forward of random images); the
fixed part times the full ``forward`` with every stage replaced by a lookup of its precomputed output.

Calibration: a stage timed alone misses costs that a full forward pays (per-block fixed costs, the cache state
left by the previous stage, allocator work), so at small scale the plain sum runs 9-35 % below the measured
latency. :func:`calibrate_table` measures a few full forwards of configurations spread over the latency range and
fits ``measured = offset + scale * additive`` by least squares; :meth:`LatencyTable.predict` applies it.

A table is only valid for the input size, batch, device and model it was measured on: its ``key`` records them and
:meth:`LatencyTable.load` rejects a stale table with a message naming what differs.
"""
import hashlib
import inspect
import itertools
import json
import os
import platform
import random
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..schedule import (DEFAULT_CHOICES, Genes, check_choices, dense_genes, gene_names, genes_key, genes_per_stage,
                        genes_to_ratios, sample_genes, sparsest_genes)
from ..utils.latency import resolve_device, time_forwards, trimmed_mean

TABLE_VERSION = 2  # 2: calibrated (version 1 tables are rejected: rebuild them)
Entry = Tuple[int, Tuple[float, ...]]  # (stage, the stage's gene values)


class StaleTableError(ValueError):
    """A saved latency table was measured for another input size, batch, device or model."""


def stage_entries(depths: Sequence[int], choices: Sequence[float] = DEFAULT_CHOICES) -> List[Entry]:
    """Every (stage, stage configuration) of the space: non-decreasing tuples of the stage's genes."""
    return [(i, combo) for i, n in enumerate(genes_per_stage(depths))
            for combo in itertools.combinations_with_replacement(sorted(choices), n)]


def entry_name(values: Sequence[float]) -> str:
    """JSON key of a stage configuration, e.g. ``'0.1,0.2,0.2'``."""
    return ','.join(f'{v:g}' for v in values)


def split_genes(genes: Genes, depths: Sequence[int]) -> List[Tuple[float, ...]]:
    """The configuration's gene values grouped by stage (in gene-name order)."""
    names, out, start = gene_names(depths), [], 0
    for n in genes_per_stage(depths):
        out.append(tuple(float(genes[name]) for name in names[start:start + n]))
        start += n
    return out


def device_name(device: torch.device) -> str:
    """A readable identity of the timing device (GPU model, or CPU type and thread count)."""
    if device.type == 'cuda':
        return f'cuda:{torch.cuda.get_device_name(device)}'
    cpu = platform.processor() or platform.machine()
    return f'cpu:{cpu}:{torch.get_num_threads()}threads'


def model_signature(backbone: torch.nn.Module) -> dict:
    """The backbone's shape: depths, window, widths, and a hash of every parameter/buffer name and shape."""
    shapes = [(k, tuple(v.shape)) for k, v in backbone.state_dict().items()]
    digest = hashlib.sha1(repr(shapes).encode()).hexdigest()[:16]
    return dict(type=type(backbone).__name__, depths=list(backbone.depths), window_size=int(backbone.window_size),
                embed_dims=int(backbone.patch_embed.projection.out_channels),
                fused_attn=bool(getattr(backbone, 'fused_attn', True)), shapes_sha1=digest)


def table_key(backbone: torch.nn.Module, img_size: int, batch_size: int, device: torch.device,
              choices: Sequence[float] = DEFAULT_CHOICES) -> dict:
    """What a table is valid for; a loaded table whose key differs is stale."""
    return dict(img_size=int(img_size), batch_size=int(batch_size), device=device_name(device),
                model=model_signature(backbone), choices=[float(c) for c in check_choices(choices)])


class LatencyTable:
    """Predicts a configuration's backbone latency by summing per-stage measurements and the fixed part.

    Args:
        key: what the table is valid for (see :func:`table_key`).
        fixed_ms: latency of everything outside the stages.
        stages: per stage, stage configuration name (see :func:`entry_name`) -> latency in ms.
        meta: free-form information (measurement settings, build time).
        calibration: ``offset_ms`` and ``scale`` of :func:`calibrate_table` (and how they were fitted), or None:
            the plain sum.
    """

    def __init__(self, key: Mapping, fixed_ms: float, stages: Sequence[Mapping[str, float]],
                 meta: Optional[Mapping] = None, calibration: Optional[Mapping] = None):
        self.key, self.fixed_ms = dict(key), float(fixed_ms)
        self.stages = [dict(s) for s in stages]
        self.meta = dict(meta or {})
        self.calibration = None if calibration is None else dict(calibration)

    def predict(self, genes: Genes) -> float:
        """Predicted latency (ms) of a configuration (gene name -> ratio): the calibrated additive sum."""
        total = self.additive(genes)
        if self.calibration is None:
            return total
        return self.calibration['offset_ms'] + self.calibration['scale'] * total

    def additive(self, genes: Genes) -> float:
        """The plain sum of the fixed part and the stages' entries (ms), before calibration."""
        depths = self.key['model']['depths']
        total = self.fixed_ms
        for i, values in enumerate(split_genes(genes, depths)):
            name = entry_name(values)
            if name not in self.stages[i]:
                raise KeyError(f'stage {i} configuration ({name}) is not in the latency table '
                               f'(choices {self.key["choices"]}, non-decreasing)')
            total += self.stages[i][name]
        return total

    __call__ = predict

    # ------------------------------------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        return dict(version=TABLE_VERSION, key=self.key, fixed_ms=self.fixed_ms, stages=self.stages, meta=self.meta,
                    calibration=self.calibration)

    @classmethod
    def from_dict(cls, data: Mapping) -> 'LatencyTable':
        return cls(data['key'], data['fixed_ms'], data['stages'], data.get('meta'), data.get('calibration'))

    def save(self, path: str) -> None:
        """Write the table as JSON (atomically: a temporary file renamed over ``path``)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f'{path}.tmp'
        with open(tmp, 'w') as f:
            json.dump(self.to_dict(), f, indent=1)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str, expected_key: Optional[Mapping] = None) -> 'LatencyTable':
        """Read a table; with ``expected_key``, reject it (StaleTableError) if it was built for something else."""
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f'cannot read latency table {path}: {err}') from err
        if isinstance(data, dict) and isinstance(data.get('version'), int) and data['version'] < TABLE_VERSION:
            raise StaleTableError(f"latency table {path} is stale: version {data['version']} (uncalibrated), now "
                                  f'{TABLE_VERSION}; delete it or pass another --latency-table path to rebuild')
        if not isinstance(data, dict) or data.get('version') != TABLE_VERSION:
            raise ValueError(f'{path} is not a version-{TABLE_VERSION} latency table')
        table = cls.from_dict(data)
        if expected_key is not None:
            diff = _key_diff(table.key, expected_key)
            if diff:
                raise StaleTableError(f'latency table {path} is stale: it was built for {diff}; delete it or pass '
                                      f'another --latency-table path to rebuild')
        return table


def _key_diff(saved: Mapping, wanted: Mapping, prefix: str = '') -> str:
    """Readable differences ``name=saved (now wanted)`` between two keys (nested dicts flattened)."""
    parts = []
    for k in sorted(set(saved) | set(wanted)):
        a, b = saved.get(k), wanted.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            sub = _key_diff(a, b, f'{prefix}{k}.')
            parts += [sub] if sub else []
        elif a != b:
            parts.append(f'{prefix}{k}={a!r} (now {b!r})')
    return ', '.join(parts)


# ---------------------------------------------------------------------------------------------------- building
@torch.inference_mode()
def capture_stage_io(backbone: torch.nn.Module, x: torch.Tensor) -> List[Tuple[torch.Tensor, tuple]]:
    """Run a dense forward and return, per stage, its NHWC input and its ``(x_next, stage_out)`` output."""
    records = []
    run_stage = backbone.forward_stage

    def recording(i: int, inp: torch.Tensor, **kwargs):
        records.append((inp.clone(), None))  # the stage may write into its input (inplace=True)
        out = run_stage(i, inp, **kwargs)
        records[-1] = (records[-1][0], out)
        return out

    backbone.forward_stage = recording  # instance attribute shadows the method for this forward only
    try:
        backbone(x)
    finally:
        del backbone.forward_stage
    return records


def _timed_mean(fn: Callable[[], object], num_warmup: int, num_repeats: int, device: torch.device) -> float:
    for _ in range(num_warmup):
        fn()
    return trimmed_mean(time_forwards(fn, num_repeats, device))


@torch.inference_mode()
def measure_fixed(backbone: torch.nn.Module, x: torch.Tensor, stage_io: Sequence[tuple], num_warmup: int,
                  num_repeats: int, device: torch.device) -> float:
    """Latency of ``forward`` without the stages (each stage replaced by a lookup of its precomputed output)."""
    backbone.forward_stage = lambda i, inp, **kwargs: stage_io[i][1]
    try:
        return _timed_mean(lambda: backbone(x), num_warmup, num_repeats, device)
    finally:
        del backbone.forward_stage


class _StageRun:
    """Stage ``i`` with that stage at ``values`` (the others dense), run as ``forward`` runs it.

    ``forward`` lets a stage write into the tensor it is given (``inplace=True``, no copy); to time exactly that, each
    timed call gets a fresh copy of the captured input, made by :meth:`prepare` outside the timed region.
    """

    def __init__(self, backbone: torch.nn.Module, i: int, values: Sequence[float], x: torch.Tensor):
        depths = backbone.depths
        genes = [0.0] * len(gene_names(depths))
        start = sum(genes_per_stage(depths)[:i])
        genes[start:start + len(values)] = values
        self.backbone, self.i, self.x, self.ratios = backbone, i, x, genes_to_ratios(genes, depths)
        params = inspect.signature(backbone.forward_stage).parameters
        self.kwargs = dict(inplace=True) if 'inplace' in params else {}
        self.inp: Optional[torch.Tensor] = None

    def prepare(self) -> None:
        self.backbone.set_pruning_ratios(self.ratios)
        self.inp = self.x.clone() if self.kwargs else self.x

    def __call__(self):
        return self.backbone.forward_stage(self.i, self.inp, **self.kwargs)

    def timed(self, num: int, device: torch.device) -> List[float]:
        """``num`` timed runs (ms), each on a fresh input."""
        times = []
        for _ in range(num):
            self.prepare()
            times += time_forwards(self, 1, device)
        return times


@torch.inference_mode()
def measure_entries(backbone: torch.nn.Module, stage_io: Sequence[tuple], entries: Sequence[Entry], num_warmup: int,
                    num_repeats: int, device: torch.device,
                    progress: Optional[Callable[[int], None]] = None) -> Dict[Entry, float]:
    """Latency of ``forward_stage(i, x_i)`` for each (stage, stage configuration); other stages dense.

    After ``num_warmup`` forwards per entry, the entries are timed round-robin: ``num_repeats`` rounds of one
    forward of every entry, and each entry gets the trimmed mean of its rounds. A change of load on a shared
    machine then affects every entry alike instead of biasing the stages measured at that moment.
    ``progress(round)`` is called after each round. The backbone's ratios are restored afterwards.
    """
    saved = backbone.pruning_ratios
    try:
        runs = [_StageRun(backbone, i, values, stage_io[i][0]) for i, values in entries]
        for run in runs:
            run.timed(num_warmup, device)
        times: List[List[float]] = [[] for _ in runs]
        for r in range(num_repeats):
            for t, run in zip(times, runs):
                t += run.timed(1, device)
            if progress is not None:
                progress(r)
    finally:
        backbone.set_pruning_ratios([list(s) for s in saved])
    return {(i, tuple(values)): trimmed_mean(t) for (i, values), t in zip(entries, times)}


def build_latency_table(backbone: torch.nn.Module, img_size: int = 672, batch_size: int = 4, num_warmup: int = 10,
                        num_repeats: int = 50, device=None, choices: Sequence[float] = DEFAULT_CHOICES,
                        shard: Tuple[int, int] = (0, 1),
                        gather: Optional[Callable[[dict], List[dict]]] = None,
                        progress: Optional[Callable[[int], None]] = None, seed: int = 0) -> LatencyTable:
    """Measure every stage configuration and the fixed part of ``backbone`` and return the table.

    Args:
        backbone: a ``SparseSwinTransformer`` (``forward_stage``, ``set_pruning_ratios``, ``depths``).
        img_size, batch_size: the random input ``(batch_size, 3, img_size, img_size)``.
        num_warmup, num_repeats: forwards per entry before timing / timed (trimmed mean).
        device: 'cpu', 'cuda' or None (auto).
        choices: allowed pruning ratios.
        shard: ``(rank, world_size)``: this process measures entries ``rank::world_size`` (one device each).
        gather: with shards, merges every rank's ``{entry_name: ms}`` dicts (e.g. an all-gather); required
            when ``world_size > 1``.
        progress: called with the round number after each round of timed forwards (``num_repeats`` rounds).
        seed: seed of the random input.
    """
    rank, world = shard
    if world > 1 and gather is None:
        raise ValueError('build_latency_table: a sharded build needs a gather function')
    if img_size <= 0 or batch_size <= 0 or num_warmup < 0 or num_repeats <= 0:
        raise ValueError('img_size, batch_size and num_repeats must be positive and num_warmup >= 0')
    dev = resolve_device(device if not isinstance(device, torch.device) else str(device))
    choices = check_choices(choices)
    backbone.to(dev).eval()
    x = torch.randn(batch_size, 3, img_size, img_size, generator=torch.Generator().manual_seed(seed)).to(dev)
    saved = backbone.pruning_ratios
    backbone.set_pruning_ratios(None)
    try:
        stage_io = capture_stage_io(backbone, x)
        fixed = measure_fixed(backbone, x, stage_io, num_warmup, num_repeats, dev) if rank == 0 else None
    finally:
        backbone.set_pruning_ratios([list(s) for s in saved])
    mine = stage_entries(backbone.depths, choices)[rank::world]
    measured = measure_entries(backbone, stage_io, mine, num_warmup, num_repeats, dev, progress)
    local = {f'{i}|{entry_name(v)}': ms for (i, v), ms in measured.items()}
    local['fixed'] = fixed
    parts = gather(local) if world > 1 else [local]
    stages: List[Dict[str, float]] = [{} for _ in backbone.depths]
    for part in parts:
        for name, ms in part.items():
            if name != 'fixed':
                i, values = name.split('|')
                stages[int(i)][values] = ms
    fixed = next(p['fixed'] for p in parts if p.get('fixed') is not None)
    meta = dict(num_warmup=num_warmup, num_repeats=num_repeats, world_size=world, seed=seed,
                torch=torch.__version__)
    return LatencyTable(table_key(backbone, img_size, batch_size, dev, choices), fixed, stages, meta)


# ---------------------------------------------------------------------------------------------------- calibration
def spread_configs(table: LatencyTable, num: int, seed: int = 0, pool: int = 500) -> List[Genes]:
    """``num`` configurations spread over the latency range: dense, sparsest, and evenly spaced quantiles (by the
    additive prediction) of ``pool`` uniform samples."""
    depths, choices = table.key['model']['depths'], table.key['choices']
    ends = [dense_genes(depths), sparsest_genes(depths, choices)]
    if num <= 2:
        return ends[:num]
    rng = random.Random(seed)
    samples = sorted((sample_genes(rng, depths, choices) for _ in range(pool)), key=table.additive)
    picks = [samples[round(i * (len(samples) - 1) / (num - 3))] for i in range(num - 2)] if num > 3 else \
        [samples[len(samples) // 2]]
    out, seen = [], set()
    for genes in ends[:1] + picks + ends[1:]:
        if genes_key(genes) not in seen:
            seen.add(genes_key(genes))
            out.append(genes)
    return out


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> Tuple[float, float]:
    """Least-squares ``(offset, scale)`` of ``y = offset + scale * x``; one point (or equal x): offset only."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if n < 2 or var == 0:
        return my - mx, 1.0
    scale = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var
    return my - scale * mx, scale


def calibrate_table(table: LatencyTable, measure_many: Callable[[Sequence[Genes]], Sequence[float]],
                    num_configs: int = 6, seed: int = 0) -> LatencyTable:
    """Fit ``measured = offset + scale * additive`` on full-forward measurements of ``num_configs`` configurations
    spread over the latency range (:func:`spread_configs`); returns the table with that calibration.

    ``measure_many(configs) -> ms each`` is the search's real measurement (full backbone forwards, interleaved).
    """
    configs = spread_configs(table, num_configs, seed)
    measured = [float(ms) for ms in measure_many(configs)]
    points = [dict(config=g, additive_ms=table.additive(g), measured_ms=ms) for g, ms in zip(configs, measured)]
    offset, scale = fit_line([p['additive_ms'] for p in points], [p['measured_ms'] for p in points])
    errors = [abs(offset + scale * p['additive_ms'] - p['measured_ms']) / p['measured_ms'] * 100 for p in points]
    calibration = dict(offset_ms=offset, scale=scale, configs=points, fit_mean_abs_error_pct=sum(errors) / len(errors),
                       fit_max_abs_error_pct=max(errors))
    return LatencyTable(table.key, table.fixed_ms, table.stages, table.meta, calibration)
