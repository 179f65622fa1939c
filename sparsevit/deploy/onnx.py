"""ONNX export of a SparseViT backbone at a fixed pruning configuration, checked and timed in onnxruntime.

The exported graph has static shapes: every block keeps a fixed number of windows ``k`` (from the configuration and
the input size). Window ranking is one ``TopK`` per stage and kind of block, window reads are ``Gather`` and
write-backs ``ScatterND``, so the pruning pays off in the runtime too. Needs the optional ``onnx`` and
``onnxruntime`` packages (``pip install -e .[deploy]``); ``onnxruntime`` is imported only by the functions that
run a model.
"""
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional

import numpy as np
import torch

from ..utils.latency import trimmed_mean, warm_then_time

#: Largest relative difference (max |ort - torch| / max |torch| per output) accepted by :func:`check_onnx` in fp32.
ONNX_TOLERANCE = 1e-4
MIN_OPSET = 17


def _check_exportable(backbone: torch.nn.Module) -> None:
    from ..models.backbones.sparse_swin import SparseSwinTransformer
    if not isinstance(backbone, SparseSwinTransformer):
        raise ValueError(f'only a SparseSwinTransformer (SparseViT) backbone can be exported, got '
                         f'{type(backbone).__name__}')
    if backbone.window_selection != 'l2':
        raise ValueError(f"window_selection={backbone.window_selection!r} draws its windows from a CPU generator "
                         "per call and cannot be exported; use window_selection='l2'")


def output_names(backbone: torch.nn.Module) -> List[str]:
    """``out{i}`` for each stage in ``out_indices``."""
    return [f'out{i}' for i in backbone.out_indices]


def export_backbone(backbone: torch.nn.Module, path: str, img_size: int = 672, batch_size: int = 4,
                    opset: int = 17, dynamo: bool = False) -> str:
    """Export ``backbone`` at its current ``pruning_ratios`` to ONNX for ``[batch_size, 3, img_size, img_size]``.

    Args:
        backbone: a ``SparseSwinTransformer``; exported in eval mode (its mode is restored afterwards).
        path: the ``.onnx`` file to write (its folder is created).
        img_size, batch_size: the static input shape (the graph is specific to it, as ``k`` per block is).
        opset: ONNX opset, at least 17.
        dynamo: use the ``torch.export``-based exporter instead of the TorchScript-based one (default). Both
            give the same graph semantics; the TorchScript one is faster and keeps the requested opset exactly.

    Returns:
        ``path``.

    Raises:
        ValueError: for a backbone that cannot be exported or a bad argument.
    """
    _check_exportable(backbone)
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f'opset must be an int >= {MIN_OPSET} (ScaledDotProductAttention, TopK, ScatterND), '
                         f'got {opset!r}')
    for name, value in (('img_size', img_size), ('batch_size', batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f'{name} must be a positive int, got {value!r}')
    parent = osp.dirname(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)
    device = next(backbone.parameters()).device
    x = torch.randn(batch_size, 3, img_size, img_size, device=device)
    was_training, record = backbone.training, backbone.record_selection
    backbone.eval()
    backbone.record_selection = False
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')  # TracerWarnings: the sizes are meant to be constants
            torch.onnx.export(backbone, (x, ), path, input_names=['img'], output_names=output_names(backbone),
                              opset_version=opset, dynamo=dynamo, do_constant_folding=True,
                              **({'optimize': True, 'verbose': False} if dynamo else {}))
    finally:
        backbone.train(was_training)
        backbone.record_selection = record
    return path


def ort_session(path: str, threads: Optional[int] = None):
    """An onnxruntime CPU session of the model at ``path`` (warnings silenced); ``threads``: its intra-op threads
    (default: onnxruntime's)."""
    import onnxruntime as ort
    if not osp.isfile(path):
        raise ValueError(f'ONNX file not found: {path}')
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def check_onnx(backbone: torch.nn.Module, path: str, x: torch.Tensor) -> Dict[str, object]:
    """Run the ONNX model in onnxruntime and the PyTorch backbone (eval, fp32) on ``x``; compare every output.

    Returns:
        dict(outputs=[dict(name, shape, max_abs_diff, max_rel_diff)], max_rel_diff, tolerance, ok): the relative
        difference of an output is ``max |ort - torch| / max |torch|``; ``ok`` when every one is <= 1e-4.
    """
    session = ort_session(path)
    feed = {session.get_inputs()[0].name: x.detach().cpu().float().numpy()}
    onnx_outs = session.run(None, feed)
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            torch_outs = backbone(x)
    finally:
        backbone.train(was_training)
    if len(onnx_outs) != len(torch_outs):
        raise ValueError(f'{path} has {len(onnx_outs)} outputs, the backbone {len(torch_outs)}')
    outputs = []
    for meta, got, ref in zip(session.get_outputs(), onnx_outs, torch_outs):
        ref = ref.detach().cpu().float().numpy()
        if got.shape != ref.shape:
            raise ValueError(f'{path}: output {meta.name} has shape {got.shape}, the backbone {ref.shape} (was it '
                             'exported for another input size or configuration?)')
        diff = float(np.abs(got - ref).max())
        outputs.append(dict(name=meta.name, shape=list(ref.shape), max_abs_diff=diff,
                            max_rel_diff=diff / max(float(np.abs(ref).max()), 1e-30)))
    worst = max(o['max_rel_diff'] for o in outputs)
    return dict(outputs=outputs, max_rel_diff=worst, tolerance=ONNX_TOLERANCE, ok=worst <= ONNX_TOLERANCE)


def ort_latency(path: str, x: torch.Tensor, num_warmup: int = 5, num_repeats: int = 20) -> float:
    """onnxruntime latency of the model at ``path`` on input ``x`` (CPU): trimmed mean in ms (25 % each side)."""
    if num_warmup < 0 or num_repeats <= 0:
        raise ValueError(f'num_warmup must be >= 0 and num_repeats > 0, got {num_warmup} and {num_repeats}')
    session = ort_session(path)
    feed = {session.get_inputs()[0].name: x.detach().cpu().float().numpy()}
    return trimmed_mean(warm_then_time(lambda: session.run(None, feed), num_warmup, num_repeats, torch.device('cpu')))
