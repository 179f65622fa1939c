"""Do the windows SparseViT keeps hold the objects? Kept-window recall and precision against instance masks.

Frames and definitions (every number of the result follows them):

* **Input frame**: pixels of the network input, i.e. the image after the test pipeline's resize, before its
  padding (``img_shape``). Instance masks are given in this frame (:class:`ImageTruth`; :func:`analyze_dataset`
  scales the COCO polygons by the pipeline's ``scale_factor``). Object sizes are *not* taken from these masks but
  from the COCO ``area`` of each object, in the original image's pixels, as COCO's evaluation does:
  small < 32², medium < 96², large otherwise (:data:`SIZE_BINS`).
* **Token grid** of a stage with stride ``s``: token ``(r, c)`` covers input pixels ``[r s, (r + 1) s) x
  [c s, (c + 1) s)``; the grid covers every input pixel (patch embedding and merging pad at the bottom/right).
  :func:`token_pixel_counts` counts each token's object pixels, so pixels are counted exactly, not tokens.
* **Windows**: the backbone pads a stage map to a multiple of the window size ``ws`` and numbers the windows
  row-major; a shifted (SW-MSA, odd block index) block numbers the windows of the map rolled by ``-ws // 2``.
  :func:`kept_token_mask` maps kept window ids back to tokens of the unrolled, unpadded map and
  :func:`window_pixel_counts` sums token counts per window in the backbone's numbering (both through the
  backbone's own table, :func:`sparsevit.ops.window.window_token_index`).
* **Recall**: object pixels (union of an image's masks) whose token lies in a kept window / all object pixels.
  **Precision**: kept windows holding at least one object pixel / kept windows. Both are sums over images
  (pixel- and window-weighted), reported for the first pruned block of each kind (regular, shifted) per stage:
  the ranking is made there, later blocks of the kind keep a prefix of it (the same windows at equal ratios).
* **Random**: the backbone's own ``window_selection='random'`` at the same counts (image ``n`` is forward call
  ``n`` of seed ``s``), mean and standard deviation over seeds. **Chance**: the exact expectation for a uniformly
  random subset of the same size ``k`` of ``nW`` windows: recall ``k / nW`` (``1 - prune_ratio`` up to the floor
  of ``k``), precision the share of windows that hold an object.
* **Stage-input magnitude**: the backbone's importance ``mean_c |x|`` of each stage's input (what an all-pruned
  stage ranks on), averaged over object tokens (at least half of their image pixels are object pixels) and over
  background tokens (no object pixel). Stage 0's input is the patch embedding *after its LayerNorm*
  (``patch_norm=True``, as the original): LayerNorm scales every token to unit variance, so the magnitude
  there carries little of the content's contrast; later stages rank the patch merging's output (LayerNorm, then
  a linear reduction).
"""
import contextlib
import dataclasses
import io
import math
import os
import os.path as osp
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..ops import window as W
from ..ops.selection import SelectionRecord, Selections
from ..schedule import Ratios, is_dense, normalize_pruning_ratios
from ..tasks import check_data
from ..utils.cli import write_json

#: COCO's object sizes by area (original image pixels): (name, upper bound, exclusive).
SIZE_BINS: Tuple[Tuple[str, float], ...] = (('small', 32.0 ** 2), ('medium', 96.0 ** 2), ('large', math.inf))
SIZE_NAMES = tuple(name for name, _ in SIZE_BINS)
#: Block kinds by block index parity: W-MSA (even) and SW-MSA (odd, shifted windows).
KINDS = ('regular', 'shifted')
#: A token counts as an object token for the magnitude when at least this share of its image pixels is object.
OBJECT_TOKEN_SHARE = 0.5
#: Dataset entries of a config that can be analysed (always through the test pipeline).
SPLITS = ('train', 'val', 'test')


# ---------------------------------------------------------------------------------------------------- ground truth
@dataclasses.dataclass(frozen=True)
class ImageTruth:
    """Ground truth of one image in the input frame.

    Attributes:
        masks: ``[n, h, w]`` bool instance masks over the image region of the network input (``img_shape``).
        areas: ``[n]`` COCO areas of the objects, in the original image's pixels (they decide the size bin).
    """
    masks: np.ndarray
    areas: np.ndarray

    def __post_init__(self):
        if self.masks.ndim != 3 or len(self.masks) != len(self.areas):
            raise ValueError(f'ImageTruth needs masks [n, h, w] and n areas, got masks {self.masks.shape} and '
                             f'{len(self.areas)} areas')

    @property
    def hw(self) -> Tuple[int, int]:
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    def union(self) -> np.ndarray:
        """``[h, w]`` bool: pixels of any object (overlaps counted once)."""
        return self.masks.any(0)


def size_bin(area: float) -> str:
    """COCO size name of an object area: ``'small'`` (< 32²), ``'medium'`` (< 96²) or ``'large'``."""
    return next(name for name, upper in SIZE_BINS if area < upper)


# ---------------------------------------------------------------------------------------------------- token maps
def token_pixel_counts(mask: np.ndarray, stride: int, grid_hw: Tuple[int, int]) -> np.ndarray:
    """Pixels of ``mask`` per token of a stride-``stride`` grid: ``[h, w]`` bool -> ``[H, W]`` int64.

    The mask is zero-padded at the bottom/right to ``(H * stride, W * stride)``; a mask larger than that lies
    partly outside the grid and is rejected.
    """
    gh, gw = grid_hw
    h, w = mask.shape
    if h > gh * stride or w > gw * stride:
        raise ValueError(f'a {h}x{w} mask does not fit a {gh}x{gw} token grid of stride {stride}')
    full = np.zeros((gh * stride, gw * stride), dtype=np.int64)  # [H*s, W*s]
    full[:h, :w] = mask
    return full.reshape(gh, stride, gw, stride).sum(axis=(1, 3))  # [H, s, W, s] -> [H, W]


def _token_index(grid: Tuple[int, int], window_size: int, shift: int) -> np.ndarray:
    """The backbone's token-index table ``[nW, N]`` of a window grid (flat positions in the padded map)."""
    nwh, nww = grid
    return W.window_token_index(nwh * window_size, nww * window_size, window_size, shift).numpy()


def window_pixel_counts(counts: np.ndarray, window_size: int, shift: int) -> np.ndarray:
    """Per-window sums of a token map, in the backbone's window numbering: ``[H, W] -> [nW]``.

    The map is zero-padded to a multiple of ``window_size``; with ``shift`` the windows are those of the map
    rolled by ``-shift`` (a shifted block's).
    """
    h, w = counts.shape
    hp, wp = h + (-h) % window_size, w + (-w) % window_size
    padded = np.zeros((hp, wp), dtype=counts.dtype)  # [Hp, Wp]
    padded[:h, :w] = counts
    index = _token_index((hp // window_size, wp // window_size), window_size, shift)  # [nW, N]
    return padded.reshape(-1)[index].sum(axis=1)  # [nW, N] -> [nW]


def kept_token_mask(record: SelectionRecord, window_size: int, image_index: int = 0) -> np.ndarray:
    """Boolean ``(H, W)`` token mask of one block's kept windows, in the unshifted, unpadded token map.

    ``record`` is one entry of ``last_selection`` (``keep [B, k]`` window ids of the padded map's row-major grid
    ``grid``, rolled by ``-shift`` for shifted blocks; ``hw`` the unpadded size); the backbone's token-index table
    folds the roll and the padding in.
    """
    nwh, nww = record.grid
    index = _token_index((nwh, nww), window_size, record.shift)  # [nW, N]
    mask = np.zeros(nwh * nww * window_size * window_size, dtype=bool)  # [Hp*Wp]
    mask[index[np.asarray(record.keep[image_index], dtype=np.int64)].reshape(-1)] = True
    h, w = record.hw
    return mask.reshape(nwh * window_size, nww * window_size)[:h, :w]  # [Hp, Wp] -> [H, W]


# ---------------------------------------------------------------------------------------------------- tallies
def _zeros_by_size() -> Dict[str, float]:
    return dict.fromkeys(SIZE_NAMES, 0.0)


def _ratio(num: float, den: float) -> Optional[float]:
    return float(num) / float(den) if den else None


@dataclasses.dataclass
class SelectionTally:
    """Sums over images of one block's selection; the ratios are :meth:`summary`'s.

    ``expected_*`` are the expectations under a uniformly random subset of the same size (chance).
    """
    object_pixels: float = 0.0
    kept_object_pixels: float = 0.0
    expected_object_pixels: float = 0.0
    windows: int = 0
    kept_windows: int = 0
    object_windows: int = 0
    kept_object_windows: int = 0
    expected_object_windows: float = 0.0
    size_pixels: Dict[str, float] = dataclasses.field(default_factory=_zeros_by_size)
    size_kept_pixels: Dict[str, float] = dataclasses.field(default_factory=_zeros_by_size)

    def __iadd__(self, other: 'SelectionTally') -> 'SelectionTally':
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, dict):
                setattr(self, f.name, {k: mine[k] + theirs[k] for k in mine})
            else:
                setattr(self, f.name, mine + theirs)
        return self

    def summary(self) -> dict:
        """dict(recall, precision, recall_by_size {small, medium, large}, chance_recall, chance_precision); a
        ratio without a denominator (no object pixels, nothing kept) is None."""
        return dict(recall=_ratio(self.kept_object_pixels, self.object_pixels),
                    precision=_ratio(self.kept_object_windows, self.kept_windows),
                    recall_by_size={k: _ratio(self.size_kept_pixels[k], self.size_pixels[k]) for k in SIZE_NAMES},
                    chance_recall=_ratio(self.expected_object_pixels, self.object_pixels),
                    chance_precision=_ratio(self.expected_object_windows, self.kept_windows))


def block_tally(record: SelectionRecord, image_index: int, truth: ImageTruth, window_size: int) -> SelectionTally:
    """The tally of one block's kept windows on one image of the batch (``record`` from ``last_selection``)."""
    stride, grid_hw, shift = record.stride, tuple(record.hw), record.shift
    keep = np.asarray(record.keep[image_index], dtype=np.int64)  # [k]
    num_windows, k = int(record.grid[0] * record.grid[1]), len(keep)
    union = token_pixel_counts(truth.union(), stride, grid_hw)  # [H, W]
    kept = kept_token_mask(record, window_size, image_index)  # [H, W]
    per_window = window_pixel_counts(union, window_size, shift) > 0  # [nW]
    total, n_object_windows = float(union.sum()), int(per_window.sum())
    tally = SelectionTally(object_pixels=total, kept_object_pixels=float(union[kept].sum()),
                           expected_object_pixels=total * k / num_windows, windows=num_windows, kept_windows=k,
                           object_windows=n_object_windows, kept_object_windows=int(per_window[keep].sum()),
                           expected_object_windows=k * n_object_windows / num_windows)
    for mask, area in zip(truth.masks, truth.areas):
        counts = token_pixel_counts(mask, stride, grid_hw)  # [H, W]
        name = size_bin(float(area))
        tally.size_pixels[name] += float(counts.sum())
        tally.size_kept_pixels[name] += float(counts[kept].sum())
    return tally


@dataclasses.dataclass
class MagnitudeTally:
    """Sums of a stage input's importance (``mean_c |x|``) over object and background tokens."""
    object_sum: float = 0.0
    object_tokens: int = 0
    background_sum: float = 0.0
    background_tokens: int = 0

    def __iadd__(self, other: 'MagnitudeTally') -> 'MagnitudeTally':
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def summary(self) -> dict:
        """dict(object, background: mean importance, ratio: object / background, object_tokens,
        background_tokens); None where undefined."""
        obj, bg = _ratio(self.object_sum, self.object_tokens), _ratio(self.background_sum, self.background_tokens)
        return dict(object=obj, background=bg, ratio=_ratio(obj, bg) if obj is not None and bg else None,
                    object_tokens=self.object_tokens, background_tokens=self.background_tokens)


def magnitude_tally(importance: np.ndarray, truth: ImageTruth, stride: int) -> MagnitudeTally:
    """Object vs background importance of one image: ``importance [H, W]`` (a stage input's ``mean_c |x|``).

    Object tokens: at least :data:`OBJECT_TOKEN_SHARE` of their image pixels are object pixels; background
    tokens: image pixels and no object pixel; tokens over the input's padding only are in neither.
    """
    grid_hw = importance.shape
    obj = token_pixel_counts(truth.union(), stride, grid_hw)  # [H, W]
    image = token_pixel_counts(np.ones(truth.hw, dtype=bool), stride, grid_hw)  # [H, W]
    is_obj = (obj > 0) & (obj >= OBJECT_TOKEN_SHARE * image)
    is_bg = (image > 0) & (obj == 0)
    return MagnitudeTally(object_sum=float(importance[is_obj].sum()), object_tokens=int(is_obj.sum()),
                          background_sum=float(importance[is_bg].sum()), background_tokens=int(is_bg.sum()))


def selection_tallies(selection: Selections, truths: Sequence[ImageTruth],
                      window_size: int) -> Dict[Tuple[int, str], Tuple[int, SelectionTally]]:
    """``(stage, kind) -> (block, tally over the batch)`` of the first pruned block of each kind per stage."""
    out: Dict[Tuple[int, str], Tuple[int, SelectionTally]] = {}
    for i, records in enumerate(selection):
        for j, record in enumerate(records):
            key = (i, KINDS[j % 2])
            if record is None or key in out:
                continue
            tally = SelectionTally()
            for b, truth in enumerate(truths):
                tally += block_tally(record, b, truth, window_size)
            out[key] = (j, tally)
    return out


# ---------------------------------------------------------------------------------------------------- backbone
def stage_strides(backbone) -> List[int]:
    """Input-pixel stride of every stage's token grid (patch size, times each earlier patch merging's stride)."""
    stride, out = backbone.patch_embed.projection.stride[0], []
    for stage in backbone.stages:
        out.append(stride)
        if stage.downsample is not None:
            s = stage.downsample.sampler.stride
            stride *= s[0] if isinstance(s, (tuple, list)) else s
    return out


def stage_input_names(backbone) -> List[str]:
    """What each stage's importance is computed on (with all its blocks pruned), in words."""
    first = 'patch embedding' + (' after its LayerNorm' if backbone.patch_embed.norm is not None else ' (no norm)')
    if backbone.use_abs_pos_embed:
        first += ' + absolute position embedding'
    return [first] + [f'patch merging of stage {i - 1} (LayerNorm, linear reduction)'
                      for i in range(1, len(backbone.stages))]


@contextlib.contextmanager
def _selection_mode(backbone, window_selection: str, seed: int, call: int):
    """Temporarily record selections with the given window selection (and random seed / forward call)."""
    names = ('record_selection', 'window_selection', 'selection_seed', 'selection_calls')
    saved = {n: getattr(backbone, n) for n in names}
    backbone.record_selection, backbone.window_selection = True, window_selection
    backbone.selection_seed, backbone.selection_calls = seed, call
    try:
        yield
    finally:
        for n, v in saved.items():
            setattr(backbone, n, v)
        backbone.last_selection = None


@torch.no_grad()
def record_forward(backbone, img: torch.Tensor, window_selection: str = 'l2', seed: int = 0,
                   call: int = 0) -> Tuple[Selections, List[np.ndarray]]:
    """One forward of a ``SparseSwinTransformer`` on ``img [B, 3, H, W]``; its settings are restored after.

    Args:
        window_selection: ``'l2'`` or ``'random'`` (then ``seed`` is its ``selection_seed`` and ``call`` its
            forward-call number, so a selection is reproducible image by image).

    Returns:
        (``last_selection``: per stage, per block, None or a ``SelectionRecord``; per stage the importance
        ``[B, H, W]`` (fp32 numpy) of its input, by the backbone's own ``_importance``).
    """
    maps: Dict[int, np.ndarray] = {}

    def store(i: int, x: torch.Tensor) -> None:  # at once: the stage then overwrites its input in place
        maps[i] = backbone._importance(x, None).cpu().numpy()  # [B, H, W, C] -> [B, H, W]

    with _selection_mode(backbone, window_selection, seed, call), backbone.observe_stages(before=store):
        backbone(img)
        selection = backbone.last_selection
    importance = [maps[i] for i in range(len(backbone.stages))]
    return selection, importance


# ---------------------------------------------------------------------------------------------------- analysis
@dataclasses.dataclass(frozen=True)
class Setting:
    """One sparsity configuration to analyse: a name and per-block ratios (any form ``pruning_ratios`` takes)."""
    name: str
    pruning_ratios: Ratios


def uniform_settings(prune_ratios: Sequence[float]) -> List[Setting]:
    """One :class:`Setting` per ratio, applied to every block: ``uniform 0.5``, ..."""
    return [Setting(f'uniform {r:g}', float(r)) for r in prune_ratios]


def _std(values: Sequence[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return float(np.std(vals, ddof=1)) if len(vals) > 1 else (0.0 if vals else None)


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _random_summary(tallies: Sequence[SelectionTally]) -> dict:
    """Mean (and std) over seeds of each seed's summary."""
    sums = [t.summary() for t in tallies]
    return dict(recall=_mean([s['recall'] for s in sums]), recall_std=_std([s['recall'] for s in sums]),
                precision=_mean([s['precision'] for s in sums]), precision_std=_std([s['precision'] for s in sums]),
                recall_by_size={k: _mean([s['recall_by_size'][k] for s in sums]) for k in SIZE_NAMES},
                seeds=len(tallies))


def _add(store: dict, key, tally) -> None:
    if key in store:
        store[key] += tally
    else:
        store[key] = tally


class KeptWindowAnalysis:
    """Accumulates the kept-window tallies of a backbone over images; :meth:`result` summarises them.

    Args:
        backbone: a ``SparseSwinTransformer`` (eval mode); its ratios and selection settings are restored after
            every :meth:`add`.
        settings: the configurations to analyse (:class:`Setting`).
        random_seeds: seeds of the random-selection baseline (none: no random runs).
    """

    def __init__(self, backbone, settings: Sequence[Setting], random_seeds: Sequence[int] = ()):
        self.backbone, self.settings, self.random_seeds = backbone, list(settings), list(random_seeds)
        if len({s.name for s in self.settings}) != len(self.settings):
            raise ValueError(f'settings need distinct names, got {[s.name for s in self.settings]}')
        self.strides = stage_strides(backbone)
        self.ratios = {s.name: normalize_pruning_ratios(s.pruning_ratios, backbone.depths) for s in self.settings}
        self.blocks: Dict[tuple, int] = {}  # (setting, stage, kind) -> first pruned block of the kind
        self.l2: Dict[tuple, SelectionTally] = {}
        self.random: Dict[tuple, SelectionTally] = {}  # (setting, stage, kind, seed index) -> tally
        self.magnitude: Dict[tuple, MagnitudeTally] = {}  # (setting, stage) -> tally
        self.num_images, self.objects = 0, _zeros_by_size()
        self.input_sizes = set()

    def add(self, img: torch.Tensor, truths: Sequence[ImageTruth]) -> None:
        """One batch ``img [B, 3, H, W]`` (on the backbone's device) with one :class:`ImageTruth` per image.

        The images of a batch share one token grid: give one image per batch unless they all have one size.
        """
        ws, saved = self.backbone.window_size, self.backbone.pruning_ratios
        try:
            for setting in self.settings:
                self.backbone.set_pruning_ratios(self.ratios[setting.name])
                selection, importance = record_forward(self.backbone, img)
                for (i, kind), (j, tally) in selection_tallies(selection, truths, ws).items():
                    self.blocks[(setting.name, i, kind)] = j
                    _add(self.l2, (setting.name, i, kind), tally)
                for i, imp in enumerate(importance):
                    for b, truth in enumerate(truths):
                        _add(self.magnitude, (setting.name, i), magnitude_tally(imp[b], truth, self.strides[i]))
                for n, seed in enumerate(self.random_seeds):
                    selection, _ = record_forward(self.backbone, img, 'random', seed, call=self.num_images)
                    for (i, kind), (_, tally) in selection_tallies(selection, truths, ws).items():
                        _add(self.random, (setting.name, i, kind, n), tally)
        finally:
            self.backbone.set_pruning_ratios(saved)
        self.num_images += len(truths)
        self.input_sizes.add(tuple(int(v) for v in img.shape[2:]))
        for truth in truths:
            for area in truth.areas:
                self.objects[size_bin(float(area))] += 1

    def _block(self, name: str, i: int, kind: str) -> Optional[dict]:
        key = (name, i, kind)
        if key not in self.l2:
            return None
        j, l2 = self.blocks[key], self.l2[key]
        seeds = [self.random[key + (n, )] for n in range(len(self.random_seeds))]
        s = l2.summary()
        return dict(block=j, prune_ratio=self.ratios[name][i][j], windows=l2.windows, kept_windows=l2.kept_windows,
                    kept_fraction=_ratio(l2.kept_windows, l2.windows),
                    object_window_fraction=_ratio(l2.object_windows, l2.windows),
                    l2=dict(recall=s['recall'], precision=s['precision'], recall_by_size=s['recall_by_size']),
                    random=_random_summary(seeds) if seeds else None,
                    chance=dict(recall=s['chance_recall'], precision=s['chance_precision']))

    def result(self) -> dict:
        """dict(window_size, num_images, num_objects, objects_by_size, random_seeds, input_sizes, settings=[dict(
        name, pruning_ratios, stages=[dict(stage, stride, input, input_magnitude, regular, shifted)])]).

        ``regular``/``shifted`` are None for a kind without a pruned block, else dict(block, prune_ratio, windows,
        kept_windows, kept_fraction, object_window_fraction, l2=dict(recall, precision, recall_by_size), random=
        dict(recall, recall_std, precision, precision_std, recall_by_size, seeds) or None, chance=dict(recall,
        precision)); ``input_magnitude`` is :meth:`MagnitudeTally.summary`'s dict.
        """
        names, out = stage_input_names(self.backbone), []
        for setting in self.settings:
            stages = [dict(stage=i, stride=self.strides[i], input=names[i],
                           input_magnitude=self.magnitude.get((setting.name, i), MagnitudeTally()).summary(),
                           **{kind: self._block(setting.name, i, kind) for kind in KINDS})
                      for i in range(len(self.strides))]
            out.append(dict(name=setting.name, pruning_ratios=self.ratios[setting.name], stages=stages))
        return dict(window_size=self.backbone.window_size, num_images=self.num_images,
                    num_objects=int(sum(self.objects.values())),
                    objects_by_size={k: int(v) for k, v in self.objects.items()}, random_seeds=self.random_seeds,
                    input_sizes=sorted(list(s) for s in self.input_sizes), settings=out)


def analyze_images(backbone, images: Iterable[Tuple[torch.Tensor, Sequence[ImageTruth]]],
                   settings: Sequence[Setting], random_seeds: Sequence[int] = ()) -> dict:
    """Kept-window recall, precision and stage-input magnitude of ``backbone`` on ``(img, truths)`` batches
    (see :class:`KeptWindowAnalysis`; the definitions are in the module docstring); returns its result."""
    analysis = KeptWindowAnalysis(backbone, settings, random_seeds)
    for img, truths in images:
        analysis.add(img, truths)
    return analysis.result()


# ---------------------------------------------------------------------------------------------------- dataset
def _test_dataset(cfg, split: str):
    """``cfg.data[split]`` through the test pipeline, in test mode (every image, in file order)."""
    from mmdet.datasets import build_dataset
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    ds_cfg = cfg.data.get(split)
    if ds_cfg is None or isinstance(ds_cfg, (list, tuple)):
        raise ValueError(f'the config has no single data.{split} dataset')
    ds_cfg = ds_cfg.copy()
    ds_cfg.pipeline, ds_cfg.test_mode = cfg.data.test.pipeline, True
    check_data(ds_cfg, f'data.{split}')
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' loading notices: stdout stays the tables
        dataset = build_dataset(ds_cfg)
    if not hasattr(dataset, 'coco'):
        raise ValueError(f'data.{split} is a {type(dataset).__name__}; the analysis needs a COCO-format dataset '
                         f'with instance masks')
    return dataset


def instance_mask(segmentation, ori_hw: Tuple[int, int], scale_xy: Tuple[float, float],
                  img_hw: Tuple[int, int]) -> np.ndarray:
    """A COCO segmentation as a ``[h, w]`` bool mask of the resized image (``img_hw``).

    Polygons are scaled by ``scale_xy`` (the pipeline's ``scale_factor``, as mmdet's ``PolygonMasks.rescale``)
    and rasterised at the input size; an RLE is decoded at the original size and resized (nearest).
    """
    import mmcv
    from pycocotools import mask as mask_utils
    h, w = img_hw
    if isinstance(segmentation, list):
        scale = np.asarray(scale_xy, dtype=np.float64)
        polys = [(np.asarray(p, dtype=np.float64).reshape(-1, 2) * scale).reshape(-1).tolist() for p in segmentation]
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w))).astype(bool)
    rle = mask_utils.frPyObjects(segmentation, *ori_hw) if isinstance(segmentation['counts'], list) else segmentation
    full = mask_utils.decode(rle)
    return mmcv.imresize(full, (w, h), interpolation='nearest').astype(bool)


def load_image(dataset, index: int) -> Tuple[torch.Tensor, ImageTruth]:
    """Image ``index`` through the test pipeline (first augmentation): ``(img [1, 3, Hp, Wp], ImageTruth)`` with
    the non-crowd instance masks of the dataset's classes in the input frame."""
    data = dataset[index]
    img, meta = data['img'], data['img_metas']
    img, meta = (img[0], meta[0]) if isinstance(img, list) else (img, meta)  # MultiScaleFlipAug: first scale
    img, meta = getattr(img, 'data', img), getattr(meta, 'data', meta)  # DataContainer
    if meta.get('flip'):
        raise ValueError("the test pipeline's first augmentation is flipped; the analysis needs an unflipped one")
    h, w = meta['img_shape'][:2]
    ori_hw = tuple(meta['ori_shape'][:2])
    scale_xy = tuple(np.asarray(meta['scale_factor'], dtype=np.float64).reshape(-1)[:2])  # (w_scale, h_scale)
    info = dataset.data_infos[index]
    anns = [a for a in dataset.coco.load_anns(dataset.coco.get_ann_ids(img_ids=[info['id']]))
            if not a.get('iscrowd', 0) and a['category_id'] in dataset.cat_ids]
    masks = [instance_mask(a['segmentation'], ori_hw, scale_xy, (h, w)) for a in anns]
    masks = np.stack(masks) if masks else np.zeros((0, h, w), dtype=bool)
    return img.unsqueeze(0), ImageTruth(masks=masks, areas=np.asarray([a['area'] for a in anns], dtype=np.float64))


def _dataset_images(dataset, num_images: int, device: torch.device
                    ) -> Iterator[Tuple[torch.Tensor, Sequence[ImageTruth]]]:
    for index in range(min(num_images, len(dataset))):
        img, truth = load_image(dataset, index)
        yield img.to(device), [truth]


DEFINITIONS = dict(
    frame='masks in the network input (after the test resize, before padding); tokens of stride s cover s x s '
    'input pixels',
    recall='object pixels (union of the masks) whose token is in a kept window / all object pixels, summed over '
    'images; first pruned block of the kind',
    precision='kept windows with at least one object pixel / kept windows, summed over images',
    random="window_selection='random' at the same counts: mean and std over seeds",
    chance='uniform random subset of the same size: recall k/nW, precision = share of windows with an object',
    size='COCO area in original image pixels: small < 32^2 <= medium < 96^2 <= large',
    input_magnitude='mean over tokens of the stage input importance mean_c|x|; object tokens >= 50% object pixels, '
    'background tokens no object pixel (each stage names its input)')


def analyze_dataset(config: str, checkpoint: Optional[str], *, split: str = 'val',
                    prune_ratios: Optional[Sequence[float]] = None, num_images: int = 40, random_seeds: int = 3,
                    cfg_options: Optional[dict] = None, device: str = 'auto') -> dict:
    """Kept-window analysis of a detector config's SparseViT backbone on a COCO split (see the module docstring).

    Args:
        config: mmdet detector config (a dense ``SwinTransformer`` runs as SparseViT with the same weights).
        checkpoint: detector checkpoint (its ``backbone.*`` weights); None: random weights.
        split: ``cfg.data[split]`` (``'train'``, ``'val'`` or ``'test'``), always through ``cfg.data.test``'s
            pipeline (its first augmentation); images one per forward, as the detector's test.
        prune_ratios: uniform ratios to analyse, one setting each; None: the config's ``pruning_ratios``.
        num_images: the first ``num_images`` images of the split (fewer if it has fewer).
        random_seeds: number of seeds (0, 1, ...) of the random-selection baseline.
        cfg_options: ``--cfg-options`` overrides.
        device: ``'auto'``, ``'cpu'`` or ``'cuda'``.

    Returns:
        :meth:`KeptWindowAnalysis.result`'s dict (``input_sizes``: the distinct ``[H, W]`` of the padded network
        inputs) plus config, checkpoint, split and definitions (the frames and measures, in words).

    Raises:
        ValueError: one line, on a bad config, checkpoint, split, ratio, or a configuration that prunes nothing.
    """
    from ..deploy.build import build_sparse_backbone
    from ..utils.config import load_config
    from ..utils.latency import resolve_device
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f'num_images must be a positive integer, got {num_images!r}')
    if isinstance(random_seeds, bool) or not isinstance(random_seeds, int) or random_seeds < 0:
        raise ValueError(f'random_seeds must be a non-negative integer, got {random_seeds!r}')
    dev = resolve_device(device)
    cfg = load_config(config, cfg_options, require_backbone=True)
    backbone, _ = build_sparse_backbone(cfg, checkpoint)
    backbone.to(dev)
    if prune_ratios:
        settings = uniform_settings(prune_ratios)
        for s in settings:
            normalize_pruning_ratios(s.pruning_ratios, backbone.depths)  # bad ratios fail before the data loads
    elif is_dense(backbone.pruning_ratios):
        raise ValueError("the config's pruning_ratios prune nothing: give prune ratios (--ratios)")
    else:
        settings = [Setting('config', backbone.pruning_ratios)]
    dataset = _test_dataset(cfg, split)
    result = analyze_images(backbone, _dataset_images(dataset, num_images, dev), settings, list(range(random_seeds)))
    result.update(config=config, checkpoint=checkpoint, split=split, definitions=DEFINITIONS)
    return result


# ---------------------------------------------------------------------------------------------------- outputs
def _fmt(value: Optional[float], std: Optional[float] = None) -> str:
    if value is None:
        return '–'
    return f'{value:.3f}' if std is None else f'{value:.3f} ± {std:.3f}'


def format_markdown(result: dict) -> str:
    """Two markdown tables: kept-window recall/precision per setting, stage and block kind; stage-input
    magnitude per setting and stage."""
    lines = ['| setting | stage | block | kept / windows | recall L2 | recall random | recall chance | '
             'precision L2 | precision random | precision chance | recall L2 small / medium / large |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for setting in result['settings']:
        for stage in setting['stages']:
            for kind in KINDS:
                e = stage[kind]
                if e is None:
                    continue
                rnd = e['random'] or {}
                sizes = ' / '.join(_fmt(e['l2']['recall_by_size'][k]) for k in SIZE_NAMES)
                lines.append(f"| {setting['name']} | {stage['stage']} | {e['block']} ({kind}) | "
                             f"{e['kept_windows']} / {e['windows']} | {_fmt(e['l2']['recall'])} | "
                             f"{_fmt(rnd.get('recall'), rnd.get('recall_std'))} | {_fmt(e['chance']['recall'])} | "
                             f"{_fmt(e['l2']['precision'])} | {_fmt(rnd.get('precision'), rnd.get('precision_std'))} "
                             f"| {_fmt(e['chance']['precision'])} | {sizes} |")
    lines += ['', '| setting | stage | stage input | mean_c\\|x\\| object | background | object / background |',
              '|---|---|---|---|---|---|']
    for setting in result['settings']:
        for stage in setting['stages']:
            m = stage['input_magnitude']
            lines.append(f"| {setting['name']} | {stage['stage']} | {stage['input']} | {_fmt(m['object'])} | "
                         f"{_fmt(m['background'])} | {_fmt(m['ratio'])} |")
    return '\n'.join(lines) + '\n'


def write_outputs(result: dict, json_path: Optional[str] = None, markdown_path: Optional[str] = None) -> None:
    """Write the result as JSON and/or as :func:`format_markdown`'s tables (directories are created)."""
    if json_path is not None:
        write_json(json_path, result)
    if markdown_path is not None:
        os.makedirs(osp.dirname(osp.abspath(markdown_path)), exist_ok=True)
        with open(markdown_path, 'w') as f:
            f.write(format_markdown(result))
