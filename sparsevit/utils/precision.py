"""Half-precision inference of mmdet detectors with ``torch.autocast`` (``--dtype`` of the tools).

Under autocast the convolutions and matrix products (backbone, neck, heads) run in fp16/bf16. The steps that mmdet
itself keeps in fp32 under its fp16 mode, the methods it marks ``@force_fp32`` (box decoding and NMS in
``get_bboxes``, RoI feature extraction, ...), run in fp32 with autocast off: mmcv's NMS and RoIAlign kernels
take fp32 only, and box coordinates in half precision would lose pixels. Those methods are found by their
decorator, so any mmdet detector gets mmdet's own list.

Every tool's ``--dtype`` goes through here: :func:`resolve_dtype` validates the name for a device (one-line
``ValueError``), :func:`autocast_context` is the context by name, :func:`autocast_inference` by torch dtype.
"""
import contextlib
import functools
import types
from typing import Callable, ContextManager, Iterator, List, Optional, Tuple

import torch
from mmcv.runner import force_fp32
from mmcv.runner.fp16_utils import cast_tensor_type

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
_FORCE_FP32_CODE = force_fp32()(lambda self: None).__code__  # every @force_fp32 wrapper runs this code


def resolve_dtype(name: str, device) -> Optional[torch.dtype]:
    """The autocast dtype of ``--dtype NAME`` on ``device`` (a name or ``torch.device``): None for fp32.

    Raises:
        ValueError: one line, for an unknown name, fp16 off CUDA, or half precision on a device other than CPU and
            CUDA.
    """
    if name not in DTYPES:
        raise ValueError(f'--dtype {name}: allowed values are {", ".join(DTYPES)}')
    device = torch.device(device).type
    if name == 'fp32':
        return None
    allowed = ('cuda',) if name == 'fp16' else ('cpu', 'cuda')
    if device not in allowed:
        raise ValueError(f'--dtype {name} needs {" or ".join(d.upper() for d in allowed)}; the device is {device} '
                         f'(use {"bf16 or " if name == "fp16" and device == "cpu" else ""}fp32)')
    return DTYPES[name]


def fp32_methods(model: torch.nn.Module) -> List[Tuple[torch.nn.Module, str]]:
    """(module, method name) of every ``@force_fp32`` method of the model's modules, as each module resolves it."""
    found = []
    for module in model.modules():
        names = {n for cls in type(module).__mro__ for n in vars(cls)}
        for name in sorted(names):
            fn = getattr(type(module), name, None)
            if isinstance(fn, types.FunctionType) and fn.__code__ is _FORCE_FP32_CODE:
                found.append((module, name))
    return found


def _in_fp32(method: Callable, device_type: str) -> Callable:
    """``method`` with fp16/bf16 tensor arguments cast to fp32 and autocast off."""
    @functools.wraps(method)
    def run(*args, **kwargs):
        args, kwargs = (cast_tensor_type(cast_tensor_type(x, torch.half, torch.float), torch.bfloat16, torch.float)
                        for x in (args, kwargs))
        with torch.autocast(device_type, enabled=False):
            return method(*args, **kwargs)
    return run


def autocast_context(name: str, device, model: Optional[torch.nn.Module] = None) -> ContextManager:
    """``--dtype NAME`` on ``device`` as a context (see :func:`autocast_inference`); validated at once.

    Raises:
        ValueError: as :func:`resolve_dtype`.
    """
    device_type = torch.device(device).type
    return autocast_inference(model, resolve_dtype(name, device_type), device_type)


@contextlib.contextmanager
def autocast_inference(model: Optional[torch.nn.Module], dtype: Optional[torch.dtype],
                       device_type: str) -> Iterator[None]:
    """Run the block under ``torch.autocast(device_type, dtype)`` with mmdet's ``@force_fp32`` methods in fp32.

    ``dtype=None`` (fp32) changes nothing. The methods of ``model`` (None: a bare backbone, nothing to patch) are
    patched on the module instances for the duration of the block only.
    """
    if dtype is None:
        yield
        return
    patched = fp32_methods(model) if model is not None else []
    for module, name in patched:
        setattr(module, name, _in_fp32(getattr(module, name), device_type))
    try:
        with torch.autocast(device_type, dtype=dtype):
            yield
    finally:
        for module, name in patched:
            delattr(module, name)
