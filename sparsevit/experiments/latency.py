"""The latency driver of ``make experiments`` (``tools/experiments.py latency SPEC --out OUT``): every backbone of
a spec built in one process and timed back to back in interleaved rounds (:func:`sparsevit.utils.latency.interleave`),
so that a change of the machine's load hits them all alike.

A spec is a JSON object: ``config`` (whose backbone is built, random weights), ``batch_size``, ``warmup``,
``repeats``, ``rounds``, and ``entries``: ``name``, ``img_size`` (a side, or ``[H, W]``), ``pruning_ratios`` and
``backbone`` (extra ``SparseSwinTransformer`` arguments, e.g. ``window_selection``). With ``"scope": "segmentor"``
(an mmseg config) each entry is the config's whole segmentor around that backbone, timed as
``tools/measure_latency.py --scope segmentor`` times it (``encode_decode``), with the backbone's time inside the
same runs.
"""
import statistics
import time
from typing import Dict, List, Sequence

from ..deploy.build import backbone_cfg
from ..utils.config import load_config
from ..utils.latency import ImgSize, image_hw


def build_backbones(config: str, entries: Sequence[dict]) -> Dict[str, object]:
    """One SparseSwinTransformer per entry from ``config``'s backbone (random weights: latency does not depend on
    them), with the entry's ``pruning_ratios`` and ``backbone`` overrides (e.g. ``window_selection``)."""
    from mmdet.models import build_backbone
    base = backbone_cfg(load_config(config), sparse=True)
    return {e['name']: build_backbone(dict(base, pruning_ratios=e.get('pruning_ratios'), **e.get('backbone', {})))
            for e in entries}


def build_segmentors(config: str, entries: Sequence[dict]) -> Dict[str, object]:
    """One segmentor of ``config`` per entry around its backbone (:func:`build_backbones`' config), mmseg's
    random init."""
    from ..deploy.latency import segmentor_workload
    cfg = load_config(config)
    base = backbone_cfg(cfg, sparse=True)
    return {e['name']: segmentor_workload(cfg, dict(base, pruning_ratios=e.get('pruning_ratios'),
                                                    **e.get('backbone', {}))) for e in entries}


def run_latency(spec: dict) -> dict:
    """Time the spec's backbones (or segmentors) back to back; the result per entry: median over rounds, every
    round's value, and the backbone GMACs of one image for the windows it keeps (analytic); a segmentor's also
    the backbone's median time and share of every round."""
    import torch
    from ..analysis.compute import backbone_macs
    from ..utils.latency import interleave, measure_backbone_latency, measure_segmentor_latency
    entries = spec['entries']
    scope = spec.get('scope', 'backbone')
    if scope not in ('backbone', 'segmentor'):
        raise ValueError(f"spec scope must be 'backbone' or 'segmentor', got {scope!r}")
    models = (build_segmentors if scope == 'segmentor' else build_backbones)(spec['config'], entries)
    sizes = {e['name']: image_hw(e['img_size']) for e in entries}
    runs: Dict[str, List[dict]] = {e['name']: [] for e in entries}

    def measure(name: str) -> float:
        timer = measure_segmentor_latency if scope == 'segmentor' else measure_backbone_latency
        run = timer(models[name], img_size=sizes[name], batch_size=spec['batch_size'], num_warmup=spec['warmup'],
                    num_repeats=spec['repeats'], device='cpu')
        runs[name].append(run)
        return run['latency_ms']

    start = time.perf_counter()
    times = interleave([e['name'] for e in entries], spec['rounds'], measure,
                       on_round=lambda r: print(f'latency round {r + 1}/{spec["rounds"]} done '
                                                f'({time.perf_counter() - start:.0f} s)', flush=True))
    results = {}
    for e in entries:
        name = e['name']
        backbone = models[name].backbone if scope == 'segmentor' else models[name]
        results[name] = dict(e, latency_ms=statistics.median(times[name]), runs_ms=times[name],
                             gmacs=backbone_macs(backbone, sizes[name])['gmacs'])
        if scope == 'segmentor':
            timed = runs[name][-len(times[name]):]  # the timed rounds' runs
            results[name].update(backbone_ms=statistics.median(r['backbone_ms'] for r in timed),
                                 backbone_shares=[r['backbone_share'] for r in timed])
    return dict(results=results, scope=scope, batch_size=spec['batch_size'], warmup=spec['warmup'],
                repeats=spec['repeats'], rounds=spec['rounds'], threads=torch.get_num_threads(),
                torch=torch.__version__, seconds=time.perf_counter() - start)


#: The segmentation benchmark's configurations (issue 16): dense, uniform ratios, and the original's searched cfg1
#: (found for Mask R-CNN at 672x672; no segmentation search result of a trained Swin-T exists).
SEGMENTOR_BENCHMARK = (('dense', None), ('uniform 0.3', 0.3), ('uniform 0.5', 0.5), ('uniform 0.7', 0.7),
                       ('searched cfg1', [[0.3, 0.3], [0, 0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0, 0]]))


def segmentor_benchmark(config: str, img_size: ImgSize, batch_sizes: Sequence[int], rounds: int = 3,
                        repeats: int = 2, warmup: int = 1) -> Dict[int, dict]:
    """The whole segmentor of ``config`` (random weights) at ``img_size`` for each of :data:`SEGMENTOR_BENCHMARK`,
    timed back to back in ``rounds`` interleaved rounds (:func:`run_latency`, ``scope='segmentor'``), once per
    batch size; returns batch size -> :func:`run_latency`'s result."""
    entries = [dict(name=name, img_size=list(image_hw(img_size)), pruning_ratios=ratios) for name, ratios in SEGMENTOR_BENCHMARK]
    return {int(b): run_latency(dict(config=config, scope='segmentor', batch_size=int(b), warmup=warmup,
                                     repeats=repeats, rounds=rounds, entries=entries)) for b in batch_sizes}


def segmentor_table(results: Dict[int, dict]) -> str:
    """Markdown of :func:`segmentor_benchmark`: per batch and configuration, the segmentor's and the backbone's
    median latency and their ratios to dense in the same run, the backbone's share, the rest (decode head, resize),
    the spread of the rounds and the backbone's GMACs per image."""
    lines = ['| batch | configuration | segmentor (ms) | vs dense | backbone (ms) | backbone vs dense | backbone share | '
             'head + resize (ms) | rounds (ms) | backbone GMACs / image |', '|---|---|---|---|---|---|---|---|---|---|']
    for batch, result in sorted(results.items()):
        dense = result['results']['dense']
        for name, r in result['results'].items():
            lines.append(f"| {batch} | {name} | {r['latency_ms']:.0f} | {r['latency_ms'] / dense['latency_ms']:.3f} | "
                         f"{r['backbone_ms']:.0f} | {r['backbone_ms'] / dense['backbone_ms']:.3f} | "
                         f"{100 * r['backbone_ms'] / r['latency_ms']:.1f} % | {r['latency_ms'] - r['backbone_ms']:.0f} "
                         f"| {min(r['runs_ms']):.0f}–{max(r['runs_ms']):.0f} | {r['gmacs']:.2f} |")
    return '\n'.join(lines) + '\n'
