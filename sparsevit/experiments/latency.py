"""The latency driver of ``make experiments`` (``tools/experiments.py latency SPEC --out OUT``): every backbone of
a spec built in one process and timed back to back in interleaved rounds (:func:`sparsevit.utils.latency.interleave`),
so that a change of the machine's load hits them all alike.

A spec is a JSON object: ``config`` (whose backbone is built, random weights), ``batch_size``, ``warmup``,
``repeats``, ``rounds``, and ``entries``: ``name``, ``img_size``, ``pruning_ratios`` and ``backbone`` (extra
``SparseSwinTransformer`` arguments, e.g. ``window_selection``).
"""
import statistics
import time
from typing import Dict, Sequence

from ..deploy.build import backbone_cfg
from ..utils.config import load_config


def build_backbones(config: str, entries: Sequence[dict]) -> Dict[str, object]:
    """One SparseSwinTransformer per entry from ``config``'s backbone (random weights: latency does not depend on
    them), with the entry's ``pruning_ratios`` and ``backbone`` overrides (e.g. ``window_selection``)."""
    from mmdet.models import build_backbone
    base = backbone_cfg(load_config(config), sparse=True)
    return {e['name']: build_backbone(dict(base, pruning_ratios=e.get('pruning_ratios'), **e.get('backbone', {})))
            for e in entries}


def run_latency(spec: dict) -> dict:
    """Time the spec's backbones back to back; the result per entry: median over rounds, every round's value, and
    the backbone GMACs of one image for the windows it keeps (analytic)."""
    import torch
    from ..analysis.compute import backbone_macs
    from ..utils.latency import interleave, measure_backbone_latency
    entries = spec['entries']
    backbones = build_backbones(spec['config'], entries)
    sizes = {e['name']: int(e['img_size']) for e in entries}

    def measure(name: str) -> float:
        return measure_backbone_latency(backbones[name], img_size=sizes[name], batch_size=spec['batch_size'],
                                        num_warmup=spec['warmup'], num_repeats=spec['repeats'],
                                        device='cpu')['latency_ms']

    start = time.perf_counter()
    times = interleave([e['name'] for e in entries], spec['rounds'], measure,
                       on_round=lambda r: print(f'latency round {r + 1}/{spec["rounds"]} done '
                                                f'({time.perf_counter() - start:.0f} s)', flush=True))
    results = {e['name']: dict(e, latency_ms=statistics.median(times[e['name']]), runs_ms=times[e['name']],
                               gmacs=backbone_macs(backbones[e['name']], (sizes[e['name']],) * 2)['gmacs'])
               for e in entries}
    return dict(results=results, batch_size=spec['batch_size'], warmup=spec['warmup'], repeats=spec['repeats'],
                rounds=spec['rounds'], threads=torch.get_num_threads(), torch=torch.__version__,
                seconds=time.perf_counter() - start)
