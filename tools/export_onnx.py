"""Export a config's SparseViT backbone to ONNX at a fixed pruning configuration and check it in onnxruntime.

    python tools/export_onnx.py CONFIG [CHECKPOINT] --out FILE [--img_size 672] [--batch-size 4] \\
        [--pruning-ratios ...]

Builds the backbone of the detector config (top-level ``pruning_ratios`` applied, or ``--pruning-ratios``; a dense
mmdet Swin becomes SparseViT with the same weights; with CHECKPOINT its ``backbone.*`` weights, else random ones),
exports it for a static ``[batch, 3, img_size, img_size]`` input (static ``k`` per block: ``TopK``, ``Gather``
and ``ScatterND`` in the graph, opset >= 17), loads it in onnxruntime, checks every output against PyTorch on a
random input (max relative difference <= 1e-4 in fp32) and prints the onnxruntime latency of the exported
configuration and of the dense one (exported next to it as ``FILE`` with a ``.dense`` suffix, then removed unless
``--keep-dense``), with their ratio; ``--torch-latency`` adds eager PyTorch's latencies for the same comparison.

The export: :func:`sparsevit.deploy.export.export_config`. Errors in the arguments, or what cannot be exported
(e.g. a non-Swin backbone), print one line and exit 2; a failed check exits 1.
"""
import argparse
import sys
import warnings

warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)

from mmcv import DictAction  # noqa: E402

from sparsevit.deploy.export import export_config  # noqa: E402
from sparsevit.utils.cli import OneLineParser, check_outputs, int_at_least, run_reporting_errors, write_json  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(prog='export_onnx.py', description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='detector config file')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='detector checkpoint (its backbone weights are exported); random weights without it')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--img_size', '--img-size', dest='img_size', type=int_at_least(1), default=672,
                        help='square input size of the exported graph (default: 672)')
    parser.add_argument('--batch-size', '--batch_size', dest='batch_size', type=int_at_least(1), default=4,
                        help='batch of the exported graph (default: 4)')
    parser.add_argument('--pruning-ratios', default=None,
                        help='override the ratios: a float, a per-stage or per-block list (JSON/Python), or a '
                        'gene dict such as {"backbone.stages.0": 0.3, ...}')
    parser.add_argument('--opset', type=int_at_least(17), default=17, help='ONNX opset (>= 17, default: 17)')
    parser.add_argument('--dynamo', action='store_true',
                        help='use the torch.export-based exporter (default: the TorchScript-based one)')
    parser.add_argument('--num-warmup', type=int_at_least(0), default=3, help='untimed runs (default: 3)')
    parser.add_argument('--num-repeats', type=int_at_least(1), default=10,
                        help='timed runs, trimmed mean of the middle 50 %% (default: 10)')
    parser.add_argument('--no-latency', action='store_true', help='export and check only')
    parser.add_argument('--torch-latency', action='store_true',
                        help='also time eager PyTorch (fp32, inference mode) on the same input, both configurations')
    parser.add_argument('--keep-dense', action='store_true', help='keep the dense model exported for the latency')
    parser.add_argument('--json', default=None, help='also write the result to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (key=value)')
    args = parser.parse_args(argv)
    if not args.out.endswith('.onnx'):
        parser.error(f'--out {args.out!r} must end with .onnx')
    check_outputs(parser, args, '--out', '--json')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print('export_onnx.py: error: onnxruntime is not installed; pip install -e .[deploy]', file=sys.stderr)
        return 2
    result = run_reporting_errors('export_onnx.py', lambda: export_config(
        args.config, args.out, args.checkpoint, args.pruning_ratios, args.img_size, args.batch_size, args.opset,
        args.dynamo, args.num_warmup, args.num_repeats, not args.no_latency, args.torch_latency, args.keep_dense,
        args.cfg_options))
    if result is None:
        return 2
    if args.json is not None:
        write_json(args.json, result)
    return 0 if result['check']['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
