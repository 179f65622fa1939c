"""The synthetic shapes as a semantic-segmentation dataset in mmsegmentation's ``CustomDataset`` layout.

Images are drawn by :func:`sparsevit.datasets.synthetic.render_image` (same styles, layouts and random streams as
the COCO dataset; a square image of the same seed, split, layout and style is the COCO dataset's image, pixel for
pixel), of any ``(height, width)``; each has a label map (mode ``'L'``, uint8) over :data:`SEG_CLASSES`.

Label rule: a pixel takes the class id (1-4, :data:`SYNTHETIC_CLASSES` order) of the shape whose rasterised polygon
covers it (the very pixels the image paints with the shape) and 0, ``'background'``, otherwise: every "stuff"
region and the distractors. Then each pixel whose 3x3 neighbourhood (clipped at the image's edge) holds both shape
and non-shape pixels is :data:`IGNORE_INDEX` (255): the last pixel inside each outline and the first outside it, a
band 2 px wide straddling the rasterised edge, through which the continuous polygon's edge runs (either label is
defensible there). Shapes never overlap and stay more than 2 px apart, so each 255 pixel borders one outline.

:data:`WIDE_SCENE` is the default variant: 512x1024 street-like images (``style='scene'``: a few large smooth
"stuff" regions, 0-2 textured distractors) with 6-16 small textured objects of 6-18 % of the short side (31-92
px), about half in clusters: about 4 % of the pixels are objects, and about 88 % of the 7x7-token windows of a Swin
with patch 4 (28 px at stage 0) hold none, easy background. The scene style's premise holds on it (median
:func:`~sparsevit.datasets.synthetic.local_contrast_ratio` of the labelled objects over 50 val images: about 40 at
pixels, 24 on the 4 px patch grid; every image above :data:`~sparsevit.datasets.synthetic.CONTRAST_TARGET`).

The layout written under ``out_dir``::

    img_dir/train/000000.png ...  ann_dir/train/000000.png ...
    img_dir/val/000000.png ...    ann_dir/val/000000.png ...
    meta.json

plus ``img_dir/search`` and ``ann_dir/search`` when ``num_search > 0`` (held out from both, for model selection).
Generation is deterministic for a given ``seed`` and idempotent: ``meta.json`` (the parameters and image counts)
is written last and atomically, each PNG atomically (a temporary name, then ``os.replace``), so a complete dataset
with the same parameters is reused, and an interrupted one (no ``meta.json``) or one with other parameters is
regenerated (when ``meta.json`` records the same parameters, a split whose count and files are intact is kept).

A config reads it with ``type='CustomDataset'``, ``classes=SEG_CLASSES``, ``palette=SEG_PALETTE``,
``reduce_zero_label=False`` (0 is a class) and the paths of :func:`synthetic_seg_cfg_options`.
"""
import dataclasses
import json
import os
import os.path as osp
from typing import Dict, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

from ..utils.files import make_dir, write_atomic, write_json
from .synthetic import (_PNG_OPTIONS, _SPLIT_STREAM, SEARCH_SPLIT, SYNTHETIC_CLASSES, Layout, _check_counts,
                        _check_layout_and_style, _dataset_splits, _erode, image_shape, render_image)

#: Label ids 0-4: 0 the background (stuff and distractors), then the shapes in :data:`SYNTHETIC_CLASSES` order.
SEG_CLASSES = ('background', ) + SYNTHETIC_CLASSES
#: One RGB colour per class of :data:`SEG_CLASSES`.
SEG_PALETTE = ((0, 0, 0), (220, 20, 60), (0, 130, 200), (255, 190, 0), (60, 180, 75))
#: The label of the ambiguous band along each outline (mmseg's default ``ignore_index``).
IGNORE_INDEX = 255
#: The default variant: wide scene-like images, a few large stuff regions and several small objects.
WIDE_SCENE = dict(img_size=(512, 1024), layout=Layout(rel_size=(0.06, 0.18), num_objects=(6, 16), cluster_prob=0.5,
                                                      cluster_gap=0.04))
#: The image and label-map folders under the data root (one sub-folder per split).
IMG_DIR, ANN_DIR = 'img_dir', 'ann_dir'
META_FILE = 'meta.json'
_FORMAT_VERSION = 1
_MIN_SIZE = 32


def render_labels(objects: Sequence[dict], size: Union[int, Tuple[int, int]]) -> np.ndarray:
    """The label map ``(H, W)`` uint8 of an image's objects (:func:`render_image`'s ``objects``), by the rule of
    the module docstring: class ids on the shapes, 0 elsewhere, :data:`IGNORE_INDEX` on the band along outlines."""
    h, w = image_shape(size)
    canvas = Image.new('L', (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for obj in objects:  # the polygon rasteriser of the image: the same pixels
        draw.polygon([tuple(p) for p in obj['polygon']], fill=obj['category_id'])
    labels = np.array(canvas)  # (H, W) uint8
    shape = labels > 0
    labels[~_erode(~shape, 1) & ~_erode(shape, 1)] = IGNORE_INDEX  # dilated and not eroded: a mixed 3x3
    return labels


def _save_png(image: Image.Image, path: str, **options) -> None:
    """Save ``image`` as a PNG at ``path`` atomically (a temporary name, then ``os.replace``)."""
    write_atomic(path, lambda f: image.save(f, format='PNG', **options))


def _paths(out_dir: str, split: str, index: int) -> Tuple[str, str]:
    """``(image, label map)`` paths of image ``index`` of ``split``."""
    name = f'{index:06d}.png'
    return osp.join(out_dir, IMG_DIR, split, name), osp.join(out_dir, ANN_DIR, split, name)


def _generate_split(out_dir: str, split: str, num_images: int, hw: Tuple[int, int], seed: int, layout: Layout,
                    style: str) -> None:
    """Write one split's images and label maps, and remove numbered PNGs beyond ``num_images`` (of a larger
    dataset written before: ``CustomDataset`` lists every file of the folders)."""
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])  # the COCO dataset's stream of the split
    for folder in (IMG_DIR, ANN_DIR):
        os.makedirs(osp.join(out_dir, folder, split), exist_ok=True)
    for index in range(num_images):
        canvas, objects, _ = render_image(rng, hw, layout, style)  # distractors are background
        img_path, ann_path = _paths(out_dir, split, index)
        _save_png(canvas, img_path, **_PNG_OPTIONS[style])
        _save_png(Image.fromarray(render_labels(objects, hw), 'L'), ann_path)
    for folder in (IMG_DIR, ANN_DIR):
        for name in os.listdir(osp.join(out_dir, folder, split)):
            stem, ext = osp.splitext(name)
            if ext == '.png' and stem.isdigit() and int(stem) >= num_images:
                os.remove(osp.join(out_dir, folder, split, name))


def _read_meta(path: str) -> dict:
    """The recorded ``meta.json`` (empty when missing or unreadable)."""
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _split_is_complete(out_dir: str, split: str, num_images: int, meta: dict, params: dict) -> bool:
    """Whether ``meta`` records ``params`` and ``num_images`` for ``split`` and all its files exist."""
    counts = meta.get('num_images')
    if meta.get('params') != params or not isinstance(counts, dict) or counts.get(split) != num_images:
        return False
    return all(osp.isfile(p) for i in range(num_images) for p in _paths(out_dir, split, i))


def _check_img_size(img_size: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    """``(height, width)`` of ``img_size`` (a side, or a pair); ValueError unless each is an integer >= 32."""
    hw = (img_size, img_size) if isinstance(img_size, int) else img_size
    if (not isinstance(hw, (tuple, list)) or len(hw) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= _MIN_SIZE for v in hw)):
        raise ValueError(f'img_size must be an integer >= {_MIN_SIZE} or a pair (height, width) of integers '
                         f'>= {_MIN_SIZE}, got {img_size!r}')
    return int(hw[0]), int(hw[1])


def generate_synthetic_seg(out_dir: str, num_train: int = 200, num_val: int = 50,
                           img_size: Union[int, Tuple[int, int]] = WIDE_SCENE['img_size'], seed: int = 0,
                           layout: Layout = WIDE_SCENE['layout'], style: str = 'scene', num_search: int = 0) -> dict:
    """Write (or reuse) the synthetic semantic-segmentation dataset under ``out_dir`` (see the module docstring).

    Args:
        out_dir: data root; receives ``img_dir/{split}/*.png``, ``ann_dir/{split}/*.png`` and ``meta.json``.
        num_train: number of training images (>= 1).
        num_val: number of validation images (>= 1).
        img_size: ``(height, width)`` of the images, or one side for square images (each >= 32).
        seed: generator seed (a non-negative integer); the same arguments always give the same files.
        layout: object sizes (fractions of the short side), counts and clustering (:class:`Layout`).
        style: appearance, ``'scene'`` (the default) or ``'flat'`` (:data:`~sparsevit.datasets.synthetic.STYLES`).
        num_search: images of an extra held-out ``search`` split (0: none).

    Returns:
        dict with ``root``, ``classes`` (:data:`SEG_CLASSES`), ``palette`` (:data:`SEG_PALETTE`), ``generated``
        (False when a complete dataset was reused) and, per split, ``dict(img_dir, ann_dir, num_images)`` under
        ``'train'`` and ``'val'`` (and ``'search'`` when ``num_search > 0``).

    Raises:
        ValueError: naming the bad argument: a count below its minimum, an image size that is not one or two
            integers >= 32, a negative or non-integer seed, a bad layout or an unknown style.
    """
    _check_counts(num_train, num_val, num_search)
    hw = _check_img_size(img_size)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    _check_layout_and_style(layout, style)
    make_dir(out_dir, 'the data root')
    out_dir = osp.abspath(out_dir)
    counts = dict(train=num_train, val=num_val, **({SEARCH_SPLIT: num_search} if num_search else {}))
    params = json.loads(json.dumps(dict(version=_FORMAT_VERSION, seed=seed, img_size=hw, style=style,
                                        layout=dataclasses.asdict(layout))))  # as read back: lists, not tuples
    meta_path = osp.join(out_dir, META_FILE)
    meta = _read_meta(meta_path)
    stale = [split for split in counts if not _split_is_complete(out_dir, split, counts[split], meta, params)]
    new_meta = dict(description='sparsevit synthetic shapes, semantic segmentation', classes=list(SEG_CLASSES),
                    params=params, num_images=counts)
    generated = bool(stale) or meta != new_meta
    if generated:
        if osp.exists(meta_path):
            os.remove(meta_path)  # incomplete until rewritten
        for split in stale:
            _generate_split(out_dir, split, counts[split], hw, seed, layout, style)
        write_json(meta_path, new_meta, indent=None)
    result = dict(root=out_dir, classes=SEG_CLASSES, palette=SEG_PALETTE, generated=generated)
    for split, num in counts.items():
        result[split] = dict(img_dir=osp.join(out_dir, IMG_DIR, split), ann_dir=osp.join(out_dir, ANN_DIR, split),
                             num_images=num)
    return result


def synthetic_seg_cfg_options(data_root: str, splits: Sequence[str] = ('train', 'val', 'test'),
                              eval_split: str = 'val') -> Dict[str, str]:
    """``--cfg-options`` overrides pointing an mmseg ``CustomDataset`` config's datasets at ``data_root``.

    ``data.train`` uses the train split; ``data.val`` and ``data.test`` use ``eval_split`` (the val split, or
    ``'search'``: the held-out split of a dataset written with ``num_search > 0``). The images are PNGs, so the
    suffixes are set too (``CustomDataset``'s ``img_suffix`` defaults to ``'.jpg'``).

    Returns:
        Flat dotted keys, e.g. ``{'data.train.data_root': '<root>', 'data.train.img_dir': 'img_dir/train',
        'data.train.ann_dir': 'ann_dir/train', 'data.train.img_suffix': '.png', ...}``.

    Raises:
        ValueError: on an unknown dataset key or split.
    """
    options = {}
    for key, split in _dataset_splits(splits, eval_split).items():
        options.update({f'data.{key}.data_root': data_root, f'data.{key}.img_dir': osp.join(IMG_DIR, split),
                        f'data.{key}.ann_dir': osp.join(ANN_DIR, split), f'data.{key}.img_suffix': '.png',
                        f'data.{key}.seg_map_suffix': '.png'})
    return options

