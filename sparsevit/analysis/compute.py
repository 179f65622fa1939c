"""Backbone compute (MACs) of a SparseViT model for the windows it actually keeps, counted analytically.

The count is deterministic: it depends on the architecture, the input size and the pruning ratios, never on the
image (each pruned block keeps ``num_kept(nW, ratio)`` windows of every image, whichever they are). It is checked
against ``torch.utils.flop_counter.FlopCounterMode`` on dense and pruned forwards (``tests/test_compute.py``).

Conventions:
    * MACs, not FLOPs: one multiply-accumulate is one MAC (``FlopCounterMode`` reports ``2 * MACs``). GMACs are
      ``MACs / 1e9``, for the whole batch (``batch`` images; 1 by default).
    * Counted: the matmul-type ops, i.e. exactly what ``FlopCounterMode`` counts: the patch-embedding convolution
      (``H0 * W0 * C * in_channels * patch_size ** 2``), per block the qkv linear (``3 C^2`` per token), the two
      attention matmuls ``q k^T`` and ``attn v`` (``N * C`` per token each, ``N = window_size ** 2`` tokens per
      window, summed over heads, so ``num_heads`` does not change the count), the output projection (``C^2``) and
      the MLP (``2 * C * hidden``, ``hidden = int(mlp_ratio * C)`` as mmdet), and per patch merging the reduction
      linear (``4C -> 2C`` per output token).
    * Not counted (as ``FlopCounterMode``): LayerNorms (patch embedding, LN1, LN2, patch merging, output norms),
      biases, softmax, GELU, residual adds, the relative-position bias and shift mask adds, the absolute position
      embedding, the importance map and window scores of pruned stages, gathers and scatters. At Swin-T widths they are
      about 1 % of the total or less, even at several operations per element.
    * Windows are counted on the padded grid: a stage map of ``H x W`` tokens is padded to multiples of the window
      size, so a dense block runs ``nW = ceil(H / ws) * ceil(W / ws)`` windows of ``N`` tokens each (padding tokens
      included), a pruned block ``num_kept(nW, ratio)`` windows. SparseViT runs the whole block (MLP included) on
      those windows; mmdet's ``SwinTransformer`` runs its MLP on the ``H x W`` unpadded tokens only
      (:attr:`SwinSettings.padded_mlp`). The two agree when every stage map is a multiple of the window size
      (e.g. 224x224, 672x672). Patch embedding and patch merging pad their input
      to a multiple of their stride (mmdet's ``AdaptivePadding``, ``'corner'``): outputs ``ceil(H / stride)``.
    * ``img_size`` is the backbone input ``(h, w)``: in a detector, the image after resize and batch padding.
"""
import dataclasses
import inspect
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmdet.models.backbones.swin import SwinTransformer

from ..models.backbones.sparse_swin import SparseSwinTransformer
from ..ops.window import num_kept
from ..schedule import Ratios, is_dense, normalize_pruning_ratios

#: Unfold kernel of mmdet's ``PatchMerging`` (``SwinTransformer`` keeps its default): 2x2 tokens -> one.
MERGE_KERNEL = 2

_SWIN_DEFAULTS = {name: p.default for name, p in inspect.signature(SwinTransformer.__init__).parameters.items()
                  if p.default is not inspect.Parameter.empty}


@dataclasses.dataclass(frozen=True)
class SwinSettings:
    """The settings of a Swin backbone that determine its MACs (defaults: mmdet's ``SwinTransformer``, Swin-T).

    ``num_heads`` is absent on purpose: heads split the channels, they do not change the MACs. ``padded_mlp``:
    the MLP also runs on the padding tokens of the windows (SparseViT, the default), or only on the unpadded map
    (mmdet's ``SwinTransformer``, which cannot prune).
    """
    embed_dims: int = _SWIN_DEFAULTS['embed_dims']
    depths: Tuple[int, ...] = tuple(_SWIN_DEFAULTS['depths'])
    window_size: int = _SWIN_DEFAULTS['window_size']
    mlp_ratio: float = _SWIN_DEFAULTS['mlp_ratio']
    patch_size: int = _SWIN_DEFAULTS['patch_size']
    strides: Tuple[int, ...] = tuple(_SWIN_DEFAULTS['strides'])
    in_channels: int = _SWIN_DEFAULTS['in_channels']
    padded_mlp: bool = True

    @classmethod
    def from_config(cls, cfg: dict) -> 'SwinSettings':
        """From a backbone config dict (``num_heads``, ``pruning_ratios``, ``init_cfg``, ... ignored); ``type``
        ``'SwinTransformer'`` (mmdet's) sets ``padded_mlp=False``."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in cfg.items() if k in names}
        kwargs.setdefault('padded_mlp', cfg.get('type') != 'SwinTransformer')
        return cls(**kwargs)

    @classmethod
    def from_module(cls, backbone: SwinTransformer) -> 'SwinSettings':
        """From a built mmdet ``SwinTransformer`` (or ``SparseSwinTransformer``)."""
        proj = backbone.patch_embed.projection
        block = backbone.stages[0].blocks[0]
        strides = [proj.stride[0]] + [_first(stage.downsample.sampler.stride)
                                      for stage in backbone.stages[:-1]]
        return cls(embed_dims=proj.out_channels, depths=tuple(len(s.blocks) for s in backbone.stages),
                   window_size=block.attn.window_size, mlp_ratio=block.ffn.feedforward_channels / proj.out_channels,
                   patch_size=proj.kernel_size[0], strides=tuple(strides), in_channels=proj.in_channels,
                   padded_mlp=isinstance(backbone, SparseSwinTransformer))


def _first(v) -> int:
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


def _settings_and_ratios(arch, pruning_ratios: Ratios) -> Tuple[SwinSettings, List[List[float]]]:
    """``arch`` as settings; ``pruning_ratios=None`` takes the ratios of ``arch`` itself (dense if it has none)."""
    if isinstance(arch, SwinSettings):
        settings, own = arch, None
    elif isinstance(arch, dict):
        settings, own = SwinSettings.from_config(arch), arch.get('pruning_ratios')
    elif isinstance(arch, SwinTransformer):
        settings, own = SwinSettings.from_module(arch), getattr(arch, 'pruning_ratios', None)
    else:
        raise TypeError(f'expected a SwinTransformer, a SwinSettings or a backbone config dict, '
                        f'got {type(arch).__name__}')
    ratios = own if pruning_ratios is None else pruning_ratios
    return settings, normalize_pruning_ratios(ratios, settings.depths)


def block_macs(channels: int, hidden: int, windows: int, window_size: int,
               mlp_tokens: Optional[int] = None) -> Dict[str, int]:
    """MACs of one Swin block run on ``windows`` windows of ``window_size ** 2`` tokens with ``channels`` channels.

    ``mlp_tokens``: tokens of the MLP, when not those of the windows (mmdet's Swin: the unpadded map).

    Returns:
        dict(qkv, attn (q k^T plus attn v), proj, mlp, macs=their sum).
    """
    tokens = windows * window_size * window_size
    parts = dict(qkv=tokens * channels * 3 * channels,
                 attn=2 * tokens * window_size * window_size * channels,
                 proj=tokens * channels * channels,
                 mlp=2 * (tokens if mlp_tokens is None else mlp_tokens) * channels * hidden)
    parts['macs'] = sum(parts.values())
    return parts


def backbone_macs(arch: Union[SwinTransformer, SwinSettings, dict], img_size: Sequence[int],
                  pruning_ratios: Ratios = None, batch: int = 1) -> dict:
    """Analytic MACs of a (Sparse) Swin backbone on ``batch`` inputs of ``img_size = (h, w)`` (module docstring:
    what is counted).

    Args:
        arch: a built backbone, its :class:`SwinSettings` or its config dict (``type='SparseViT'``, ...).
        img_size: backbone input ``(h, w)`` in pixels.
        pruning_ratios: any form :func:`~sparsevit.schedule.normalize_pruning_ratios` accepts; ``None`` takes the
            ratios of ``arch`` (a module's ``pruning_ratios``, a config's ``pruning_ratios`` key; dense for plain
            Swin and for :class:`SwinSettings`). Pass ``0`` for the dense count of a pruned model.
        batch: images per forward; every count scales with it.

    Returns:
        dict(macs, gmacs, batch, img_size, patch_embed, stages): ``stages`` is one dict per stage with ``hw`` (token
        map), ``padded_hw``, ``windows`` (``nW`` per image), ``blocks`` (one dict per block: ``prune_ratio``,
        ``kept_windows`` per image and :func:`block_macs`' parts for the batch), ``downsample`` (patch merging
        after the stage, 0 for the last) and ``macs`` (blocks plus downsample). All MACs are ints for the batch.
    """
    settings, ratios = _settings_and_ratios(arch, pruning_ratios)
    if not settings.padded_mlp and not is_dense(ratios):
        raise ValueError("mmdet's SwinTransformer (padded_mlp=False) does not prune: pruning_ratios must be 0")
    ws, p = settings.window_size, settings.patch_size
    h, w = (math.ceil(int(v) / settings.strides[0]) for v in img_size)
    c = settings.embed_dims
    patch_embed = batch * h * w * c * settings.in_channels * p * p
    stages, total = [], patch_embed
    for i in range(len(settings.depths)):
        hp, wp = h + (-h) % ws, w + (-w) % ws  # padded to whole windows
        nw = (hp // ws) * (wp // ws)
        hidden = int(settings.mlp_ratio * c)
        mlp_tokens = None if settings.padded_mlp else batch * h * w
        blocks = []
        for r in ratios[i]:
            kept = num_kept(nw, r)
            blocks.append(dict(prune_ratio=r, kept_windows=kept,
                               **block_macs(c, hidden, batch * kept, ws, mlp_tokens)))
        stage = dict(hw=(h, w), padded_hw=(hp, wp), windows=nw, blocks=blocks, downsample=0)
        if i + 1 < len(settings.depths):
            h, w = (math.ceil(v / settings.strides[i + 1]) for v in (h, w))
            stage['downsample'] = batch * h * w * MERGE_KERNEL * MERGE_KERNEL * c * 2 * c  # [4C -> 2C] per token
            c *= 2
        stage['macs'] = sum(b['macs'] for b in blocks) + stage['downsample']
        stages.append(stage)
        total += stage['macs']
    return dict(macs=total, gmacs=total / 1e9, batch=batch, img_size=tuple(int(v) for v in img_size),
                patch_embed=patch_embed, stages=stages)


def detector_backbone_gmacs(backbone_cfg: dict, img_size: Sequence[int], pruning_ratios: Ratios = None) -> float:
    """Backbone GMACs of one image for a detector's ``model.backbone`` config, without building anything.

    ``pruning_ratios=None`` uses the config's own; a reduced-width baseline is just its ``embed_dims``.
    """
    return backbone_macs(backbone_cfg, img_size, pruning_ratios)['gmacs']


def counted_macs(module, *inputs) -> int:
    """MACs of ``module(*inputs)`` as ``torch.utils.flop_counter.FlopCounterMode`` counts them (its FLOPs / 2).

    The counter has no formula for the CPU kernel of ``F.scaled_dot_product_attention``
    (``aten._scaled_dot_product_flash_attention_for_cpu``, counted as 0); it is given the counter's own SDPA
    formula (``sdpa_flop_count``: the two matmuls), as on CUDA.
    """
    import torch
    from torch.utils import flop_counter

    def cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)

    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa}
    with torch.no_grad(), flop_counter.FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2  # every formula of the counter is 2 * MACs
