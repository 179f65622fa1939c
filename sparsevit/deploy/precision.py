"""Does half precision change which windows SparseViT keeps? fp32 against autocast selections of one backbone.

The backbone ranks windows in fp32 whatever the dtype of the stage map, so on the *same* stage input fp32 and
autocast keep the same windows (:func:`stage_selection`). Over a whole forward the stage inputs differ (earlier
layers round in bf16/fp16), so a window can change sides only where its score was near the keep boundary:
:func:`compare_selections` measures how often that happens and how near the boundary the flipped windows were.
"""
from typing import Dict, List, Optional, Tuple

import torch

from ..utils.precision import autocast_inference

Selections = List[List[Optional[dict]]]


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """``torch.autocast`` at ``dtype`` on ``device``'s type, or a no-op for ``None`` (fp32)."""
    return autocast_inference(None, dtype, torch.device(device).type)


@torch.no_grad()
def record_selections(backbone: torch.nn.Module, img: torch.Tensor,
                      dtype: Optional[torch.dtype] = None) -> Tuple[Selections, List[torch.Tensor]]:
    """One forward of ``backbone`` on ``img`` (fp32, or autocast at ``dtype``).

    Returns:
        (``last_selection``: per stage, per block, None or dict(keep, scores, ...); the input of every stage, NHWC,
        as the stage received it).
    """
    inputs, run_stage = [], backbone.forward_stage

    def recording(i: int, x: torch.Tensor, **kwargs):
        inputs.append(x.clone())
        return run_stage(i, x, **kwargs)

    backbone.record_selection, backbone.forward_stage = True, recording  # instance attribute shadows the method
    try:
        with autocast(img.device, dtype):
            backbone(img)
    finally:
        del backbone.forward_stage
        backbone.record_selection = False
    selections, backbone.last_selection = backbone.last_selection, None
    return selections, inputs


@torch.no_grad()
def stage_selection(backbone: torch.nn.Module, i: int, x: torch.Tensor,
                    dtype: Optional[torch.dtype] = None) -> List[Optional[dict]]:
    """The selections of stage ``i`` run on ``x`` (NHWC, not modified), in fp32 or under autocast at ``dtype``."""
    previous, backbone.last_selection = backbone.last_selection, []
    try:
        with autocast(x.device, dtype):
            backbone.forward_stage(i, x.clone())
        return backbone.last_selection[0]
    finally:
        backbone.last_selection = previous


def compare_selections(reference: Selections, other: Selections) -> Dict[str, object]:
    """Agreement of the kept windows of two runs of the same configuration on the same images.

    For every pruned block and image, the kept sets ``A`` (``reference``, e.g. fp32) and ``B`` (``other``) are
    compared. A *flip* is a window in ``A`` but not in ``B`` (each has a partner in ``B`` but not in ``A``: the
    counts are equal). Its *gap* is the distance of its reference score from the reference keep boundary (the
    midpoint of the k-th and (k+1)-th largest scores), relative to that boundary: near 0 for a near-tie.

    Returns:
        dict(kept=windows kept in total, agree=kept by both, agreement=agree / kept (1.0 when nothing is kept),
        flips, flip_rate, max_flip_gap (0.0 without flips), per_stage=[dict(stage, kept, agree, flips)]).
    """
    kept = agree = 0
    gaps: List[float] = []
    per_stage = []
    for i, (ref_stage, oth_stage) in enumerate(zip(reference, other)):
        s_kept = s_agree = 0
        for ref, oth in zip(ref_stage, oth_stage):
            if ref is None or oth is None:
                continue
            for a, b, scores in zip(ref['keep'], oth['keep'], ref['scores']):
                in_a, in_b = set(a.tolist()), set(b.tolist())
                s_kept, s_agree = s_kept + len(in_a), s_agree + len(in_a & in_b)
                flipped = sorted(in_a - in_b)
                if flipped:
                    gaps += _flip_gaps(scores.float(), len(in_a), flipped + sorted(in_b - in_a))
        kept, agree = kept + s_kept, agree + s_agree
        per_stage.append(dict(stage=i, kept=s_kept, agree=s_agree, flips=s_kept - s_agree))
    return dict(kept=kept, agree=agree, agreement=agree / kept if kept else 1.0, flips=kept - agree,
                flip_rate=(kept - agree) / kept if kept else 0.0, max_flip_gap=max(gaps, default=0.0),
                per_stage=per_stage)


def _flip_gaps(scores: torch.Tensor, k: int, windows: List[int]) -> List[float]:
    """Relative distance of each window's score from the keep boundary of ``scores [nW]`` at ``k`` kept."""
    ordered = scores.sort(descending=True).values  # [nW]
    boundary = float(ordered[k - 1] + ordered[k]) / 2 if k < len(ordered) else float(ordered[k - 1])
    scale = max(abs(boundary), 1e-30)
    return [abs(float(scores[w]) - boundary) / scale for w in windows]
