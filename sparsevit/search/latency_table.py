"""Additive latency lookup table of the sparse backbone, for filtering search candidates in microseconds.

The backbone runs its stages one after the other and a stage's cost depends only on its own ratios (the number of
kept windows is ``floor(nW * (1 - ratio))``, whatever the image), so the latency of a configuration is predicted as

    fixed part (patch embedding, position embedding, output norms, layout changes) + sum over stages of
    the latency of that stage at its configuration.

The table holds one latency per stage per allowed stage configuration (the non-decreasing tuples of the stage's
genes: 9 + 9 + 165 + 9 = 192 entries for Swin-T with 9 choices) and one of the fixed part. They are timed inside
full forwards of random images (:func:`build_latency_table`): each forward runs one entry per stage and every stage
is timed where it runs, so an entry includes what a stage pays in a real forward (the cache state the previous
stage leaves, allocations); the fixed part is the total minus the stages. (A stage timed alone on a cached input,
this table's first version, ran 9-35 % below the measured latency at the demo's scale.)

Calibration: :func:`calibrate_table` measures a few full forwards (without the stage clock) of configurations
spread over the latency range and fits ``measured = offset + scale * additive`` by least squares, or only the
scale, or nothing: whichever predicts the measurements best when each is left out in turn;
:meth:`LatencyTable.predict` applies it. It absorbs what timing stages still changes (on CUDA, the events between
stages) and the machine's speed at build time.

A table is only valid for the input size, batch, device and model it was measured on: its ``key`` records them and
:meth:`LatencyTable.load` rejects a stale table with a message naming what differs.
"""
import hashlib
import itertools
import json
import random
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..schedule import (DEFAULT_CHOICES, Genes, check_choices, dense_genes, gene_names, genes_key, genes_per_stage,
                        genes_to_ratios, sample_genes, sparsest_genes)
from ..utils.files import write_json
from ..utils.latency import (ImgSize, device_name as latency_device_name, image_hw, random_images, resolve_device,
                             size_value, trimmed_mean)

TABLE_VERSION = 2  # 2: timed in context and calibrated (version 1 tables are rejected: rebuild them)
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


#: The table key's device label (part of every saved table's key: keep it): ``cuda:<GPU model>`` or
#: ``cpu:<CPU type>:<threads>threads``.
DEVICE_LABEL = dict(cuda='cuda:{name}', cpu='cpu:{processor}:{threads}threads')


def device_name(device: torch.device) -> str:
    """A readable identity of the timing device (GPU model, or CPU type and thread count): :data:`DEVICE_LABEL`."""
    return latency_device_name(device, **DEVICE_LABEL)


def model_signature(backbone: torch.nn.Module) -> dict:
    """The backbone's shape: depths, window, widths, and a hash of every parameter/buffer name and shape."""
    shapes = [(k, tuple(v.shape)) for k, v in backbone.state_dict().items()]
    digest = hashlib.sha1(repr(shapes).encode()).hexdigest()[:16]
    return dict(type=type(backbone).__name__, depths=list(backbone.depths), window_size=int(backbone.window_size),
                embed_dims=int(backbone.patch_embed.projection.out_channels),
                fused_attn=bool(getattr(backbone, 'fused_attn', True)), shapes_sha1=digest)


def table_key(backbone: torch.nn.Module, img_size: ImgSize, batch_size: int, device: torch.device,
              choices: Sequence[float] = DEFAULT_CHOICES) -> dict:
    """What a table is valid for; a loaded table whose key differs is stale (``img_size``: a side, or ``[h, w]``)."""
    return dict(img_size=size_value(img_size), batch_size=int(batch_size), device=device_name(device),
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
        write_json(path, self.to_dict())

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
Stat = Callable[[Sequence[float]], float]


def forward_schedule(depths: Sequence[int], choices: Sequence[float], rounds: int, seed: int = 0
                     ) -> List[List[Tuple[float, ...]]]:
    """The configurations of the table's timed forwards: per forward, one entry (stage configuration) per stage.

    Each round covers every entry of the stage with the most entries once (165 forwards for Swin-T's stage 2) in a
    seeded random order; the other stages cycle through their own entries (each reshuffled every round), so each
    of their entries is timed about 165 / 9 = 18 times per round, in ever different company.
    """
    per_stage = [list(itertools.combinations_with_replacement(sorted(choices), n)) for n in genes_per_stage(depths)]
    longest = max(len(e) for e in per_stage)
    rng = random.Random(seed)
    schedule = []
    for _ in range(rounds):
        orders = [rng.sample(e, len(e)) for e in per_stage]
        schedule += [[order[f % len(order)] for order in orders] for f in range(longest)]
    return schedule


def entries_to_genes(entries: Sequence[Tuple[float, ...]], depths: Sequence[int]) -> Genes:
    """The configuration made of one entry (tuple of gene values) per stage."""
    return dict(zip(gene_names(depths), itertools.chain.from_iterable(entries)))


class StageClock:
    """Times every stage inside a full forward of the backbone, as an observer of its stages (``observe_stages``).

    On CPU with ``time.perf_counter``; on CUDA with CUDA events recorded in the stream around every stage (no
    synchronisation inside the forward), read after it. ``forward(x)`` returns ``(total_ms, [stage_ms, ...])``;
    the total minus the stages is the fixed part (patch embedding, position embedding, output norms).
    """

    def __init__(self, backbone: torch.nn.Module, device: torch.device):
        self.backbone, self.cuda = backbone, device.type == 'cuda'
        self.marks: List = []

    def _mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _stage_mark(self, *args) -> None:
        self.marks.append(self._mark())

    def forward(self, x: torch.Tensor) -> Tuple[float, List[float]]:
        self.marks = []
        with self.backbone.observe_stages(before=self._stage_mark, after=self._stage_mark):
            if self.cuda:
                torch.cuda.synchronize()
            start = self._mark()
            self.backbone(x)
            end = self._mark()
        if self.cuda:
            torch.cuda.synchronize()
            span = lambda a, b: a.elapsed_time(b)  # noqa: E731  (ms)
        else:
            span = lambda a, b: (b - a) * 1000.0  # noqa: E731
        stages = [span(a, b) for a, b in zip(self.marks[0::2], self.marks[1::2])]
        return span(start, end), stages


@torch.inference_mode()
def time_in_context(backbone: torch.nn.Module, x: torch.Tensor, schedule: Sequence[Sequence[Tuple[float, ...]]],
                    num_warmup: int, device: torch.device,
                    progress: Optional[Callable[[int], None]] = None) -> Tuple[Dict[str, List[float]], List[float]]:
    """Run ``num_warmup`` dense forwards, then one timed forward per ``schedule`` item (one entry per stage).

    Returns:
        ``{'i|values': [ms, ...]}`` the times of stage ``i`` at each entry, and the fixed part's times.
        ``progress(n)`` is called after every timed forward. The backbone's ratios are restored afterwards.
    """
    saved, depths = backbone.pruning_ratios, backbone.depths
    clock = StageClock(backbone, device)
    samples: Dict[str, List[float]] = {}
    fixed: List[float] = []
    try:
        backbone.set_pruning_ratios(None)
        for _ in range(num_warmup):
            backbone(x)
        for n, entries in enumerate(schedule):
            backbone.set_pruning_ratios(genes_to_ratios(entries_to_genes(entries, depths), depths))
            total, stages = clock.forward(x)
            for i, (values, ms) in enumerate(zip(entries, stages)):
                samples.setdefault(f'{i}|{entry_name(values)}', []).append(ms)
            fixed.append(total - sum(stages))
            if progress is not None:
                progress(n)
    finally:
        backbone.set_pruning_ratios([list(s) for s in saved])
    return samples, fixed


def table_rounds(num_repeats: int) -> int:
    """Default rounds of a table build for a protocol of ``num_repeats`` timed forwards per measurement: one round
    in five (each round times every entry of the longest stage once and the others about 18 times)."""
    return max(1, round(num_repeats / 5))


def build_latency_table(backbone: torch.nn.Module, img_size: ImgSize = 672, batch_size: int = 4, num_warmup: int = 10,
                        num_rounds: int = 4, device=None, choices: Sequence[float] = DEFAULT_CHOICES,
                        shard: Tuple[int, int] = (0, 1),
                        gather: Optional[Callable[[dict], List[dict]]] = None,
                        progress: Optional[Callable[[int], None]] = None, seed: int = 0,
                        stat: Stat = trimmed_mean) -> LatencyTable:
    """Time every stage configuration inside full forwards of ``backbone`` and return the table.

    Each timed forward runs one entry per stage (:func:`forward_schedule`) and times every stage inside it
    (:class:`StageClock`); an entry's latency is the ``stat`` of its times, the fixed part the ``stat`` of the
    total minus the stages. Timing stages inside real forwards (rather than each stage alone on a cached input)
    keeps the costs a stage pays for its neighbours: the cache state the previous stage leaves, allocations.

    Args:
        backbone: a ``SparseSwinTransformer`` (``observe_stages``, ``set_pruning_ratios``, ``depths``).
        img_size, batch_size: the random input ``(batch_size, 3, H, W)``: ``img_size`` is a side or ``(H, W)``.
        num_warmup: untimed dense forwards first.
        num_rounds: rounds of the schedule (Swin-T: 165 timed forwards each).
        device: 'cpu', 'cuda' or None (auto).
        choices: allowed pruning ratios.
        shard: ``(rank, world_size)``: this process runs forwards ``rank::world_size`` of the schedule (one device
            each).
        gather: with shards, merges every rank's samples (e.g. an all-gather); required when ``world_size > 1``.
        progress: called with the forward number after each timed forward (``len(schedule) // world_size``).
        seed: seed of the random input and of the schedule.
        stat: the statistic of each entry's times. Default: the trimmed mean (25 % each side).
    """
    rank, world = shard
    if world > 1 and gather is None:
        raise ValueError('build_latency_table: a sharded build needs a gather function')
    if min(image_hw(img_size)) <= 0 or batch_size <= 0 or num_warmup < 0 or num_rounds <= 0:
        raise ValueError('img_size, batch_size and num_rounds must be positive and num_warmup >= 0')
    dev = resolve_device(device if not isinstance(device, torch.device) else str(device))
    choices = check_choices(choices)
    backbone.to(dev).eval()
    x = random_images(batch_size, img_size, dev, seed)
    schedule = forward_schedule(backbone.depths, choices, num_rounds, seed)
    samples, fixed = time_in_context(backbone, x, schedule[rank::world], num_warmup, dev, progress)
    parts = gather(dict(samples=samples, fixed=fixed)) if world > 1 else [dict(samples=samples, fixed=fixed)]
    merged: Dict[str, List[float]] = {}
    for part in parts:
        for name, times in part['samples'].items():
            merged.setdefault(name, []).extend(times)
    stages: List[Dict[str, float]] = [{} for _ in backbone.depths]
    for name, times in merged.items():
        i, values = name.split('|')
        stages[int(i)][values] = stat(times)
    fixed_ms = stat([ms for part in parts for ms in part['fixed']])
    meta = dict(method='in-context', num_warmup=num_warmup, num_rounds=num_rounds, forwards=len(schedule),
                world_size=world, seed=seed, torch=torch.__version__)
    return LatencyTable(table_key(backbone, img_size, batch_size, dev, choices), fixed_ms, stages, meta)


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


def fit_scale(xs: Sequence[float], ys: Sequence[float]) -> Tuple[float, float]:
    """Least-squares ``(0, scale)`` of ``y = scale * x``."""
    return 0.0, sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs)


#: The calibration models, simplest first: no correction, a scale (the machine's speed), a line (speed and a
#: constant cost).
CALIBRATIONS = {'none': lambda xs, ys: (0.0, 1.0), 'scale': fit_scale, 'line': fit_line}


def loo_error_pct(fit: Callable, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Mean relative error (%) of ``fit`` predicting each point from the others (leave-one-out)."""
    errors = []
    for i in range(len(xs)):
        offset, scale = fit(xs[:i] + xs[i + 1:], ys[:i] + ys[i + 1:])
        errors.append(abs(offset + scale * xs[i] - ys[i]) / ys[i])
    return 100.0 * sum(errors) / len(errors)


def calibrate_table(table: LatencyTable, measure_many: Callable[[Sequence[Genes]], Sequence[float]],
                    num_configs: int = 6, seed: int = 0) -> LatencyTable:
    """Calibrate the table against full-forward measurements of ``num_configs`` configurations spread over the
    latency range (:func:`spread_configs`); returns the table with the calibration.

    The model, ``measured = offset + scale * additive``, is the one of :data:`CALIBRATIONS` (no correction, a
    scale, a line) with the smallest leave-one-out error on those measurements, the simpler one on a tie: with few
    noisy measurements a fitted line can predict worse than the table alone, and then it is not used.
    ``measure_many(configs) -> ms each`` is the search's real measurement (full backbone forwards, interleaved).
    """
    configs = spread_configs(table, num_configs, seed)
    measured = [float(ms) for ms in measure_many(configs)]
    xs = [table.additive(g) for g in configs]
    loo = {name: loo_error_pct(fit, xs, measured) for name, fit in CALIBRATIONS.items()} if len(xs) > 2 else {}
    model = min(loo, key=lambda name: (round(loo[name], 6), list(CALIBRATIONS).index(name))) if loo else 'line'
    offset, scale = CALIBRATIONS[model](xs, measured)
    errors = [abs(offset + scale * x - y) / y * 100 for x, y in zip(xs, measured)]
    points = [dict(config=g, additive_ms=x, measured_ms=y) for g, x, y in zip(configs, xs, measured)]
    calibration = dict(model=model, offset_ms=offset, scale=scale, loo_error_pct=loo, configs=points,
                       fit_mean_abs_error_pct=sum(errors) / len(errors), fit_max_abs_error_pct=max(errors))
    return LatencyTable(table.key, table.fixed_ms, table.stages, table.meta, calibration)


def describe_calibration(cal: Mapping) -> str:
    """One line: the model chosen, its formula and the leave-one-out errors."""
    loo = ', '.join(f'{name} {err:.1f} %' for name, err in cal.get('loo_error_pct', {}).items())
    return (f"{cal.get('model', 'line')}: measured = {cal['offset_ms']:.3f} ms + {cal['scale']:.4f} x additive "
            f"(leave-one-out error: {loo or '-'}; fit error mean {cal['fit_mean_abs_error_pct']:.1f} %, max "
            f"{cal['fit_max_abs_error_pct']:.1f} %)")
