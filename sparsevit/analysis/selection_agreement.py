"""Does half precision change which windows SparseViT keeps? fp32 against autocast selections of one backbone.

The backbone ranks windows in fp32 whatever the dtype of the stage map, so on the *same* stage input fp32 and
autocast keep the same windows (:func:`stage_selection`, :func:`same_input_mismatches`). Over a whole forward the
stage inputs differ (earlier layers round in bf16/fp16), so a window can change sides only where its score was near
the keep boundary: :func:`compare_selections` measures how often that happens and how near the boundary the flipped
windows were; :func:`precision_agreement` runs both checks over a set of images (``tools/check_precision.py``).
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..ops.selection import SelectionRecord, Selections
from ..tasks import check_data
from ..utils.precision import autocast_inference


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """``torch.autocast`` at ``dtype`` on ``device``'s type, or a no-op for ``None`` (fp32)."""
    return autocast_inference(None, dtype, torch.device(device).type)


@torch.no_grad()
def record_selections(backbone: torch.nn.Module, img: torch.Tensor,
                      dtype: Optional[torch.dtype] = None) -> Tuple[Selections, List[torch.Tensor]]:
    """One forward of ``backbone`` on ``img`` (fp32, or autocast at ``dtype``).

    Returns:
        (``last_selection``: per stage, per block, None or a ``SelectionRecord``; the input of every stage, NHWC,
        as the stage received it).
    """
    inputs: List[torch.Tensor] = []
    backbone.record_selection = True
    try:
        with backbone.observe_stages(before=lambda i, x: inputs.append(x.clone())), autocast(img.device, dtype):
            backbone(img)
    finally:
        backbone.record_selection = False
    selections, backbone.last_selection = backbone.last_selection, None
    return selections, inputs


@torch.no_grad()
def stage_selection(backbone: torch.nn.Module, i: int, x: torch.Tensor,
                    dtype: Optional[torch.dtype] = None) -> List[Optional[SelectionRecord]]:
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
    gaps: List[float] = []
    per_stage = []
    for i, (ref_stage, oth_stage) in enumerate(zip(reference, other)):
        s_kept = s_agree = 0
        for ref, oth in zip(ref_stage, oth_stage):
            if ref is None or oth is None:
                continue
            for a, b, scores in zip(ref.keep, oth.keep, ref.scores):
                in_a, in_b = set(a.tolist()), set(b.tolist())
                s_kept, s_agree = s_kept + len(in_a), s_agree + len(in_a & in_b)
                flipped = sorted(in_a - in_b)
                if flipped:
                    gaps += _flip_gaps(scores.float(), len(in_a), flipped + sorted(in_b - in_a))
        per_stage.append(dict(stage=i, kept=s_kept, agree=s_agree, flips=s_kept - s_agree))
    return _agreement(per_stage, max(gaps, default=0.0))


def merge_comparisons(results: Sequence[Dict[str, object]]) -> Dict[str, object]:
    """One :func:`compare_selections` result from several (e.g. one per batch of images): counts summed, the
    largest gap kept."""
    stages = [dict(stage=s['stage'], kept=0, agree=0, flips=0) for s in results[0]['per_stage']]
    for r in results:
        for total, s in zip(stages, r['per_stage']):
            for key in ('kept', 'agree', 'flips'):
                total[key] += s[key]
    return _agreement(stages, max(r['max_flip_gap'] for r in results))


def _agreement(per_stage: List[dict], max_flip_gap: float) -> Dict[str, object]:
    """The totals and rates of :func:`compare_selections` from its per-stage counts."""
    kept, agree = sum(s['kept'] for s in per_stage), sum(s['agree'] for s in per_stage)
    return dict(kept=kept, agree=agree, agreement=agree / kept if kept else 1.0, flips=kept - agree,
                flip_rate=(kept - agree) / kept if kept else 0.0, max_flip_gap=max_flip_gap, per_stage=per_stage)


def same_input_mismatches(backbone: torch.nn.Module, stage_inputs: Sequence[torch.Tensor],
                          dtype: Optional[torch.dtype]) -> int:
    """Stages (of an autocast run) whose input, ranked in fp32, keeps other windows than autocast at ``dtype``
    kept (0 unless the backbone's fp32 ranking is broken)."""
    bad = 0
    for i, x in enumerate(stage_inputs):
        ref, half = stage_selection(backbone, i, x.float()), stage_selection(backbone, i, x, dtype)
        for a, b in zip(ref, half):
            if a is not None and not torch.equal(a.keep, b.keep):
                bad += 1
                break
    return bad


class Agreement(NamedTuple):
    """What :func:`precision_agreement` found: :func:`compare_selections`'s dict (merged over batches), the stage
    runs whose input ranked in fp32 keeps other windows, and the stage runs checked so."""
    comparison: Dict[str, object]
    same_input_mismatches: int
    same_input_checks: int


def precision_agreement(backbone: torch.nn.Module, imgs: torch.Tensor, dtype: torch.dtype, batch_size: int,
                        device: torch.device) -> Agreement:
    """Both checks of ``backbone`` on ``imgs [N, 3, H, W]``, ``batch_size`` at a time on ``device``: the kept
    windows of a whole fp32 forward against an autocast one (:func:`compare_selections`, merged over batches), and
    every stage input of the autocast run ranked again in fp32 (:func:`same_input_mismatches`)."""
    ref, half, mismatches = [], [], 0
    for batch in imgs.split(batch_size):
        batch = batch.to(device)
        ref.append(record_selections(backbone, batch)[0])
        selections, stage_inputs = record_selections(backbone, batch, dtype)
        half.append(selections)
        mismatches += same_input_mismatches(backbone, stage_inputs, dtype)
    return Agreement(merge_comparisons([compare_selections(r, h) for r, h in zip(ref, half)]), mismatches,
                     len(ref) * len(backbone.stages))


def first_test_images(cfg, num: int, img_size: Optional[int]) -> torch.Tensor:
    """The first ``num`` images of ``cfg.data.test`` through its pipeline (first augmentation), resized to
    ``img_size`` square if given: ``[N, 3, H, W]``. ValueError when the test set is missing or empty, or its images
    differ in size."""
    from mmdet.datasets import build_dataset
    ds_cfg = cfg.data.test[0] if isinstance(cfg.data.test, (list, tuple)) else cfg.data.test
    ds_cfg = ds_cfg.copy()
    ds_cfg.test_mode = True
    try:
        check_data(ds_cfg, 'data.test')
    except ValueError as err:
        raise ValueError(f'{err}; create the test set or use --random') from None
    dataset = build_dataset(ds_cfg)
    if len(dataset) == 0:
        raise ValueError('the test set is empty; use --random')
    imgs = []
    for i in range(min(num, len(dataset))):
        img = dataset[i]['img']
        img = img[0] if isinstance(img, (list, tuple)) else img
        img = getattr(img, 'data', img)  # DataContainer
        if img_size is not None:
            img = F.interpolate(img[None], size=(img_size, img_size), mode='bilinear', align_corners=False)[0]
        imgs.append(img)
    if len({tuple(im.shape) for im in imgs}) > 1:
        raise ValueError(f'test images have different sizes {sorted({tuple(im.shape[1:]) for im in imgs})}; '
                         'give --img_size to resize them to one size')
    return torch.stack(imgs)


def _flip_gaps(scores: torch.Tensor, k: int, windows: List[int]) -> List[float]:
    """Relative distance of each window's score from the keep boundary of ``scores [nW]`` at ``k`` kept."""
    ordered = scores.sort(descending=True).values  # [nW]
    boundary = float(ordered[k - 1] + ordered[k]) / 2 if k < len(ordered) else float(ordered[k - 1])
    scale = max(abs(boundary), 1e-30)
    return [abs(float(scores[w]) - boundary) / scale for w in windows]


def check_precision(config: str, checkpoint: Optional[str] = None, dtype: str = 'bf16', device: str = 'auto',
                    num_images: int = 8, random: bool = False, img_size: Optional[int] = None, batch_size: int = 2,
                    pruning_ratios: Optional[str] = None, seed: int = 0, cfg_options: Optional[dict] = None) -> dict:
    """``tools/check_precision.py``: the config's SparseViT backbone on ``num_images`` test-set images (or random
    ones: ``random``, ``img_size`` default 672, seeded), in fp32 and under autocast at ``dtype``; the kept-window
    agreement (:func:`precision_agreement`) with what was run. ValueError for a configuration that prunes nothing."""
    from ..deploy.build import build_sparse_backbone
    from ..schedule import is_dense
    from ..utils.config import load_config
    from ..utils.latency import resolve_device
    from ..utils.precision import resolve_dtype
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    cfg = load_config(config, cfg_options, require_backbone=True)
    backbone, _ = build_sparse_backbone(cfg, checkpoint, pruning_ratios)
    if is_dense(backbone.pruning_ratios):
        raise ValueError('the configuration prunes nothing (all ratios 0): give --pruning-ratios or a sparse config')
    backbone.to(dev)
    if random:
        size = img_size or 672
        imgs = torch.randn(num_images, 3, size, size, generator=torch.Generator().manual_seed(seed))
    else:
        imgs = first_test_images(cfg, num_images, img_size)
    found = precision_agreement(backbone, imgs, torch_dtype, batch_size, dev)
    return dict(found.comparison, config=config, checkpoint=checkpoint, dtype=dtype, device=str(dev),
                images='random' if random else 'test set', num_images=len(imgs), img_hw=list(imgs.shape[2:]),
                pruning_ratios=[list(s) for s in backbone.pruning_ratios], pad_before_norm=backbone.pad_before_norm,
                same_input_mismatches=found.same_input_mismatches, same_input_checks=found.same_input_checks)


def format_precision_check(r: dict) -> str:
    """:func:`check_precision`'s result as the tool prints it (four lines)."""
    h, w = r['img_hw']
    stages = ', '.join(f"stage {s['stage']} {s['agree']}/{s['kept']}" for s in r['per_stage'] if s['kept'])
    lines = [f"fp32 vs {r['dtype']} autocast on {r['device']}: {r['num_images']} {r['images']} images ({h}x{w}), "
             f"pruning_ratios {r['pruning_ratios']}",
             f"kept windows that agree: {r['agree']}/{r['kept']} ({100 * r['agreement']:.2f} %); flips: {r['flips']}; "
             f"largest relative score gap of a flip: {r['max_flip_gap']:.2e}",
             f'per stage: {stages}',
             f"same stage input, fp32 vs {r['dtype']} ranking: "
             + ('identical' if r['same_input_mismatches'] == 0 else f"{r['same_input_mismatches']} stage(s) DIFFER")
             + f" ({r['same_input_checks']} stage runs)"]
    return '\n'.join(lines)
