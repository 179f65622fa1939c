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

Errors in the arguments, or what cannot be exported (e.g. a non-Swin backbone), print one line and exit 2; a failed
check exits 1.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)

import torch  # noqa: E402
from mmcv import DictAction  # noqa: E402

import sparsevit  # noqa: F401,E402  (registers SparseViT)
from sparsevit.deploy.build import build_sparse_backbone  # noqa: E402
from sparsevit.schedule import is_dense  # noqa: E402
from sparsevit.utils.cli import OneLineParser, int_at_least, run_reporting_errors, write_json  # noqa: E402
from sparsevit.utils.config import load_config  # noqa: E402
from sparsevit.utils.latency import trimmed_mean, warm_then_time  # noqa: E402


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
    if osp.isdir(args.out):
        parser.error(f'--out {args.out} is a directory; give a file path')
    return args


def dense_path(path: str) -> str:
    return path[:-len('.onnx')] + '.dense.onnx'


def torch_latency(backbone, x: torch.Tensor, num_warmup: int, num_repeats: int) -> float:
    with torch.inference_mode():
        return trimmed_mean(warm_then_time(lambda: backbone(x), num_warmup, num_repeats, x.device))


def run(args: argparse.Namespace) -> dict:
    from sparsevit.deploy.onnx import check_onnx, export_backbone, ort_latency
    cfg = load_config(args.config, args.cfg_options, require_backbone=True)
    backbone, bb = build_sparse_backbone(cfg, args.checkpoint, args.pruning_ratios)
    ratios = [list(s) for s in backbone.pruning_ratios]
    print(f'exporting {bb["type"]} of {args.config} at pruning_ratios {ratios}, input '
          f'[{args.batch_size}, 3, {args.img_size}, {args.img_size}], opset {args.opset} -> {args.out}', flush=True)
    export_backbone(backbone, args.out, args.img_size, args.batch_size, args.opset, dynamo=args.dynamo)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=torch.Generator().manual_seed(0))
    check = check_onnx(backbone, args.out, x)
    for out in check['outputs']:
        print(f"  {out['name']} {out['shape']}: max abs diff {out['max_abs_diff']:.2e}, max rel diff "
              f"{out['max_rel_diff']:.2e}")
    print(f"check onnxruntime vs PyTorch: {'ok' if check['ok'] else 'FAILED'} (max rel diff "
          f"{check['max_rel_diff']:.2e}, tolerance {check['tolerance']:.0e})", flush=True)
    result = dict(config=args.config, checkpoint=args.checkpoint, out=args.out, img_size=args.img_size,
                  batch_size=args.batch_size, opset=args.opset, pruning_ratios=ratios, check=check)
    if args.no_latency:
        return result
    dense = args.out if is_dense(backbone.pruning_ratios) else dense_path(args.out)
    if dense != args.out:
        backbone.set_pruning_ratios(None)
        export_backbone(backbone, dense, args.img_size, args.batch_size, args.opset, dynamo=args.dynamo)
    lat = dict(sparse=ort_latency(args.out, x, args.num_warmup, args.num_repeats),
               dense=ort_latency(dense, x, args.num_warmup, args.num_repeats))
    if dense != args.out and not args.keep_dense:
        os.remove(dense)
    result['onnxruntime_ms'] = lat
    print(f"onnxruntime latency (CPU, {args.num_warmup} warm-up + {args.num_repeats} timed, trimmed mean): "
          f"exported {lat['sparse']:.2f} ms, dense {lat['dense']:.2f} ms, ratio {lat['sparse'] / lat['dense']:.3f}")
    if args.torch_latency:
        tl = {}
        for name, r in (('dense', None), ('sparse', ratios)):
            backbone.set_pruning_ratios(r)
            tl[name] = torch_latency(backbone, x, args.num_warmup, args.num_repeats)
        result['torch_ms'] = tl
        print(f"PyTorch eager fp32 latency: exported configuration {tl['sparse']:.2f} ms, dense {tl['dense']:.2f} ms, "
              f"ratio {tl['sparse'] / tl['dense']:.3f}")
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print('export_onnx.py: error: onnxruntime is not installed; pip install -e .[deploy]', file=sys.stderr)
        return 2
    result = run_reporting_errors('export_onnx.py', lambda: run(args))
    if result is None:
        return 2
    if args.json is not None:
        write_json(args.json, result)
    return 0 if result['check']['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
