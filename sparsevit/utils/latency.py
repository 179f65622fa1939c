"""Latency measurement shared by ``tools/measure_latency.py``, ``tools/benchmark_backbone.py``, the experiments
and the search.

Faithful to the original ``measure_latency.py``: backbone only, random input of batch 4 by default, warm-up
forwards, then timed forwards whose mean is taken after dropping the top and bottom 25 %. Improvements: CUDA
timing is synchronised around every forward, everything runs under ``torch.inference_mode``, and the raw times are
returned so callers can split repeats across ranks and gather them.

Deployment settings shared by the tools (issue 9):

* ``dtype`` — ``--dtype fp32|fp16|bf16`` as ``torch.autocast`` (fp16 on CUDA only), through
  :func:`sparsevit.utils.precision.autocast_context`, which keeps mmdet's ``force_fp32`` steps of a detector in fp32.
* :func:`compile_module` — ``--compile``: ``torch.compile(module, fullgraph=True)`` and a first call, with any
  failure turned into one :class:`CompileError` line.
* :func:`measure_backbone_latency` and :func:`measure_detector_latency` — the two ``--scope`` of the latency tool.
* :func:`interleave` — several configurations timed round by round (one measurement of each per round), so that a
  change of the machine's load hits them all alike.
"""
import contextlib
import platform
import time
from typing import Callable, Dict, Hashable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .precision import autocast_context, resolve_dtype

#: (warm-up, timed) forwards per measurement. On CUDA, the only device the original supports, these are the
#: original's: ``tools/measure_latency.py`` 500 + 500, ``tools/search.py`` 200 + 300 per rank. On CPU (about 2 s
#: per Swin-T forward at 672x672 on 2 cores) those would take most of an hour per configuration, so the CPU
#: default is a short protocol that still gives a stable trimmed mean.
PROTOCOLS = {
    'measure_latency': dict(cuda=(500, 500), cpu=(5, 20)),
    'search': dict(cuda=(200, 300), cpu=(5, 20)),
}

#: torch.compile recompiles once per pruning configuration, dtype and input shape; a benchmark compiles a dozen
#: variants of one ``forward``, more than dynamo's default limit (8), past which it would silently run eagerly.
RECOMPILE_LIMIT = 64


def default_protocol(tool: str, device: torch.device, num_warmup: Optional[int] = None,
                     num_repeats: Optional[int] = None) -> Tuple[int, int, str]:
    """``(num_warmup, num_repeats, description)`` of ``tool`` on ``device``; explicit values override the defaults.

    ``description`` says which protocol was used, e.g. ``'original CUDA protocol: 500 warm-up + 500 timed'`` or
    ``'short CPU protocol: 5 warm-up + 20 timed'`` (``'custom: ...'`` when a value was overridden).
    """
    if tool not in PROTOCOLS:
        raise ValueError(f'unknown latency protocol {tool!r}; expected one of {sorted(PROTOCOLS)}')
    kind = 'cuda' if torch.device(device).type == 'cuda' else 'cpu'
    warm, reps = PROTOCOLS[tool][kind]
    name = 'original CUDA protocol' if kind == 'cuda' else 'short CPU protocol'
    if (num_warmup is not None and num_warmup != warm) or (num_repeats is not None and num_repeats != reps):
        name = 'custom protocol'
    warm = warm if num_warmup is None else int(num_warmup)
    reps = reps if num_repeats is None else int(num_repeats)
    return warm, reps, f'{name}: {warm} warm-up + {reps} timed forwards, trimmed mean (25 % each side)'


def trimmed_mean(times: Sequence[float], trim: float = 0.25) -> float:
    """Mean after dropping the lowest and highest ``trim`` fraction (the original drops 25 % on each side)."""
    if not times:
        raise ValueError('trimmed_mean needs at least one time')
    ordered = sorted(times)
    cut = int(len(ordered) * trim)
    kept = ordered[cut:len(ordered) - cut] or ordered
    return sum(kept) / len(kept)


def resolve_device(device: Optional[str]) -> torch.device:
    """``None``/'auto' -> cuda when available else cpu; 'cuda' without a GPU raises ValueError."""
    if isinstance(device, torch.device):
        device = str(device)
    if device in (None, 'auto'):
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    if dev.type not in ('cpu', 'cuda'):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return dev


# ---------------------------------------------------------------------------------------------------- compile
class CompileError(RuntimeError):
    """``torch.compile(..., fullgraph=True)`` failed; the message is one line (the exception's type and gist)."""


def compile_module(module: torch.nn.Module, example: torch.Tensor, dtype: str = 'fp32') -> Callable:
    """``torch.compile(module, fullgraph=True)``, compiled by a first (untimed) call on ``example`` at ``dtype``.

    Compilation is lazy in torch, so the first call is made here, under inference mode and the autocast of
    ``dtype``, to report a graph break or a compiler error at once rather than inside a timed run.

    Raises:
        CompileError: one line naming the module and the reason (e.g. the first graph break).
    """
    _raise_recompile_limit(RECOMPILE_LIMIT)
    try:
        compiled = torch.compile(module, fullgraph=True)
        with torch.inference_mode(), autocast_context(dtype, example.device):
            compiled(example)
    except Exception as err:  # dynamo/inductor raise many types; the tools report one line
        raise CompileError(f'torch.compile(fullgraph=True) of {type(module).__name__} failed: '
                           f'{type(err).__name__}: {first_line(err)}') from err
    return compiled


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message, cut to ``limit`` characters."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else repr(err)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _raise_recompile_limit(limit: int) -> None:
    config = torch._dynamo.config
    for name in ('recompile_limit', 'cache_size_limit'):  # renamed in torch 2.6; older releases have the second
        if hasattr(config, name) and getattr(config, name) < limit:
            setattr(config, name, limit)


# ---------------------------------------------------------------------------------------------------- timing
def time_forwards(fn: Callable[[], object], num_repeats: int, device: torch.device,
                  progress: Optional[Callable[[int], None]] = None) -> List[float]:
    """Run ``fn`` ``num_repeats`` times and return each wall time in milliseconds (CUDA-synchronised)."""
    times = []
    for i in range(num_repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000.0)
        if progress is not None:
            progress(i)
    return times


def warm_then_time(fn: Callable[[], object], num_warmup: int, num_repeats: int, device: torch.device,
                   progress: Optional[Callable[[int], None]] = None) -> List[float]:
    """``num_warmup`` untimed calls of ``fn``, then :func:`time_forwards`; ``progress(i)`` after every call, the
    warm-up ones included (``num_warmup + num_repeats`` calls)."""
    for i in range(num_warmup):
        fn()
        if progress is not None:
            progress(i)
    return time_forwards(fn, num_repeats, device, None if progress is None else (lambda i: progress(num_warmup + i)))


#: The orders of :func:`interleave`'s rounds.
ORDERS = ('alternate', 'rotate', 'same')


def interleave(keys: Sequence[Hashable], rounds: int, measure: Callable[[Hashable], float], warmup: int = 0,
               order: str = 'alternate', on_round: Optional[Callable[[int], None]] = None
               ) -> Dict[Hashable, List[float]]:
    """``measure(key)`` for every key, round after round: per key, one value per timed round.

    Args:
        keys: what to measure (e.g. configuration names); measured in this order in round 0.
        rounds: timed rounds.
        measure: one measurement of a key (e.g. a latency in ms).
        warmup: untimed rounds before them (measured the same way, values dropped).
        order: ``'alternate'``: the order reversed every other round (no key always measured right after the same
            one); ``'rotate'``: round ``r`` starts at key ``r % len(keys)``; ``'same'``: every round in the order
            of ``keys``.
        on_round: called with the round's index after every round, warm-up rounds included (``warmup + rounds``
            calls).
    """
    if order not in ORDERS:
        raise ValueError(f'order must be one of {ORDERS}, got {order!r}')
    keys = list(keys)
    times = {k: [] for k in keys}
    for r in range(warmup + rounds):
        if order == 'same':
            ordered = keys
        elif order == 'alternate':
            ordered = keys if r % 2 == 0 else keys[::-1]
        else:
            shift = r % len(keys) if keys else 0
            ordered = keys[shift:] + keys[:shift]
        for key in ordered:
            value = measure(key)
            if r >= warmup:
                times[key].append(value)
        if on_round is not None:
            on_round(r)
    return times


def device_name(device: torch.device, cpu: str = '{processor} ({threads} threads)', cuda: str = '{name}') -> str:
    """The timing device in words: ``cuda`` formatted with the GPU's model (``name``), or ``cpu`` formatted with the
    CPU type (``processor``) and torch's thread count (``threads``)."""
    if device.type == 'cuda':
        return cuda.format(name=torch.cuda.get_device_name(device))
    return cpu.format(processor=platform.processor() or platform.machine(), threads=torch.get_num_threads())


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


ImgSize = Union[int, Sequence[int]]  # a square side, or (height, width)


def image_hw(img_size: ImgSize) -> Tuple[int, int]:
    """``(height, width)`` of a square side or an ``(h, w)`` pair."""
    if isinstance(img_size, int):
        return img_size, img_size
    h, w = img_size
    return int(h), int(w)


def size_value(img_size: ImgSize):
    """How results record a size: the side of a square, else ``[h, w]``."""
    h, w = image_hw(img_size)
    return h if h == w else [h, w]


def size_text(img_size: ImgSize) -> str:
    """``672x672``, ``1024x2048`` (height x width)."""
    h, w = image_hw(img_size)
    return f'{h}x{w}'


def random_images(batch_size: int, img_size: ImgSize, device: torch.device, seed: int = 0,
                  pad_to: int = 1) -> torch.Tensor:
    """Seeded ``[B, 3, H, W]`` standard-normal images on ``device`` (``img_size``: a side or ``(h, w)``),
    zero-padded to a multiple of ``pad_to``."""
    h, w = image_hw(img_size)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, 3, h, w, generator=gen)
    return torch.nn.functional.pad(x, (0, (-w) % pad_to, 0, (-h) % pad_to)).to(device)


def _check_settings(img_size: ImgSize, batch_size: int, num_warmup: int, num_repeats: int) -> None:
    if min(image_hw(img_size)) <= 0 or batch_size <= 0 or num_warmup < 0 or num_repeats <= 0:
        raise ValueError('img_size, batch_size and num_repeats must be positive and num_warmup >= 0')


def measure_backbone_latency(backbone: torch.nn.Module, img_size: ImgSize = 672, batch_size: int = 4,
                             num_warmup: int = 10, num_repeats: int = 50, device=None,
                             progress: Optional[Callable[[int], None]] = None, seed: int = 0,
                             dtype: str = 'fp32', compile: bool = False) -> dict:
    """Latency of ``backbone`` on a random ``(batch_size, 3, H, W)`` input (``img_size``: a side or ``(h, w)``).

    Args:
        progress: called after every forward, warm-up ones included (``num_warmup + num_repeats`` calls).
        dtype: 'fp32', 'fp16' (CUDA) or 'bf16': the autocast of :func:`~sparsevit.utils.precision.autocast_context`.
        compile: time ``torch.compile(backbone, fullgraph=True)``, compiled before the warm-up
            (:func:`compile_module`; raises :class:`CompileError`).

    Returns:
        dict with ``latency_ms`` (trimmed mean), ``times_ms`` (every timed forward), and the settings used.
    """
    _check_settings(img_size, batch_size, num_warmup, num_repeats)
    dev = resolve_device(device)
    resolve_dtype(dtype, dev)
    backbone.to(dev)
    backbone.eval()  # not chained: mmdet's SwinTransformer.train() returns None
    x = random_images(batch_size, img_size, dev, seed)
    fn = compile_module(backbone, x, dtype) if compile else backbone
    with torch.inference_mode(), autocast_context(dtype, dev):
        times = warm_then_time(lambda: fn(x), num_warmup, num_repeats, dev, progress)
    return dict(latency_ms=trimmed_mean(times), times_ms=times, img_size=size_value(img_size), batch_size=batch_size,
                device=str(dev), num_warmup=num_warmup, num_repeats=num_repeats, dtype=dtype, compiled=compile)


def detector_inputs(batch_size: int, img_size: ImgSize, device: torch.device,
                    seed: int = 0) -> Tuple[torch.Tensor, List[dict]]:
    """Random test images and their ``img_metas``, as the 672x672 test pipeline makes them.

    The images are ``img_size`` (a side or ``(h, w)``), zero-padded to a multiple of 32 (``Pad(size_divisor=32)``);
    the metas say so (``img_shape``/``ori_shape`` the image, ``pad_shape`` the tensor, scale factor 1, no flip).
    """
    x = random_images(batch_size, img_size, device, seed, pad_to=32)  # [B, 3, Hp, Wp]
    shape, pad_shape = (*image_hw(img_size), 3), (x.shape[2], x.shape[3], 3)
    metas = [dict(filename=None, ori_filename=None, ori_shape=shape, img_shape=shape, pad_shape=pad_shape,
                  scale_factor=np.ones(4, dtype=np.float32), flip=False, flip_direction=None)
             for _ in range(batch_size)]
    return x, metas


@contextlib.contextmanager
def _timed_children(model: torch.nn.Module, names: Sequence[str], device: torch.device,
                    spans: Dict[str, List[float]]) -> Iterator[None]:
    """Append the wall time (ms, CUDA-synchronised) of every call of ``model.<name>`` to ``spans[name]``."""
    handles = []
    for name in names:
        child, start = getattr(model, name), {}

        def before(module, args, start=start):
            _sync(device)
            start['t'] = time.perf_counter()

        def after(module, args, output, name=name, start=start):
            _sync(device)
            spans[name].append((time.perf_counter() - start['t']) * 1000.0)

        handles += [child.register_forward_pre_hook(before), child.register_forward_hook(after)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def count_detections(results: list) -> float:
    """Mean number of boxes per image in mmdet test results (``bbox`` or ``(bbox, segm)`` per image)."""
    boxes = [r[0] if isinstance(r, tuple) else r for r in results]  # per image: one array per class
    return sum(sum(len(c) for c in per_class) for per_class in boxes) / max(1, len(boxes))


def _measure_whole(model: torch.nn.Module, inputs: torch.Tensor, forward: Callable[[], object], parts: Sequence[str],
                   num_warmup: int, num_repeats: int, dev: torch.device, progress, dtype: str,
                   compile: bool) -> dict:
    """Time ``forward()`` (a whole test forward of ``model`` on ``inputs``) and, inside the same runs, the calls of
    ``model.<part>`` for each of ``parts`` (the first: the backbone, compiled with ``compile``)."""
    eager_backbone = model.backbone
    spans: Dict[str, List[float]] = {name: [] for name in parts}
    try:
        if compile:
            model.backbone = compile_module(eager_backbone, inputs, dtype)
        with torch.inference_mode(), autocast_context(dtype, dev, model), \
                _timed_children(model, parts, dev, spans):
            times = warm_then_time(forward, num_warmup, num_repeats, dev, progress)
    finally:
        model.backbone = eager_backbone
    latency = trimmed_mean(times)
    # one call of each part per test forward: the warm-up forwards' spans come first
    part_ms = {f'{name}_ms': trimmed_mean(spans[name][num_warmup:]) for name in parts}
    return dict(latency_ms=latency, times_ms=times, **part_ms, backbone_share=part_ms['backbone_ms'] / latency)


def measure_detector_latency(model: torch.nn.Module, img_size: ImgSize = 672, batch_size: int = 4,
                             num_warmup: int = 10, num_repeats: int = 50, device=None,
                             progress: Optional[Callable[[int], None]] = None, seed: int = 0,
                             dtype: str = 'fp32', compile: bool = False) -> dict:
    """Latency of a whole mmdet detector's test forward on random images, and its backbone's share.

    Times ``model(img=[imgs], img_metas=[metas], return_loss=False, rescale=True)``, the forward of
    ``tools/test.py`` (for Mask R-CNN: backbone, neck, RPN with its NMS, RoI box head with its NMS, mask head,
    mask pasting), on :func:`detector_inputs`. The backbone and the neck are timed inside the same runs by
    forward hooks, so the share needs no second measurement.

    Args:
        progress, dtype: as :func:`measure_backbone_latency` (with ``dtype`` the fp32 parts of
            :func:`~sparsevit.utils.precision.autocast_context` stay fp32).
        compile: compile the backbone only (:func:`compile_module`); the neck and heads run eagerly (RPN/RoI
            post-processing, NMS and mask pasting are data-dependent).

    Returns:
        dict with ``latency_ms`` (trimmed mean of whole forwards), ``times_ms``, ``backbone_ms`` and ``neck_ms``
        (trimmed means of the same runs' parts), ``backbone_share`` (``backbone_ms / latency_ms``),
        ``detections_per_image`` (of the last run) and the settings used.
    """
    _check_settings(img_size, batch_size, num_warmup, num_repeats)
    dev = resolve_device(device)
    resolve_dtype(dtype, dev)
    model.to(dev)
    model.eval()
    imgs, metas = detector_inputs(batch_size, img_size, dev, seed)
    parts = ['backbone'] + (['neck'] if getattr(model, 'with_neck', False) else [])
    outputs: list = []

    def forward():
        outputs[:] = model(img=[imgs], img_metas=[metas], return_loss=False, rescale=True)

    result = _measure_whole(model, imgs, forward, parts, num_warmup, num_repeats, dev, progress, dtype, compile)
    return dict(result, detections_per_image=count_detections(outputs), img_size=size_value(img_size),
                batch_size=batch_size, input_shape=list(imgs.shape), device=str(dev), num_warmup=num_warmup,
                num_repeats=num_repeats, dtype=dtype, compiled=compile)


def measure_segmentor_latency(model: torch.nn.Module, img_size: ImgSize = (512, 1024), batch_size: int = 1,
                              num_warmup: int = 10, num_repeats: int = 50, device=None,
                              progress: Optional[Callable[[int], None]] = None, seed: int = 0,
                              dtype: str = 'fp32', compile: bool = False) -> dict:
    """Latency of a whole mmseg segmentor's ``encode_decode`` (backbone, neck if any, decode head, the logits
    resized to the image: a ``mode='whole'`` test forward without the argmax) on random images of ``img_size``,
    and the backbone's share (and the neck's), timed inside the same runs; the rest is the decode head's (mmseg
    calls its ``forward`` directly, which no hook sees) and the resize's.

    Returns:
        dict with ``latency_ms``, ``times_ms``, ``backbone_ms`` (and ``neck_ms`` with a neck), ``head_ms`` (the
        rest), ``backbone_share`` and the settings used.
    """
    _check_settings(img_size, batch_size, num_warmup, num_repeats)
    dev = resolve_device(device)
    resolve_dtype(dtype, dev)
    model.to(dev)
    model.eval()
    imgs = random_images(batch_size, img_size, dev, seed)
    shape = (*image_hw(img_size), 3)
    metas = [dict(ori_shape=shape, img_shape=shape, pad_shape=shape, flip=False) for _ in range(batch_size)]
    parts = ['backbone'] + (['neck'] if getattr(model, 'with_neck', False) else [])
    result = _measure_whole(model, imgs, lambda: model.encode_decode(imgs, metas), parts, num_warmup, num_repeats,
                            dev, progress, dtype, compile)
    head_ms = result['latency_ms'] - sum(result[f'{name}_ms'] for name in parts)
    return dict(result, head_ms=head_ms, img_size=size_value(img_size), batch_size=batch_size,
                input_shape=list(imgs.shape), device=str(dev), num_warmup=num_warmup, num_repeats=num_repeats,
                dtype=dtype, compiled=compile)
