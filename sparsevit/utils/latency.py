"""Backbone latency measurement shared by ``tools/measure_latency.py``, the search and the benchmarks.

Faithful to the original ``measure_latency.py``: backbone only, random input of batch 4 by default, warm-up
forwards, then timed forwards whose mean is taken after dropping the top and bottom 25 %. Improvements: CUDA
timing is synchronised around every forward, CPU runs under ``torch.inference_mode``, and the raw times are
returned so callers can split repeats across ranks and gather them.
"""
import time
from typing import Callable, List, Optional, Sequence

import torch


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
    if device in (None, 'auto'):
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    if dev.type not in ('cpu', 'cuda'):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return dev


def time_forwards(fn: Callable[[], object], num_repeats: int, device: torch.device,
                  progress: Optional[Callable[[int], None]] = None) -> List[float]:
    """Run ``fn`` ``num_repeats`` times and return each wall time in milliseconds (CUDA-synchronised)."""
    times = []
    for i in range(num_repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000.0)
        if progress is not None:
            progress(i)
    return times


@torch.inference_mode()
def measure_backbone_latency(backbone: torch.nn.Module, img_size: int = 672, batch_size: int = 4,
                             num_warmup: int = 10, num_repeats: int = 50, device=None,
                             progress: Optional[Callable[[int], None]] = None, seed: int = 0) -> dict:
    """Latency of ``backbone`` on a random ``(batch_size, 3, img_size, img_size)`` input.

    Returns:
        dict with ``latency_ms`` (trimmed mean), ``times_ms`` (every timed forward), and the settings used.
    """
    if img_size <= 0 or batch_size <= 0 or num_warmup < 0 or num_repeats <= 0:
        raise ValueError('img_size, batch_size and num_repeats must be positive and num_warmup >= 0')
    dev = resolve_device(device if not isinstance(device, torch.device) else str(device))
    backbone.to(dev)
    backbone.eval()  # not chained: mmdet's SwinTransformer.train() returns None
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, 3, img_size, img_size, generator=gen).to(dev)
    for _ in range(num_warmup):
        backbone(x)
    times = time_forwards(lambda: backbone(x), num_repeats, dev, progress)
    return dict(latency_ms=trimmed_mean(times), times_ms=times, img_size=img_size, batch_size=batch_size,
                device=str(dev), num_warmup=num_warmup, num_repeats=num_repeats)
