"""A config's backbone exported to ONNX at a fixed pruning configuration, checked and timed in onnxruntime
(``tools/export_onnx.py``): the backbone of :mod:`.build`, the export, check and session of :mod:`.onnx`."""
import os
from typing import Optional

import torch

from ..schedule import is_dense
from ..utils.config import load_config
from ..utils.latency import trimmed_mean, warm_then_time
from .build import build_sparse_backbone


def dense_path(path: str) -> str:
    """Where the dense counterpart of ``path`` is exported: ``FILE.dense.onnx``."""
    return path[:-len('.onnx')] + '.dense.onnx'


def eager_latency(backbone, x: torch.Tensor, num_warmup: int, num_repeats: int) -> float:
    """PyTorch eager fp32 latency of ``backbone`` on ``x`` in inference mode: trimmed mean in ms."""
    with torch.inference_mode():
        return trimmed_mean(warm_then_time(lambda: backbone(x), num_warmup, num_repeats, x.device))


def export_config(config: str, out: str, checkpoint: Optional[str] = None, ratios_text: Optional[str] = None,
                  img_size: int = 672, batch_size: int = 4, opset: int = 17, dynamo: bool = False,
                  num_warmup: int = 3, num_repeats: int = 10, latency: bool = True, torch_latency: bool = False,
                  keep_dense: bool = False, cfg_options: Optional[dict] = None) -> dict:
    """Export ``config``'s backbone (:func:`~.build.build_sparse_backbone`) to ``out``, check it against PyTorch
    and, with ``latency``, time it and its dense counterpart in onnxruntime (and in PyTorch with
    ``torch_latency``); prints each step. Returns the result (``check``: :func:`~.onnx.check_onnx`'s).

    Raises:
        ValueError: one line, on bad input or what cannot be exported.
    """
    from .onnx import check_onnx, export_backbone, ort_latency
    cfg = load_config(config, cfg_options, require_backbone=True)
    backbone, bb = build_sparse_backbone(cfg, checkpoint, ratios_text)
    ratios = [list(s) for s in backbone.pruning_ratios]
    print(f'exporting {bb["type"]} of {config} at pruning_ratios {ratios}, input '
          f'[{batch_size}, 3, {img_size}, {img_size}], opset {opset} -> {out}', flush=True)
    export_backbone(backbone, out, img_size, batch_size, opset, dynamo=dynamo)
    x = torch.randn(batch_size, 3, img_size, img_size, generator=torch.Generator().manual_seed(0))
    check = check_onnx(backbone, out, x)
    for output in check['outputs']:
        print(f"  {output['name']} {output['shape']}: max abs diff {output['max_abs_diff']:.2e}, max rel diff "
              f"{output['max_rel_diff']:.2e}")
    print(f"check onnxruntime vs PyTorch: {'ok' if check['ok'] else 'FAILED'} (max rel diff "
          f"{check['max_rel_diff']:.2e}, tolerance {check['tolerance']:.0e})", flush=True)
    result = dict(config=config, checkpoint=checkpoint, out=out, img_size=img_size,
                  batch_size=batch_size, opset=opset, pruning_ratios=ratios, check=check)
    if not latency:
        return result
    dense = out if is_dense(backbone.pruning_ratios) else dense_path(out)
    if dense != out:
        backbone.set_pruning_ratios(None)
        export_backbone(backbone, dense, img_size, batch_size, opset, dynamo=dynamo)
    lat = dict(sparse=ort_latency(out, x, num_warmup, num_repeats),
               dense=ort_latency(dense, x, num_warmup, num_repeats))
    if dense != out and not keep_dense:
        os.remove(dense)
    result['onnxruntime_ms'] = lat
    print(f"onnxruntime latency (CPU, {num_warmup} warm-up + {num_repeats} timed, trimmed mean): "
          f"exported {lat['sparse']:.2f} ms, dense {lat['dense']:.2f} ms, ratio {lat['sparse'] / lat['dense']:.3f}")
    if torch_latency:
        tl = {}
        for name, r in (('dense', None), ('sparse', ratios)):
            backbone.set_pruning_ratios(r)
            tl[name] = eager_latency(backbone, x, num_warmup, num_repeats)
        result['torch_ms'] = tl
        print(f"PyTorch eager fp32 latency: exported configuration {tl['sparse']:.2f} ms, dense {tl['dense']:.2f} ms, "
              f"ratio {tl['sparse'] / tl['dense']:.3f}")
    return result
