"""Backbone speed benchmark: ours vs mmdet's dense Swin-T in one interleaved run.

    python tools/benchmark_backbone.py --img_size 672 --batch-size 4 --device cpu

Times mmdet 2.28.2's dense ``SwinTransformer`` and ``SparseSwinTransformer`` (same weights) at all-zero, uniform
0.6 and the original README's three searched configurations, round-robin (one forward of each model per round, so
machine noise hits all alike), and prints each median latency and its ratio to dense mmdet.
"""
import argparse
import json
import statistics
import sys

import torch
from mmdet.models.backbones import SwinTransformer

from sparsevit.models.backbones import SparseSwinTransformer
from sparsevit.utils.latency import resolve_device, time_forwards

CONFIGS = {
    'ours, all ratios 0': 0.0,
    'ours, uniform 0.6': 0.6,
    'ours, cfg1 (42 ms)': [[.3, .3], [0, 0], [.1, .1, .2, .2, .2, .2], [0, 0]],
    'ours, cfg2 (35 ms)': [[.6, .6], [0, 0], [.2, .2, .4, .4, .5, .5], [0, 0]],
    'ours, cfg3 (33 ms)': [[.7, .7], [0, 0], [.2, .2, .4, .4, .5, .5], [0, 0]],
}
# The original SparseViT code on 2 CPU cores (shared/BENCHMARKS.md) and the paper's RTX A6000 figures.
REFERENCE_CPU = {'ours, all ratios 0': 0.940, 'ours, uniform 0.6': 0.415, 'ours, cfg1 (42 ms)': 0.777,
                 'ours, cfg2 (35 ms)': 0.612, 'ours, cfg3 (33 ms)': 0.601}
REFERENCE_A6000 = {'ours, cfg1 (42 ms)': 0.864, 'ours, cfg2 (35 ms)': 0.716, 'ours, cfg3 (33 ms)': 0.688}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--img_size', '--img-size', type=int, default=672)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--device', default='auto', help="cpu, cuda or auto (default)")
    parser.add_argument('--num-warmup', type=int, default=2)
    parser.add_argument('--num-repeats', type=int, default=7, help='timed rounds (median is reported)')
    parser.add_argument('--embed-dims', type=int, default=96)
    parser.add_argument('--explicit-attn', action='store_true', help='time the explicit softmax path of ours')
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    if min(args.img_size, args.batch_size, args.num_repeats, args.embed_dims) <= 0 or args.num_warmup < 0:
        parser.error('--img_size, --batch-size, --num-repeats and --embed-dims must be positive, --num-warmup >= 0')
    return args


def build_models(args, device):
    kw = dict(embed_dims=args.embed_dims, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7,
              drop_path_rate=0.0)
    torch.manual_seed(0)
    dense = SwinTransformer(**kw)
    dense.init_weights()
    models = {'mmdet SwinTransformer (dense)': dense}
    for name, ratios in CONFIGS.items():
        model = SparseSwinTransformer(pruning_ratios=ratios, fused_attn=not args.explicit_attn, **kw)
        model.load_state_dict(dense.state_dict())
        models[name] = model
    for m in models.values():
        m.to(device).eval()  # mmdet's SwinTransformer.train() returns None: no chaining
    return models


def run(args):
    device = resolve_device(args.device)
    models = build_models(args, device)
    with torch.inference_mode():
        return _time(args, device, models)


def _time(args, device, models):
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=torch.Generator().manual_seed(0))
    x = x.to(device)
    for _ in range(args.num_warmup):
        for m in models.values():
            m(x)
    times = {k: [] for k in models}
    for r in range(args.num_repeats):
        for k, m in models.items():
            times[k] += time_forwards(lambda: m(x), 1, device)
        print(f'round {r + 1}/{args.num_repeats} done', file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med['mmdet SwinTransformer (dense)']
    rows = [dict(model=k, latency_ms=v, ratio=v / base, original_cpu=REFERENCE_CPU.get(k),
                 paper_a6000=REFERENCE_A6000.get(k)) for k, v in med.items()]
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU x{torch.get_num_threads()} threads'
    print(f'\nbackbone Swin-T (embed {args.embed_dims}), {args.img_size}x{args.img_size}, batch {args.batch_size}, '
          f'{name}, torch {torch.__version__}, median of {args.num_repeats} interleaved rounds')
    print(f"{'model':34s} {'latency ms':>11s} {'ratio':>7s} {'orig. code CPU':>15s} {'paper A6000':>12s}")
    for row in rows:
        ref = '' if row['original_cpu'] is None else f"{row['original_cpu']:.3f}"
        paper = '' if row['paper_a6000'] is None else f"{row['paper_a6000']:.3f}"
        print(f"{row['model']:34s} {row['latency_ms']:11.1f} {row['ratio']:7.3f} {ref:>15s} {paper:>12s}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(device=name, img_size=args.img_size, batch_size=args.batch_size, rows=rows,
                           times_ms=times), f, indent=2)
    return rows


if __name__ == '__main__':
    run(parse_args())
