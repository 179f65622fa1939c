"""Pure tensor functions for window selection, gather and scatter (they know no model).

Layout conventions (shape comments use them): ``B`` images, ``Hp, Wp`` the token map padded to a multiple of the
window size ``ws``, ``nW = (Hp // ws) * (Wp // ws)`` windows per image, ``N = ws * ws`` tokens per window, ``C``
channels, ``K`` kept windows in the whole batch. Windows are numbered row-major in the (possibly rolled) window
grid; a *flat* window index is ``b * nW + w``.

Instead of ``pad -> roll -> partition`` (three copies of the feature map) every block reads its windows with one
``index_select`` over the flattened token axis, through a precomputed token-index table that folds the cyclic shift
in, and writes them back with ``index_copy_``. Only 1-D indices are used, never N x C-expanded ones.
"""
import math
from typing import Sequence, Tuple

import numpy as np
import torch

SHIFT_MASK_VALUE = -100.0  # mmdet/Swin use -100, not -inf, for the shifted-window mask


def window_token_index(hp: int, wp: int, ws: int, shift: int, device=None) -> torch.Tensor:
    """Token-index table of the windows of a padded ``hp x wp`` map rolled by ``-shift``.

    Returns:
        LongTensor ``[nW, N]``: entry ``[w, n]`` is the flat (row-major) position in the *unrolled* padded map of
        token ``n`` of window ``w``, i.e. ``roll(x, (-shift, -shift))`` partitioned into windows, as an index.
    """
    ys, xs = torch.arange(hp, device=device) + shift, torch.arange(wp, device=device) + shift  # [Hp], [Wp]
    ys = torch.where(ys >= hp, ys - hp, ys)  # source row of each rolled row (not ``%``: inductor mis-bounds it
    xs = torch.where(xs >= wp, xs - wp, xs)  # when the table is fused into a data-dependent gather)
    flat = ys[:, None] * wp + xs[None, :]  # [Hp, Wp]
    flat = flat.view(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3)  # [nWh, nWw, ws, ws]
    return flat.reshape(-1, ws * ws)  # [nW, N]


def shift_attn_mask(hp: int, wp: int, ws: int, shift: int, device=None) -> torch.Tensor:
    """Swin's shifted-window attention mask (0 within a region, -100 across regions).

    Returns:
        FloatTensor ``[nW, N, N]``; all zeros when ``shift == 0``.
    """
    # region ids as mmdet's slices (0:-ws, -ws:-shift, -shift:) per axis, region = 3 * row region + column region;
    # computed arithmetically (slice writes of empty regions break the ONNX tracer)
    ys, xs = torch.arange(hp, device=device), torch.arange(wp, device=device)
    rows = (ys >= hp - ws).long() + (ys >= hp - shift).long() if shift > 0 else torch.zeros_like(ys)  # [Hp]
    cols = (xs >= wp - ws).long() + (xs >= wp - shift).long() if shift > 0 else torch.zeros_like(xs)  # [Wp]
    img = (rows[:, None] * 3 + cols[None, :]).float()  # [Hp, Wp]
    win = img.view(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)  # [nW, N]
    mask = win[:, None, :] - win[:, :, None]  # [nW, N, N]
    return mask.ne(0).float() * SHIFT_MASK_VALUE


def padded_token_mask(h: int, w: int, hp: int, wp: int, token_index: torch.Tensor) -> torch.Tensor:
    """Which window tokens are padding: BoolTensor ``[nW, N, 1]`` (True = padding)."""
    ys, xs = token_index // wp, token_index % wp  # [nW, N]
    return ((ys >= h) | (xs >= w)).unsqueeze(-1)


def boundary_windows(nwh: int, nww: int, shift: int, device=None) -> Tuple[torch.Tensor, int]:
    """Windows whose shifted-window mask is not all zero, from the grid alone (no tensor is read back).

    With a cyclic shift, the windows of the last window row and of the last window column mix regions of the
    rolled map (see :func:`shift_attn_mask`); no other window does.

    Returns:
        (BoolTensor ``[nW]``, True on a boundary window; their number, ``nWh + nWw - 1``, or 0 without shift).
    """
    if shift == 0:
        return torch.zeros(nwh * nww, dtype=torch.bool, device=device), 0
    rows = torch.arange(nwh, device=device) == nwh - 1  # [nWh]
    cols = torch.arange(nww, device=device) == nww - 1  # [nWw]
    return (rows[:, None] | cols[None, :]).reshape(-1), nwh + nww - 1  # [nWh, nWw] -> [nW]


def plain_first_windows(nwh: int, nww: int, shift: int, batch: int, device=None) -> Tuple[torch.Tensor, int]:
    """All flat window ids of a batch, mask-free windows first, from the grid alone (no sort, no host sync).

    Without shift every window is mask-free. With shift, the boundary windows (:func:`boundary_windows`: last
    window column, then last window row) of every image follow the mask-free ones of every image.

    Returns:
        (LongTensor ``[B * nW]``, number of leading mask-free windows).
    """
    nw = nwh * nww
    if shift == 0:
        return torch.arange(batch * nw, device=device), batch * nw
    base = torch.arange(batch, device=device)[:, None] * nw  # [B, 1]
    last_row = torch.arange(nww, device=device) + (nwh - 1) * nww  # [nWw]
    if nwh == 1 or nww == 1:  # every window is a boundary window (no empty tensors: ONNX export chokes on them)
        boundary = last_row if nwh == 1 else torch.arange(nwh, device=device) * nww + nww - 1
        return (base + boundary).reshape(-1), 0
    i = torch.arange((nwh - 1) * (nww - 1), device=device)
    plain = torch.div(i, nww - 1, rounding_mode='floor') * nww + i % (nww - 1)  # rows/cols but the last
    last_col = torch.arange(nwh - 1, device=device) * nww + nww - 1  # [nWh - 1]
    boundary = torch.cat([last_col, last_row])  # [nWh + nWw - 1]
    flat = torch.cat([(base + plain).reshape(-1), (base + boundary).reshape(-1)])  # [B*nW]
    return flat, batch * plain.numel()


def num_kept(num_windows: int, prune_ratio: float) -> int:
    """``k = floor(nW * (1 - prune_ratio))``, robust to float noise (e.g. ``100 * (1 - 0.9)`` is 10, not 9)."""
    return int(math.floor(round(num_windows * (1.0 - prune_ratio), 6)))


def window_scores(importance: torch.Tensor, token_index: torch.Tensor) -> torch.Tensor:
    """L2 norm of each window's importance values, per image.

    Args:
        importance: ``[B, Hp, Wp]`` padded importance map (zeros on padding), not rolled.
        token_index: ``[nW, N]`` from :func:`window_token_index` (the roll is folded in).

    Returns:
        ``[B, nW]`` window scores.
    """
    flat = importance.flatten(1)  # [B, Hp*Wp]
    return flat[:, token_index].norm(dim=-1)  # [B, nW, N] -> [B, nW]


def rank_windows(scores: torch.Tensor) -> torch.Tensor:
    """Window ids of each image from most to least important: LongTensor ``[B, nW]`` (stable for ties)."""
    return torch.sort(scores, dim=1, descending=True, stable=True).indices


def top_windows(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` most important window ids of each image, most important first: LongTensor ``[B, k]``.

    A static-shape alternative to :func:`rank_windows` (one ``TopK`` in ONNX) for traced graphs; equal to
    ``rank_windows(scores)[:, :k]`` except possibly at exact ties.
    """
    if k == 0:
        return scores.new_zeros((scores.shape[0], 0), dtype=torch.long)
    return torch.topk(scores, k, dim=1, largest=True, sorted=True).indices


def random_window_scores(batch: int, num_windows: int, seed: Sequence[int], device=None) -> torch.Tensor:
    """Uniform random window scores ``[B, nW]`` (fp32) from a generator seeded by the integers ``seed``.

    The seed words (e.g. ``(selection_seed, forward call, stage, shifted)``) are mixed by numpy's ``SeedSequence``,
    so neighbouring words give independent streams; the draw is on the CPU, so it is the same on every device.
    """
    state = int(np.random.SeedSequence([int(v) for v in seed]).generate_state(1, np.uint64)[0])
    gen = torch.Generator().manual_seed(state)
    return torch.rand(batch, num_windows, generator=gen).to(device)


def flat_window_index(order: torch.Tensor, k: int, num_windows: int) -> torch.Tensor:
    """Flat indices ``b * nW + w`` of the first ``k`` ranked windows of each image: LongTensor ``[B * k]``.

    ``order`` is ``[B, >= k]`` (a full ranking or a top-k), ``num_windows`` is ``nW``.
    """
    base = torch.arange(order.shape[0], device=order.device).unsqueeze(1) * num_windows  # [B, 1]
    return (base + order[:, :k]).reshape(-1)  # [B*k]


def split_plain_first(flat_idx: torch.Tensor, boundary: torch.Tensor, num_windows: int) -> Tuple[torch.Tensor, int]:
    """Reorder flat window indices so windows without a shift mask come first (eager mode: counting them reads a
    value back from the device; :func:`plain_first_windows` does all windows of a batch from the grid alone).

    Args:
        flat_idx: ``[K]`` flat window indices.
        boundary: ``[nW]`` bool, True where the shifted-window mask is not all zero.
        num_windows: ``nW``.

    Returns:
        (reordered ``[K]`` indices, number of leading mask-free windows).
    """
    is_b = boundary[flat_idx % num_windows]  # [K]
    perm = torch.argsort(is_b.to(torch.int8), stable=True)
    return flat_idx[perm], int(flat_idx.numel() - int(is_b.sum()))


def token_rows(flat_idx: torch.Tensor, token_index: torch.Tensor, num_windows: int, tokens_per_image: int):
    """Rows of the flattened ``[B*Hp*Wp, C]`` map holding the tokens of the given windows: ``[K*N]``."""
    img = torch.div(flat_idx, num_windows, rounding_mode='floor')  # [K]
    win = flat_idx - img * num_windows  # [K]
    return (img.unsqueeze(1) * tokens_per_image + token_index[win]).reshape(-1)  # [K, N] -> [K*N]


def gather_windows(x: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """``[B, Hp, Wp, C] -> [K, N, C]``: the tokens of the selected windows (``rows`` from :func:`token_rows`)."""
    c = x.shape[-1]
    return x.reshape(-1, c).index_select(0, rows).view(-1, n, c)  # [K*N, C] -> [K, N, C]


def scatter_windows_(x: torch.Tensor, rows: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """In place: write ``[K, N, C]`` windows back into ``x [B, Hp, Wp, C]`` at ``rows``; returns ``x``.

    While the TorchScript tracer runs (the ``dynamo=False`` ONNX exporter, which drops in-place writes into views)
    the write is out of place (``index_put``: one row-wise ``ScatterND`` in ONNX) and the result is a new tensor:
    callers always use the returned tensor.
    """
    c = x.shape[-1]
    src = windows.reshape(-1, c).to(x.dtype)  # [K*N, C]
    if torch.jit.is_tracing():
        return x.reshape(-1, c).index_put((rows, ), src).view(x.shape)
    x.view(-1, c).index_copy_(0, rows, src)
    return x
