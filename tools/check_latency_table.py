"""How well the search's latency table predicts real latency: build (or load) the table of a config's backbone,
calibrate it as ``tools/search.py`` does, then measure held-out configurations with full forwards and report the
prediction error of the plain additive sum and of the calibrated table.

    python tools/check_latency_table.py configs/demo/mask_rcnn_sparsevit_demo.py --img_size 224 --batch-size 4
    python tools/check_latency_table.py configs/sparsevit/mask_rcnn_sparsevit.py --img_size 672 --batch-size 4

The checked configurations are the dense and sparsest ones and ``--check-configs`` random configurations of the
space (none of them used for the calibration), measured like the search's end-of-run check: warm-up, then timed
forwards in interleaved rounds (one forward of every configuration per round), trimmed mean per configuration.
Goal (issue 8): the calibrated table within 5 % mean and 10 % max error. The machine's load is printed before and
after: on a shared machine the errors include its noise (``--stat min --threads 1`` is less sensitive to it).
"""
import argparse
import json
import os
import random
import statistics
import sys
import time

import torch
from mmcv import Config
from mmdet.models import build_backbone

from sparsevit.schedule import dense_genes, genes_key, sample_genes, sparsest_genes
from sparsevit.search.latency_table import (LatencyTable, build_latency_table, calibrate_table,
                                            describe_calibration, table_key, table_rounds)
from sparsevit.utils.config import apply_sparsevit_cfg
from sparsevit.search.timing import time_interleaved
from sparsevit.utils.latency import default_protocol, resolve_device, trimmed_mean


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Predicted vs measured backbone latency of the search latency table.')
    p.add_argument('config', help='a SparseViT config (its model.backbone is used)')
    p.add_argument('--img_size', '--img-size', dest='img_size', type=int, default=672)
    p.add_argument('--batch-size', '--batch_size', dest='batch_size', type=int, default=4)
    p.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    p.add_argument('--num-warmup', type=int, default=None,
                   help="per full-forward measurement (default: the search's protocol for the device)")
    p.add_argument('--num-repeats', type=int, default=None,
                   help="per full-forward measurement (default: the search's protocol for the device)")
    p.add_argument('--table-rounds', type=int, default=None,
                   help='rounds of the table build (default: as tools/search.py, --num-repeats / 5)')
    p.add_argument('--calibration-configs', type=int, default=6, help='as tools/search.py (default: 6)')
    p.add_argument('--check-configs', type=int, default=8,
                   help='random configurations checked besides dense and sparsest (default: 8)')
    p.add_argument('--stat', choices=sorted(STATS), default='trimmed-mean',
                   help="statistic of every entry's and configuration's timed forwards: the search's trimmed mean "
                   '(default), or the minimum, which separates the table\'s own error from the noise of a loaded '
                   'machine')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s)')
    p.add_argument('--table', default=None, help='load the table from / save it to this path')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', default=None, help='write the results as JSON')
    return p.parse_args(argv)


STATS = {'trimmed-mean': trimmed_mean, 'min': min, 'median': statistics.median}


def build(args) -> torch.nn.Module:
    cfg = apply_sparsevit_cfg(Config.fromfile(args.config))
    if cfg.get('custom_imports'):
        from mmcv.utils import import_modules_from_strings
        import_modules_from_strings(**cfg['custom_imports'])
    backbone_cfg = dict(cfg.model.backbone)
    backbone_cfg.pop('init_cfg', None)
    backbone_cfg['pruning_ratios'] = None
    torch.manual_seed(args.seed)
    return build_backbone(backbone_cfg).eval()


def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    stat = STATS[args.stat]
    warmup, repeats, protocol = default_protocol('search', device, args.num_warmup, args.num_repeats)
    rounds = args.table_rounds or table_rounds(repeats)
    backbone = build(args).to(device)
    depths = backbone.depths
    load = os.getloadavg()
    print(f'{args.config}: {args.img_size}x{args.img_size}, batch {args.batch_size}, {device}, '
          f'{torch.get_num_threads()} threads; load average {load[0]:.2f} (1 min) {load[1]:.2f} (5 min)')
    print(f'full forwards: {protocol}; table: {warmup} warm-up + {rounds} round(s) of full forwards timing every '
          f'stage; statistic: {args.stat}')

    def measure_many(configs):  # as the search's calibration and end-of-run check: interleaved rounds
        times = time_interleaved(backbone, configs, args.img_size, args.batch_size, warmup, repeats, device)
        return [stat(t) for t in times]

    start = time.perf_counter()
    key = table_key(backbone, args.img_size, args.batch_size, device)
    if args.table and os.path.isfile(args.table):
        table = LatencyTable.load(args.table, expected_key=key)
        print(f'table: loaded {args.table}')
    else:
        table = build_latency_table(backbone, args.img_size, args.batch_size, warmup, rounds, device,
                                    seed=args.seed, stat=stat)
        table = calibrate_table(table, measure_many, args.calibration_configs, seed=args.seed)
        if args.table:
            table.save(args.table)
        print(f'table: built and calibrated in {time.perf_counter() - start:.0f} s')
    cal = table.calibration
    print(f"calibration from {len(cal['configs'])} configurations: {describe_calibration(cal)}")

    used = {genes_key(p['config']) for p in cal['configs']}
    rng = random.Random(args.seed + 1)
    configs = [dense_genes(depths), sparsest_genes(depths)]
    while len(configs) < 2 + args.check_configs:
        genes = sample_genes(rng, depths)
        if genes_key(genes) not in used | {genes_key(g) for g in configs}:
            configs.append(genes)
    rows = [dict(config=genes, measured_ms=real, additive_ms=table.additive(genes), predicted_ms=table.predict(genes))
            for genes, real in zip(configs, measure_many(configs))]
    print('\n| config | measured (ms) | additive (ms) | error | calibrated (ms) | error |')
    print('|---|---|---|---|---|---|')
    for name, row in zip(['dense', 'sparsest'] + [f'random {i}' for i in range(1, len(rows) - 1)], rows):
        row['additive_error_pct'] = 100 * (row['additive_ms'] - row['measured_ms']) / row['measured_ms']
        row['error_pct'] = 100 * (row['predicted_ms'] - row['measured_ms']) / row['measured_ms']
        print(f"| {name} | {row['measured_ms']:.2f} | {row['additive_ms']:.2f} | {row['additive_error_pct']:+.1f} % "
              f"| {row['predicted_ms']:.2f} | {row['error_pct']:+.1f} % |")
    summary = {}
    for label, k in (('additive', 'additive_error_pct'), ('calibrated', 'error_pct')):
        errors = [abs(r[k]) for r in rows]
        summary[label] = dict(mean_abs_pct=sum(errors) / len(errors), max_abs_pct=max(errors))
        print(f"{label}: mean |error| {summary[label]['mean_abs_pct']:.1f} %, "
              f"max {summary[label]['max_abs_pct']:.1f} %")
    goal = summary['calibrated']['mean_abs_pct'] <= 5 and summary['calibrated']['max_abs_pct'] <= 10
    load = os.getloadavg()
    print(f"goal (calibrated: mean <= 5 %, max <= 10 %): {'met' if goal else 'NOT met'}; load average now "
          f'{load[0]:.2f}; {time.perf_counter() - start:.0f} s in all')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(settings=vars(args), protocol=protocol, calibration=cal, rows=rows, summary=summary,
                           goal_met=goal), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
