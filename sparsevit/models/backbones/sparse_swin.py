"""SparseViT: a Swin Transformer that skips whole attention windows of low importance.

Adapts mmdet 2.28.2's :class:`~mmdet.models.backbones.SwinTransformer`: every module (and therefore every
``state_dict`` key, ``init_cfg``/``convert_weights`` checkpoint loading, ``frozen_stages``) is mmdet's own; only
``forward`` is rewritten. What changed and why:

* Window activation pruning (SparseViT, CVPR 2023): per stage, at the first block with a ratio > 0 the importance
  map ``mean_c |x|`` is computed once and reused by the stage's later blocks; each pruned block keeps the
  ``floor(nW * (1 - ratio))`` windows with the largest L2 norm of importance (ranked once for regular and once for
  shifted blocks, later blocks keep a prefix), runs the *whole* block (LN, attention, residual, LN, FFN, residual,
  drop-path) on those windows only and writes them back; the other windows pass through unchanged.
* Padding as the original SparseViT (``pad_before_norm=True``): each block zero-pads the stage map (and rolls it)
  *before* LN1, so padding tokens enter attention as ``LN1(0)`` (the LN1 bias) as keys and values, in dense and
  pruned blocks alike. mmdet pads *after* LN1 (padding tokens are exact zeros); ``pad_before_norm=False`` does that,
  and then at zero sparsity the output equals mmdet's ``SwinTransformer`` at every input size. The two differ only
  where a stage map is not a multiple of the window size (never at 672x672).
* Speed (also for dense blocks): the stage state stays NHWC and padded once per stage; windows are read and
  written with one 1-D ``index_select`` / ``index_copy_`` over flattened tokens through cached token-index tables
  that fold the cyclic shift in (no pad/roll/partition/reverse copies per block); attention uses
  ``F.scaled_dot_product_attention`` (``fused_attn=True``) with the relative-position bias as its mask, and the
  shift mask is only materialised for the boundary windows that need it (mask-free windows go first).
* Half precision (autocast): importance, window scores and ranking are computed in fp32 from the stage map
  whatever its dtype, so bf16/fp16 cannot change which windows are kept on the same stage input (except at exact
  ties); the -100 shift mask is added to the position bias in fp32 before the cast to the attention dtype.
* ``torch.compile(fullgraph=True)`` / ``torch.export`` / ONNX tracing: while tracing, every shape comes from the
  configuration and the input size (no value is read back from a tensor): kept windows of a pruned shifted block
  all get their own (possibly all-zero) shift mask instead of the eager path's data-dependent split, and index
  tables are not cached; window ranking is the selector's traced variant (top-k).
* Selection (``window_selection``) and observation (:meth:`observe_stages`) are chosen once, not per block: the
  backbone holds an eager and a traced selector (:mod:`sparsevit.ops.selection`), rebuilt when
  ``window_selection`` or ``selection_seed`` change; ``forward`` runs a plain loop over the stages unless an
  observer is registered.
"""
import contextlib
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmdet.models.backbones.swin import SwinTransformer
from mmdet.models.builder import BACKBONES

from ...ops import window as W
from ...ops.selection import (SelectionRecord, Selections, check_selection_seed, check_window_selection,
                              make_selectors)
from ...schedule import normalize_pruning_ratios

StageBefore = Callable[[int, torch.Tensor], None]  # (stage, its input [B, H, W, C]) before the stage runs
StageAfter = Callable[[int, Tuple[torch.Tensor, torch.Tensor]], None]  # (stage, forward_stage's result) after it


def _ignore(*args) -> None:
    """The observer of a stage event nobody asked for."""


def _tracing() -> bool:
    """True while ``torch.compile``, ``torch.export`` or the TorchScript-based ONNX exporter trace the forward."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _drop_path(x: torch.Tensor, drop_prob: float, training: bool, window_image: torch.Tensor,
               batch: int) -> torch.Tensor:
    """Per-image stochastic depth on windows ``[K, N, C]``: every window of image ``b`` shares one draw."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    mask = x.new_empty(batch).bernoulli_(keep).div_(keep)  # [B]
    return x * mask[window_image].view(-1, 1, 1)


class _Grid:
    """Index tables of one (unpadded size, shift, device); built from the sizes alone (no host sync)."""

    def __init__(self, h: int, w: int, ws: int, shift: int, device):
        self.hp, self.wp = h + (-h) % ws, w + (-w) % ws
        self.nwh, self.nww = self.hp // ws, self.wp // ws
        self.nw = self.nwh * self.nww
        self.token_index = W.window_token_index(self.hp, self.wp, ws, shift, device)  # [nW, N]
        self.has_pad = (self.hp, self.wp) != (h, w)
        self.pad_mask = W.padded_token_mask(h, w, self.hp, self.wp, self.token_index)  # [nW, N, 1]
        self.pad_map = ((torch.arange(self.hp, device=device) >= h)[:, None]
                        | (torch.arange(self.wp, device=device) >= w)[None, :]) if self.has_pad else None  # [Hp, Wp]
        self.shift_mask = W.shift_attn_mask(self.hp, self.wp, ws, shift, device) if shift else None  # [nW, N, N]
        self.boundary, _ = W.boundary_windows(self.nwh, self.nww, shift, device)  # [nW]
        self.shift = shift
        self._dense: Dict[int, Tuple[torch.Tensor, int]] = {}

    def dense_index(self, batch: int) -> Tuple[torch.Tensor, int]:
        """All windows of a batch as flat indices, mask-free first, and how many are mask-free."""
        if batch not in self._dense:
            self._dense[batch] = W.plain_first_windows(self.nwh, self.nww, self.shift, batch,
                                                       self.token_index.device)
        return self._dense[batch]


@BACKBONES.register_module('SparseViT')
@BACKBONES.register_module()
class SparseSwinTransformer(SwinTransformer):
    """Swin Transformer with SparseViT window activation pruning (registered also as ``SparseViT``).

    Args:
        pruning_ratios (None | float | list[float] | list[list[float]]): fraction of windows removed. ``None`` is
            dense; a float applies to every block; one float per stage; or the original schema, one list per stage
            of one ratio per block, e.g. ``[[0.3, 0.3], [0, 0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0, 0]]``. Each
            ratio in [0, 1), non-decreasing along a stage. Default: None.
        fused_attn (bool): use ``F.scaled_dot_product_attention``; False runs the explicit softmax reference.
            Default: True.
        pad_before_norm (bool): True (the original SparseViT): each block zero-pads the stage map before LN1, so
            padding tokens enter attention as ``LN1(0)``; False (mmdet): padding after LN1, padding tokens are
            zeros in attention, and at zero sparsity the output equals mmdet's ``SwinTransformer``. Only matters
            where a stage map is not a multiple of ``window_size``. Default: True.
        window_selection (str): ``'l2'`` keeps the windows with the largest L2 norm of importance (SparseViT);
            ``'random'`` (an ablation) keeps random windows at the same counts, with the same structure (one
            ranking per stage for regular and one for shifted blocks, later blocks keep a prefix, per image).
            Default: 'l2'.
        selection_seed (int): seed of ``'random'`` selection. Forward call ``n`` (``selection_calls``, counted from
            0 since construction) ranks the windows of stage ``i`` (regular/shifted ``s``) by uniform scores drawn
            from a generator seeded by ``(selection_seed, n, i, s)``: two runs of the same evaluation keep the
            same windows, different batches different ones. Reset ``selection_calls = 0`` to replay. Default: 0.
        pretrain_img_size, in_channels, embed_dims, patch_size, window_size, mlp_ratio, depths, num_heads, strides,
        out_indices, qkv_bias, qk_scale, patch_norm, drop_rate, attn_drop_rate, drop_path_rate, use_abs_pos_embed,
        act_cfg, norm_cfg, with_cp, pretrained, convert_weights, frozen_stages, init_cfg: exactly as mmdet's
            :class:`SwinTransformer` (same defaults).

    Attributes:
        record_selection (bool): when True, ``forward`` stores the kept windows in ``last_selection``: per stage,
            per block, None (dense block) or a :class:`~sparsevit.ops.selection.SelectionRecord` (keep=[B, k]
            window ids, grid=(nWh, nWw), shift, hw=(H, W), stride, scores=[B, nW] fp32 window scores the ranking
            used).
        selection_calls (int): forwards run so far (the ``n`` of ``'random'`` selection).
        window_selection, selection_seed: as the arguments; assigning one rebuilds the selectors.
    """

    def __init__(self, *args, pruning_ratios=None, fused_attn: bool = True, pad_before_norm: bool = True,
                 window_selection: str = 'l2', selection_seed: int = 0, **kwargs):
        if not isinstance(pad_before_norm, bool):
            raise ValueError(f'pad_before_norm must be True or False, got {pad_before_norm!r}')
        check_window_selection(window_selection)
        check_selection_seed(selection_seed)
        super().__init__(*args, **kwargs)
        self.depths = tuple(len(stage.blocks) for stage in self.stages)
        self.window_size = self.stages[0].blocks[0].attn.window_size
        self.fused_attn = fused_attn
        self.pad_before_norm = pad_before_norm
        self._set_selection(window_selection, selection_seed)
        self.selection_calls = 0
        self.record_selection = False
        self.last_selection: Optional[Selections] = None
        self._stage_observers: List[Tuple[StageBefore, StageAfter]] = []
        self._grids: Dict[tuple, _Grid] = {}
        self._ratios: Tuple[Tuple[float, ...], ...] = ()
        self.set_pruning_ratios(pruning_ratios)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Also load mmseg's layout of ``absolute_pos_embed``, ``[1, N, C]`` (mmdet's: ``[1, C, H, W]``)."""
        key = prefix + 'absolute_pos_embed'
        own = getattr(self, 'absolute_pos_embed', None)
        given = state_dict.get(key)
        if own is not None and given is not None and given.dim() == 3 and own.dim() == 4:
            _, c, h, w = own.shape
            if given.shape == (1, h * w, c):
                state_dict[key] = given.transpose(1, 2).reshape(1, c, h, w)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------------------------------------ schedule
    def set_pruning_ratios(self, pruning_ratios) -> None:
        """Change the per-block ratios between forwards (any form accepted by the constructor)."""
        self._ratios = tuple(tuple(s) for s in normalize_pruning_ratios(pruning_ratios, self.depths))

    @property
    def pruning_ratios(self) -> Tuple[Tuple[float, ...], ...]:
        """Read-only normalised view: one tuple per stage, one ratio per block."""
        return self._ratios

    @property
    def window_selection(self) -> str:
        return self._window_selection

    @window_selection.setter
    def window_selection(self, value: str) -> None:
        self._set_selection(value, self._selection_seed)

    @property
    def selection_seed(self) -> int:
        return self._selection_seed

    @selection_seed.setter
    def selection_seed(self, value: int) -> None:
        self._set_selection(self._window_selection, value)

    def _set_selection(self, window_selection: str, selection_seed: int) -> None:
        """Validate, store and build the (eager, traced) selectors of ``window_selection``."""
        check_window_selection(window_selection)
        check_selection_seed(selection_seed)
        self._window_selection, self._selection_seed = window_selection, selection_seed
        self._selectors = make_selectors(window_selection, selection_seed)

    def train(self, mode: bool = True):
        """As mmdet's (keeps frozen stages frozen), but returns ``self`` so ``model.eval()`` chains."""
        super().train(mode)
        return self

    # ------------------------------------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        if torch.compiler.is_compiling():  # one static graph per input size, also after a size change (dynamo's
            torch._dynamo.mark_static(x)  # automatic dynamic shapes would trace every size symbolically: very slow)
        x, hw = self.patch_embed(x)  # [B, H*W, C]
        if self.use_abs_pos_embed:
            pos = self.absolute_pos_embed
            if tuple(pos.shape[2:]) != tuple(hw):
                pos = F.interpolate(pos, size=hw, mode='bicubic', align_corners=False)
            x = x + pos.flatten(2).transpose(1, 2)
        x = self.drop_after_pos(x).view(x.shape[0], hw[0], hw[1], -1)  # [B, H, W, C]
        if self.record_selection or self.last_selection is not None:
            self.last_selection = [] if self.record_selection else None
        outs = []
        run_stage = self._observed_stage if self._stage_observers else self.forward_stage
        for i in range(len(self.stages)):
            x, out = run_stage(i, x, inplace=True)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)  # [B, H, W, C]
                outs.append(out.permute(0, 3, 1, 2).contiguous())  # [B, C, H, W]
        if self.window_selection == 'random':
            self.selection_calls += 1
        return outs

    def forward_stage(self, i: int, x: torch.Tensor, inplace: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run stage ``i`` on ``x [B, H, W, C]``; returns (downsampled input of the next stage, stage output).

        Both are NHWC; the stage output is before downsampling and before the output norm. ``x`` is modified only
        with ``inplace=True`` (``forward`` passes it for the tensors it creates itself, saving a copy per stage).
        """
        stage, ratios = self.stages[i], self._ratios[i]
        b, h, w, c = (int(v) for v in x.shape)  # ints also for the TorchScript tracer (ONNX), which gives tensors
        traced = _tracing()  # once per stage: the blocks below do not ask again
        grids = [self._grid(h, w, s, x.device, traced) for s in (0, self.window_size // 2)]
        if grids[0].has_pad:
            x = F.pad(x, (0, 0, 0, grids[0].wp - w, 0, grids[0].hp - h))  # [B, Hp, Wp, C]
        owned = inplace or grids[0].has_pad  # sparse blocks write in place: only into a tensor we own
        select = self._selectors[1] if traced else self._selectors[0]
        importance, orders, kept = None, [None, None], []
        for j, block in enumerate(stage.blocks):
            grid, shifted = grids[j % 2], j % 2
            if ratios[j] == 0:
                x, owned = self._dense_block(block, x, grid), True
                kept.append(None)
                continue
            if importance is None:
                x, owned = (x if owned else x.clone()), True
                importance = self._importance(x, grids[0].pad_map)  # [B, Hp, Wp] fp32
            k = W.num_kept(grid.nw, ratios[j])
            if orders[shifted] is None:  # the first pruned block of its kind keeps the most windows
                # (order [B, nW], or [B, k] traced; scores [B, nW] fp32)
                orders[shifted] = select(importance, grid.token_index, k, (self.selection_calls, i, shifted))
            x = self._sparse_block(block, x, grid, shifted, orders[shifted][0], k, traced)
            kept.append((shifted, k))
        if self.last_selection is not None:
            self.last_selection.append(self._stage_records(i, kept, orders, grids, (h, w)))
        out = x[:, :h, :w].contiguous() if grids[0].has_pad else x  # [B, H, W, C]
        if stage.downsample is None:
            return out, out
        down, (h2, w2) = stage.downsample(out.view(b, h * w, c), (h, w))  # [B, H/2*W/2, 2C]
        return down.view(b, h2, w2, -1), out

    # ------------------------------------------------------------------------------------------------ observation
    @contextlib.contextmanager
    def observe_stages(self, before: Optional[StageBefore] = None,
                       after: Optional[StageAfter] = None) -> Iterator['SparseSwinTransformer']:
        """While the context lasts, every ``forward`` calls ``before(i, x)`` just before stage ``i`` runs on ``x``
        (NHWC; the stage may then write into it in place: copy what you keep) and ``after(i, result)`` just after
        it, with ``result`` = :meth:`forward_stage`'s (next stage input, stage output).

        Observers nest (``before`` in registration order, ``after`` in reverse). Without one ``forward`` runs
        :meth:`forward_stage` directly: observation costs nothing when unused.
        """
        observer = (before or _ignore, after or _ignore)
        self._stage_observers.append(observer)
        try:
            yield self
        finally:
            self._stage_observers.remove(observer)

    def _observed_stage(self, i: int, x: torch.Tensor, inplace: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward_stage` between the observers' calls."""
        for before, _ in self._stage_observers:
            before(i, x)
        result = self.forward_stage(i, x, inplace=inplace)
        for _, after in reversed(self._stage_observers):
            after(i, result)
        return result

    # ------------------------------------------------------------------------------------------------ selection
    def _grid(self, h: int, w: int, shift: int, device, traced: bool) -> _Grid:
        if traced:  # a traced graph builds its own tables: no guard on (and no recompile for) the cache
            return _Grid(h, w, self.window_size, shift, device)
        key = (h, w, shift, str(device))
        if key not in self._grids:
            self._grids[key] = _Grid(h, w, self.window_size, shift, device)
        return self._grids[key]

    @staticmethod
    @torch.no_grad()
    def _importance(x: torch.Tensor, pad_map: Optional[torch.Tensor]) -> torch.Tensor:
        """Mean over channels of |x| in fp32 on real tokens, zero on padding (``pad_map [Hp, Wp]``, True on
        padding): ``[B, Hp, Wp]`` (no gradient)."""
        imp = x.detach().float().abs().mean(-1)  # [B, Hp, Wp]
        return imp if pad_map is None else imp.masked_fill(pad_map, 0.0)

    def _stride(self, i: int) -> int:
        """Input pixels per token at stage ``i``."""
        stride = self.patch_embed.projection.stride[0]
        for prev in self.stages[:i]:
            s = prev.downsample.sampler.stride
            stride *= s[0] if isinstance(s, (tuple, list)) else s
        return stride

    def _stage_records(self, i: int, kept: List[Optional[Tuple[int, int]]], orders: list, grids: List[_Grid],
                       hw: Tuple[int, int]) -> List[Optional[SelectionRecord]]:
        """Stage ``i``'s records: per block, None (``kept`` None: dense) or the first ``k`` windows of the
        ranking of its kind (``kept`` = (shifted, k); ``orders[shifted]`` = (order, scores))."""
        records: List[Optional[SelectionRecord]] = []
        for blk in kept:
            if blk is None:
                records.append(None)
                continue
            (order, scores), grid = orders[blk[0]], grids[blk[0]]
            records.append(SelectionRecord(keep=order[:, :blk[1]].detach().cpu(), grid=(grid.nwh, grid.nww),
                                           shift=grid.shift, hw=tuple(hw), stride=self._stride(i),
                                           scores=scores.detach().cpu()))
        return records

    # ------------------------------------------------------------------------------------------------ blocks
    def _dense_block(self, block, x: torch.Tensor, grid: _Grid) -> torch.Tensor:
        """All windows: one gather (pad/roll/partition folded in), the block, one scatter into a new map."""
        idx, n_plain = grid.dense_index(x.shape[0])
        rows = W.token_rows(idx, grid.token_index, grid.nw, grid.hp * grid.wp)
        y = self._windows_forward(block, W.gather_windows(x, rows, grid.token_index.shape[1]), idx, n_plain, grid,
                                  x.shape[0])
        return W.scatter_windows_(torch.empty_like(x), rows, y)

    def _sparse_block(self, block, x: torch.Tensor, grid: _Grid, shifted: int, order: torch.Tensor, k: int,
                      traced: bool) -> torch.Tensor:
        """Kept windows only: gather, run the block, write back in place; other windows are untouched (``traced``:
        static shapes)."""
        if k == 0:
            return x
        idx = W.flat_window_index(order, k, grid.nw)  # [B*k]
        n_plain = x.shape[0] * k
        if shifted and traced:
            n_plain = 0  # static shapes: every kept window gets its own (possibly all-zero) shift mask
        elif shifted:
            idx, n_plain = W.split_plain_first(idx, grid.boundary, grid.nw)  # counts boundary windows (host sync)
        rows = W.token_rows(idx, grid.token_index, grid.nw, grid.hp * grid.wp)
        y = self._windows_forward(block, W.gather_windows(x, rows, grid.token_index.shape[1]), idx, n_plain, grid,
                                  x.shape[0])
        return W.scatter_windows_(x, rows, y)

    def _windows_forward(self, block, xw: torch.Tensor, idx: torch.Tensor, n_plain: int, grid: _Grid,
                         batch: int) -> torch.Tensor:
        """The whole Swin block on windows ``[K, N, C]`` (flat ids ``idx``, the first ``n_plain`` mask-free)."""
        win = idx % grid.nw  # [K]
        pad = grid.pad_mask.index_select(0, win) if grid.has_pad else None  # [K, N, 1]
        masked = grid.shift_mask is not None and n_plain < xw.shape[0]
        mask = grid.shift_mask.index_select(0, win[n_plain:]) if masked else None  # [K - n_plain, N, N]
        image = torch.div(idx, grid.nw, rounding_mode='floor')  # [K]

        def inner(xw: torch.Tensor) -> torch.Tensor:
            if pad is not None and self.pad_before_norm:
                xw = xw.masked_fill(pad, 0.0)  # the original zero-pads before LN1: padding enters as LN1(0)
            h = block.norm1(xw)
            if pad is not None and not self.pad_before_norm:
                h = h.masked_fill(pad, 0.0)  # mmdet pads after LN1: padding tokens are zeros in attention
            h = self._attention(block.attn.w_msa, h, mask, n_plain)
            xw = xw + _drop_path(h, block.attn.drop.drop_prob, self.training, image, batch)
            h = block.ffn.layers(block.norm2(xw))
            return xw + _drop_path(h, block.ffn.dropout_layer.drop_prob, self.training, image, batch)

        if block.with_cp and xw.requires_grad:
            return cp.checkpoint(inner, xw, use_reentrant=False)
        return inner(xw)

    # ------------------------------------------------------------------------------------------------ attention
    def _attention(self, msa, x: torch.Tensor, mask: Optional[torch.Tensor], n_plain: int) -> torch.Tensor:
        """Window attention with relative-position bias; ``mask`` ``[K - n_plain, N, N]`` for the tail windows."""
        k_win, n, c = x.shape
        nh = msa.num_heads
        qkv = msa.qkv(x).view(k_win, n, 3, nh, c // nh).permute(2, 0, 3, 1, 4)  # [3, K, nH, N, d]
        q, k, v = qkv.unbind(0)  # [K, nH, N, d]
        bias = self._position_bias(msa, n, q.dtype)  # [1, nH, N, N]
        if mask is None:
            out = self._attend(msa, q, k, v, bias)
        else:
            # -100 + bias in fp32, then cast: safe in fp16 and bf16 alike
            tail = (self._position_bias(msa, n, torch.float32) + mask.unsqueeze(1)).to(q.dtype)  # [Kb, nH, N, N]
            out = self._attend(msa, q[n_plain:], k[n_plain:], v[n_plain:], tail)
            if n_plain > 0:
                out = torch.cat([self._attend(msa, q[:n_plain], k[:n_plain], v[:n_plain], bias), out])
        out = out.transpose(1, 2).reshape(k_win, n, c)  # [K, N, C]
        return msa.proj_drop(msa.proj(out))

    def _attend(self, msa, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``softmax(q k^T * scale + bias) v`` for ``[K, nH, N, d]`` inputs, fused or explicit."""
        drop = msa.attn_drop.p if self.training else 0.0
        if self.fused_attn:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop, scale=msa.scale)
        attn = (q * msa.scale) @ k.transpose(-2, -1) + bias  # [K, nH, N, N]
        return msa.attn_drop(attn.softmax(dim=-1)) @ v

    def _position_bias(self, msa, n: int, dtype: torch.dtype) -> torch.Tensor:
        """Relative-position bias ``[1, nH, N, N]``; cached per dtype while the table is unchanged and no grad is
        needed (never while tracing)."""
        table = msa.relative_position_bias_table
        cacheable = not torch.is_grad_enabled() and not _tracing()
        if cacheable:
            key = (-1 if table.is_inference() else table._version, table.data_ptr())
            cache = msa.__dict__.setdefault('_sparsevit_bias', {})
            hit = cache.get(dtype)
            if hit is not None and hit[0] == key:
                return hit[1]
        bias = table[msa.relative_position_index.view(-1)]  # [N*N, nH]
        bias = bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0).to(dtype).contiguous()  # [1, nH, N, N]
        if cacheable:
            cache[dtype] = (key, bias)
        return bias
