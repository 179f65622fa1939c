"""How well the search's latency table predicts real latency: build (or load) the table of a config's backbone,
calibrate it as ``tools/search.py`` does, then measure held-out configurations with full forwards and report the
prediction error of the plain additive sum and of the calibrated table.

    python tools/check_latency_table.py configs/demo/mask_rcnn_sparsevit_demo.py --img_size 224 --batch-size 4
    python tools/check_latency_table.py configs/sparsevit/mask_rcnn_sparsevit.py --img_size 672 --batch-size 4

The checked configurations are the dense and sparsest ones and ``--check-configs`` random configurations of the
space (none of them used for the calibration), measured like the search's end-of-run check: warm-up, then timed
forwards in interleaved rounds (one forward of every configuration per round), trimmed mean per configuration.
Goal (issue 8): the calibrated table within 5 % mean and 10 % max error. The machine's load is printed before and
after: on a shared machine the errors include its noise (``--stat min --threads 1`` is less sensitive to it). The
check: :mod:`sparsevit.analysis.table_accuracy`.
"""
import argparse
import sys

from sparsevit.analysis.table_accuracy import STATS, check_latency_table
from sparsevit.utils.cli import OneLineParser, check_outputs, int_at_least, write_json


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(description='Predicted vs measured backbone latency of the search latency table.')
    p.add_argument('config', help='a SparseViT config (its model.backbone is used)')
    p.add_argument('--img_size', '--img-size', dest='img_size', type=int_at_least(1), default=672)
    p.add_argument('--batch-size', '--batch_size', dest='batch_size', type=int_at_least(1), default=4)
    p.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    p.add_argument('--num-warmup', type=int_at_least(0), default=None,
                   help="per full-forward measurement (default: the search's protocol for the device)")
    p.add_argument('--num-repeats', type=int_at_least(1), default=None,
                   help="per full-forward measurement (default: the search's protocol for the device)")
    p.add_argument('--table-rounds', type=int_at_least(1), default=None,
                   help='rounds of the table build (default: as tools/search.py, --num-repeats / 5)')
    p.add_argument('--calibration-configs', type=int_at_least(0), default=6, help='as tools/search.py (default: 6)')
    p.add_argument('--check-configs', type=int_at_least(0), default=8,
                   help='random configurations checked besides dense and sparsest (default: 8)')
    p.add_argument('--stat', choices=sorted(STATS), default='trimmed-mean',
                   help="statistic of every entry's and configuration's timed forwards: the search's trimmed mean "
                   '(default), or the minimum, which separates the table\'s own error from the noise of a loaded '
                   'machine')
    p.add_argument('--threads', type=int_at_least(1), default=None, help='torch CPU threads (default: torch\'s)')
    p.add_argument('--table', default=None, help='load the table from / save it to this path')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', default=None, help='write the results as JSON')
    args = p.parse_args(argv)
    check_outputs(p, args, '--json', '--table')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    result = check_latency_table(args.config, args.img_size, args.batch_size, args.device, args.num_warmup,
                                 args.num_repeats, args.table_rounds, args.calibration_configs, args.check_configs,
                                 args.stat, args.threads, args.table, args.seed)
    if args.json:
        write_json(args.json, dict(settings=vars(args), **result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
