"""A slow, obviously-correct SparseViT reference built on mmdet 2.28.2's own ``SwinTransformer``.

Written from the specification (issue 2, section 2), independently of ``sparsevit.models``, so that the tests
compare two implementations rather than one implementation with itself.

Why a mask over the *dense* block output is exact: in an mmdet ``SwinBlock`` every operation except attention is
per token (LN1, LN2, FFN, residuals; drop-path and dropout are the identity in eval mode), and attention only mixes
tokens of the same (padded, rolled-by ``-shift``) window; the shift mask and the relative-position bias of a window
depend only on that window's position. Padding tokens are the same in the dense and the pruned block: zeros inside
attention when LN1 comes before the zero-padding (mmdet), ``LN1(0)`` when the zero-padding comes first (the
original SparseViT, :func:`block_pad_before_norm`). Hence running the block on the kept windows only and running it
densely agree on every token of a kept window, and a pruned block is exactly::

    out = where(token lies in a kept window, dense_block(x), x)

The premise itself is checked by ``test_reference_premise_attention_is_window_local`` in ``test_backbone.py``.
"""
import math
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

Selection = Optional[Dict[str, object]]


def importance_map(x: torch.Tensor) -> torch.Tensor:
    """Mean over channels of ``|x|``: ``[B, H, W, C] -> [B, H, W]``."""
    return x.abs().mean(dim=-1)


def window_scores(importance: torch.Tensor, window: int, shift: int) -> torch.Tensor:
    """L2 norm of each window of the zero-padded (and rolled by ``-shift``) map: ``[B, H, W] -> [B, nW]``."""
    B, H, W = importance.shape
    pad_b, pad_r = (-H) % window, (-W) % window
    padded = F.pad(importance, (0, pad_r, 0, pad_b))  # B, Hp, Wp
    if shift:
        padded = torch.roll(padded, shifts=(-shift, -shift), dims=(1, 2))
    Hp, Wp = padded.shape[1:]
    windows = padded.view(B, Hp // window, window, Wp // window, window)  # B, nWh, ws, nWw, ws
    windows = windows.permute(0, 1, 3, 2, 4).reshape(B, -1, window * window)  # B, nW, ws*ws
    return windows.norm(dim=-1)


def block_pad_before_norm(block, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """mmdet's ``SwinBlock`` with the original SparseViT's order: zero-pad the map *before* LN1.

    The zero-padded ``Hp x Wp`` map goes through LN1 (padding tokens become ``LN1(0)``, the LN1 bias) and then
    through mmdet's own ``ShiftWindowMSA`` at size ``(Hp, Wp)``, which needs no further padding and rolls, masks and
    partitions exactly as it does for the padded map; the output is cropped back to ``hw``. The residuals, LN2
    and FFN are mmdet's block steps (``SwinBlock.forward``). ``x [B, H*W, C] -> [B, H*W, C]``.
    """
    B, L, C = x.shape
    H, W = hw
    ws = block.attn.window_size
    padded = F.pad(x.view(B, H, W, C), (0, 0, 0, (-W) % ws, 0, (-H) % ws))  # B, Hp, Wp, C
    Hp, Wp = padded.shape[1:3]
    y = block.attn(block.norm1(padded).view(B, Hp * Wp, C), (Hp, Wp))  # LN1 sees the zeros
    x = x + y.view(B, Hp, Wp, C)[:, :H, :W].reshape(B, L, C)
    return block.ffn(block.norm2(x), identity=x)


def keep_count(num_windows: int, ratio: float) -> int:
    """``k = floor(nW * (1 - ratio))`` evaluated exactly on the ratio's decimal value.

    Plain float arithmetic would give ``floor(80 * (1 - 0.8)) = floor(15.999999999999996) = 15``; the
    specification's formula is arithmetic on the configured decimal ratio, so ``k = 16``.
    """
    return math.floor(num_windows * (1 - Fraction(repr(float(ratio)))))


def _first(value) -> int:
    """An int from an int or a pair (conv/unfold strides)."""
    return int(value[0] if isinstance(value, (tuple, list)) else value)


def window_grid(hw: Tuple[int, int], window: int) -> Tuple[int, int]:
    """Number of (padded) windows along H and W."""
    return -(-hw[0] // window), -(-hw[1] // window)


def kept_token_mask(keep: torch.Tensor, hw: Tuple[int, int], window: int, shift: int) -> torch.Tensor:
    """Boolean map of the tokens lying in kept windows: ``keep [B, k] -> [B, H, W]`` (unpadded, unrolled)."""
    nWh, nWw = window_grid(hw, window)
    B = keep.shape[0]
    win = torch.zeros(B, nWh * nWw, dtype=torch.bool, device=keep.device)
    win[torch.arange(B, device=keep.device)[:, None], keep] = True
    tokens = win.view(B, nWh, 1, nWw, 1).expand(B, nWh, window, nWw, window)
    tokens = tokens.reshape(B, nWh * window, nWw * window)  # B, Hp, Wp (rolled coordinates)
    if shift:
        tokens = torch.roll(tokens, shifts=(shift, shift), dims=(1, 2))
    return tokens[:, :hw[0], :hw[1]]


class ReferenceSparseSwin:
    """Runs an mmdet ``SwinTransformer`` with SparseViT window pruning, by masks over dense block outputs.

    Args:
        swin: an mmdet ``SwinTransformer`` (put it in eval mode for exact comparisons).
        ratios: per stage, one prune ratio per block (already normalised).
        pad_before_norm: True runs every block as the original SparseViT (zero-padding before LN1,
            :func:`block_pad_before_norm`), False as mmdet (padding after LN1).
        forced: optional selections (a model's ``last_selection`` of ``SelectionRecord``, e.g. recorded with random
            window selection) whose ``keep`` replaces the L2 ranking block by block.
    """

    def __init__(self, swin, ratios: Sequence[Sequence[float]], pad_before_norm: bool = False,
                 forced: Optional[List[List[Selection]]] = None):
        self.swin = swin
        self.ratios = [[float(r) for r in stage] for stage in ratios]
        self.pad_before_norm = pad_before_norm
        self.forced = forced
        self.window = swin.stages[0].blocks[0].attn.window_size
        self.last_selection: List[List[Selection]] = []
        self.min_score_gap = math.inf  # smallest relative score gap at a keep boundary (tie diagnostics)

    def _select(self, scores: torch.Tensor, ranking: Optional[torch.Tensor], k: int) -> Tuple[torch.Tensor, ...]:
        if ranking is None:
            ranking = torch.sort(scores, dim=1, descending=True, stable=True).indices
        keep = ranking[:, :k]
        if 0 < k < scores.shape[1]:
            ordered = torch.gather(scores, 1, ranking)
            gap = (ordered[:, k - 1] - ordered[:, k]) / ordered[:, k - 1].abs().clamp_min(1e-30)
            self.min_score_gap = min(self.min_score_gap, float(gap.min()))
        return keep, ranking

    def _block(self, block, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        return block_pad_before_norm(block, x, hw) if self.pad_before_norm else block(x, hw)

    def forward_stage(self, i: int, x: torch.Tensor, hw: Tuple[int, int]) -> Tuple[torch.Tensor, List[Selection]]:
        """One stage's blocks (no downsampling): ``x [B, L, C] -> [B, L, C]`` and the per-block selections."""
        importance, rankings, selections = None, {}, []
        B, _, C = x.shape
        for j, (block, ratio) in enumerate(zip(self.swin.stages[i].blocks, self.ratios[i])):
            if ratio == 0 and importance is None:
                x = self._block(block, x, hw)
                selections.append(None)
                continue
            if importance is None:  # first pruned block of the stage: computed once, reused afterwards
                importance = importance_map(x.reshape(B, *hw, C))
            shift = block.attn.shift_size
            scores = window_scores(importance, self.window, shift)
            k = keep_count(scores.shape[1], ratio)
            keep, rankings[shift] = self._select(scores, rankings.get(shift), k)
            if self.forced is not None:
                keep = self.forced[i][j].keep
            mask = kept_token_mask(keep, hw, self.window, shift).reshape(B, -1, 1)
            x = torch.where(mask, self._block(block, x, hw), x)
            selections.append(dict(keep=keep, grid=window_grid(hw, self.window), shift=shift, hw=tuple(hw),
                                   stride=None))
        return x, selections

    def __call__(self, img: torch.Tensor) -> List[torch.Tensor]:
        """The backbone forward, mirroring ``mmdet.models.backbones.SwinTransformer.forward``."""
        swin = self.swin
        x, hw = swin.patch_embed(img)
        stride = _first(swin.patch_embed.projection.stride)
        if swin.use_abs_pos_embed:
            pos = swin.absolute_pos_embed
            if tuple(pos.shape[1:3]) != tuple(hw):  # sic: mmdet 2.28.2 compares (C, H) with hw
                pos = F.interpolate(pos, size=hw, mode='bicubic', align_corners=False)
            x = x + pos.flatten(2).transpose(1, 2)
        x = swin.drop_after_pos(x)
        outs, self.last_selection = [], []
        for i, stage in enumerate(swin.stages):
            out, selections = self.forward_stage(i, x, hw)
            for sel in selections:
                if sel is not None:
                    sel['stride'] = stride
            self.last_selection.append(selections)
            out_hw = hw
            if stage.downsample is not None:
                x, hw = stage.downsample(out, hw)
                stride *= _first(stage.downsample.sampler.stride)
            if i in swin.out_indices:
                out = getattr(swin, f'norm{i}')(out)
                outs.append(out.view(-1, *out_hw, swin.num_features[i]).permute(0, 3, 1, 2).contiguous())
        return outs


def swin_to_original_format(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Invert ``mmdet.models.utils.ckpt_convert.swin_converter``: mmdet Swin keys -> Swin-repo keys.

    The original repo names stages ``layers``, the attention without ``w_msa``, the MLP ``mlp.fc1/fc2``, the patch
    projection ``proj``, and orders PatchMerging's unfolded channels as (x0, x1, x2, x3) = (0,0), (1,0), (0,1),
    (1,1), which mmdet permutes with ``[0, 2, 1, 3]`` (a self-inverse permutation). mmdet's output norms
    ``norm{i}`` have no counterpart (the classifier's single ``norm`` is unrelated) and are dropped.
    """
    perm = [0, 2, 1, 3]
    out = {}
    for key, value in state_dict.items():
        if key.startswith('norm'):
            continue
        if key.startswith('patch_embed'):
            out[key.replace('projection', 'proj')] = value
            continue
        new = key.replace('stages', 'layers', 1).replace('attn.w_msa.', 'attn.')
        new = new.replace('ffn.layers.0.0.', 'mlp.fc1.').replace('ffn.layers.1.', 'mlp.fc2.')
        if 'downsample.reduction.' in key:
            out_ch, in_ch = value.shape
            value = value.reshape(out_ch, in_ch // 4, 4).transpose(1, 2)[:, perm, :].reshape(out_ch, in_ch)
        elif 'downsample.norm.' in key:
            value = value.reshape(value.shape[0] // 4, 4).transpose(0, 1)[perm, :].reshape(-1)
        out[new] = value.clone()
    return out
