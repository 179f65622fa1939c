"""A small synthetic COCO-format instance-segmentation dataset for demos and tests (numpy + PIL only).

Each image is a smooth, softly textured background (a low-frequency colour gradient, a few faint blurred blobs and
mild pixel noise) with a few non-overlapping shapes (:data:`SYNTHETIC_CLASSES`) drawn as filled polygons in colours
chosen to contrast with the background. The class is given by the shape alone (colours are random), so a detector
has to learn geometry. The polygon of each shape is its exact ``segmentation``, so masks are inside boxes by
construction.

Design for SparseViT:
    * Objects are 20-45 % of the image side (e.g. 45-100 px at 224 px): several 7x7 windows of stage 0 (28 px)
      and about one window of stage 2 (112 px) in a Swin with patch 4 and window 7, which such a backbone can
      detect and localise well.
    * The background is smooth, so window importance (feature magnitude) differs strongly between windows that
      hold an object and windows that do not: pruning low-importance windows is meaningful.

Variants: the same generator with another :class:`Layout` (object size range, objects per image, clustering).
:data:`SMALL_OBJECTS` is the regime SparseViT targets, used by ``make experiments``: 448 px images with 4-12
objects of 4-12 % of the side, about half placed next to an earlier one (clusters), most of the image background,
so lowering the input resolution loses the objects' detail while most windows hold nothing. The defaults
(:data:`DEMO_LAYOUT`) give the demo's dataset, byte for byte.

The layout written under ``out_dir``::

    annotations/instances_train.json  annotations/instances_val.json
    train/000000.png ...              val/000000.png ...

plus ``annotations/instances_search.json`` and ``search/`` when ``num_search > 0``: a split held out from both,
for model selection (the sparsity search scores candidates on it, so the val split stays unbiased).

Generation is deterministic for a given ``seed`` and idempotent: a complete dataset written with the same
parameters is reused as is (annotation files are written last and atomically, so an interrupted run is detected
as incomplete and regenerated).
"""
import dataclasses
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

#: Shape classes, in category-id order (ids start at 1 in the annotation files).
SYNTHETIC_CLASSES = ('circle', 'square', 'triangle', 'star')

SPLITS = ('train', 'val')
#: The optional held-out split (``num_search > 0``); its random stream follows the two others'.
SEARCH_SPLIT = 'search'
_SPLIT_STREAM = dict(train=0, val=1, search=2)
_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where and how large the shapes of an image are.

    Attributes:
        rel_size: (min, max) object diameter (circumradius x 2) as a fraction of the image side.
        num_objects: (min, max) shapes per image, drawn uniformly (fewer only when no free spot is found).
        cluster_prob: chance that a shape after the first is placed next to an earlier one (its edge within
            ``cluster_gap`` of that shape's edge) instead of anywhere in the image.
        cluster_gap: largest gap between the edges of clustered shapes, as a fraction of the image side.
    """
    rel_size: Tuple[float, float] = (0.20, 0.45)
    num_objects: Tuple[int, int] = (1, 3)
    cluster_prob: float = 0.0
    cluster_gap: float = 0.04

    def check(self) -> None:
        """Raise ValueError naming the first bad field and the allowed range."""
        lo, hi = self.rel_size
        if not 0 < lo <= hi <= 0.9:
            raise ValueError(f'rel_size must satisfy 0 < min <= max <= 0.9, got {tuple(self.rel_size)}')
        n_lo, n_hi = self.num_objects
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in self.num_objects) or not 1 <= n_lo <= n_hi:
            raise ValueError(f'num_objects must be integers with 1 <= min <= max, got {tuple(self.num_objects)}')
        if not 0.0 <= self.cluster_prob <= 1.0:
            raise ValueError(f'cluster_prob must be in [0, 1], got {self.cluster_prob!r}')
        if not 0.0 <= self.cluster_gap <= 0.5:
            raise ValueError(f'cluster_gap must be in [0, 0.5], got {self.cluster_gap!r}')

    def info(self) -> dict:
        """The fields that differ from the demo's layout (JSON types): recorded in the annotation files' ``info``,
        so that a dataset written with other parameters is regenerated; empty for the demo (its files unchanged)."""
        default = dataclasses.asdict(DEMO_LAYOUT)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
                if v != default[k]}


#: The demo's layout: 1-3 large shapes (20-45 % of the side), placed independently.
DEMO_LAYOUT = Layout()
#: The experiments' dataset (``make experiments``): image size and layout, the regime SparseViT targets.
SMALL_OBJECTS = dict(img_size=448, layout=Layout(rel_size=(0.04, 0.12), num_objects=(4, 12), cluster_prob=0.5,
                                                 cluster_gap=0.04))


# ----------------------------------------------------------------------------------------------------------------
# Shapes: pure geometry
# ----------------------------------------------------------------------------------------------------------------
def _regular_polygon(num: int, radius: float, angle: float) -> np.ndarray:
    """Vertices ``(num, 2)`` of a regular polygon centred at the origin, first vertex at ``angle``."""
    t = angle + 2 * math.pi * np.arange(num) / num
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


def shape_polygon(name: str, center: Tuple[float, float], radius: float, angle: float) -> np.ndarray:
    """Vertices ``(N, 2)`` (x, y) of shape ``name`` with circumradius ``radius`` around ``center``.

    A circle is a 32-gon; the square and the triangle are regular polygons; the star has 5 points with an inner
    radius of 0.45 of the outer one.
    """
    if name == 'circle':
        pts = _regular_polygon(32, radius, 0.0)
    elif name == 'square':
        pts = _regular_polygon(4, radius, angle)
    elif name == 'triangle':
        pts = _regular_polygon(3, radius, angle)
    elif name == 'star':
        outer = _regular_polygon(5, radius, angle)
        inner = _regular_polygon(5, 0.45 * radius, angle + math.pi / 5)
        pts = np.stack([outer, inner], axis=1).reshape(10, 2)  # alternate outer/inner vertices
    else:
        raise ValueError(f'unknown shape {name!r}; allowed: {SYNTHETIC_CLASSES}')
    return pts + np.asarray(center, dtype=np.float64)


def polygon_area(pts: np.ndarray) -> float:
    """Area of a simple polygon ``(N, 2)`` (shoelace formula)."""
    x, y = pts[:, 0], pts[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def polygon_bbox(pts: np.ndarray) -> List[float]:
    """COCO box ``[x, y, w, h]`` enclosing the polygon."""
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


# ----------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------
def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth textured background ``(size, size, 3)`` float32 in [0, 255]."""
    c0, c1 = rng.uniform(60, 200, size=(2, 3))
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    t = (math.cos(theta) * xx + math.sin(theta) * yy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    blobs = Image.new('L', (size, size), 0)
    draw = ImageDraw.Draw(blobs)
    for _ in range(rng.integers(2, 5)):
        cx, cy = rng.uniform(0, size, size=2)
        r = rng.uniform(0.1, 0.25) * size
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=int(rng.integers(20, 50)))
    blobs = np.asarray(blobs.filter(ImageFilter.GaussianBlur(size / 12)), dtype=np.float32)
    img = img + (blobs * rng.choice([-1.0, 1.0]))[..., None]
    img = img + rng.normal(0, 4.0, size=img.shape)  # fine, low-amplitude texture
    return np.clip(img, 0, 255).astype(np.float32)


def _contrasting_colour(rng: np.random.Generator, background: np.ndarray) -> Tuple[int, int, int]:
    """A saturated colour far (in RGB) from the local background mean."""
    for _ in range(50):
        colour = rng.integers(0, 256, size=3)
        if np.abs(colour - background).sum() > 200 and colour.max() - colour.min() > 80:
            return tuple(int(c) for c in colour)
    return tuple(int(c) for c in np.where(background > 127, 20, 235))


def _near(rng: np.random.Generator, size: int, r: float, placed: List[Tuple[float, float, float]],
          gap: float) -> Optional[Tuple[float, float]]:
    """A centre for radius ``r`` next to a random earlier disc (edge gap 2 to ``2 + gap * size`` px); None when
    it falls outside the image."""
    px, py, pr = placed[int(rng.integers(len(placed)))]
    dist = r + pr + 2 + rng.uniform(0, gap * size)
    theta = rng.uniform(0, 2 * math.pi)
    cx, cy = px + dist * math.cos(theta), py + dist * math.sin(theta)
    if not (r + 1 <= cx <= size - r - 1 and r + 1 <= cy <= size - r - 1):
        return None
    return cx, cy


def _place(rng: np.random.Generator, size: int, placed: List[Tuple[float, float, float]],
           layout: Layout = DEMO_LAYOUT):
    """A (center, radius) fully inside the image and not overlapping ``placed`` discs; None when none fits.

    With ``layout.cluster_prob > 0`` each try is, with that chance, a spot next to an earlier disc. (The demo's
    layout draws no extra random numbers, so its images are unchanged.)
    """
    for _ in range(100):
        r = rng.uniform(*layout.rel_size) * size / 2
        if placed and layout.cluster_prob > 0 and rng.random() < layout.cluster_prob:
            center = _near(rng, size, r, placed, layout.cluster_gap)
            if center is None:
                continue
            cx, cy = center
        else:
            cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
        if all(math.hypot(cx - px, cy - py) > r + pr + 2 for px, py, pr in placed):
            return (float(cx), float(cy)), float(r)
    return None


def render_image(rng: np.random.Generator, size: int, layout: Layout = DEMO_LAYOUT
                 ) -> Tuple[Image.Image, List[dict]]:
    """One RGB image and its objects: ``dict(category_id, polygon (N, 2))``."""
    img = _background(rng, size)
    canvas = Image.fromarray(img.astype(np.uint8), 'RGB')
    draw = ImageDraw.Draw(canvas)
    objects, placed = [], []
    lo, hi = layout.num_objects
    for _ in range(int(rng.integers(lo, hi + 1))):
        spot = _place(rng, size, placed, layout)
        if spot is None:
            break
        center, radius = spot
        placed.append((*center, radius))
        label = int(rng.integers(len(SYNTHETIC_CLASSES)))
        pts = shape_polygon(SYNTHETIC_CLASSES[label], center, radius, rng.uniform(0, 2 * math.pi))
        local = img[int(center[1]), int(center[0])]
        draw.polygon([tuple(p) for p in pts], fill=_contrasting_colour(rng, local))
        objects.append(dict(category_id=label + 1, polygon=pts))
    return canvas, objects


# ----------------------------------------------------------------------------------------------------------------
# COCO files
# ----------------------------------------------------------------------------------------------------------------
def _annotation(ann_id: int, image_id: int, obj: dict) -> dict:
    pts = obj['polygon']
    return dict(id=ann_id, image_id=image_id, category_id=obj['category_id'], iscrowd=0,
                segmentation=[[round(float(v), 2) for v in pts.reshape(-1)]],
                area=round(polygon_area(pts), 2), bbox=[round(v, 2) for v in polygon_bbox(pts)])


def _generate_split(out_dir: str, split: str, num_images: int, img_size: int, seed: int, params: dict,
                    layout: Layout = DEMO_LAYOUT) -> dict:
    """Render one split's images and return its COCO dict (not yet written)."""
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    images, annotations = [], []
    for image_id in range(num_images):
        canvas, objects = render_image(rng, img_size, layout)
        file_name = f'{image_id:06d}.png'
        canvas.save(osp.join(out_dir, split, file_name))
        images.append(dict(id=image_id, file_name=file_name, width=img_size, height=img_size))
        for obj in objects:
            annotations.append(_annotation(len(annotations) + 1, image_id, obj))
    categories = [dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(SYNTHETIC_CLASSES)]
    return dict(info=dict(description='sparsevit synthetic shapes', **params, split=split), licenses=[],
                images=images, annotations=annotations, categories=categories)


def _write_json_atomic(path: str, data: dict) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f)
    os.replace(tmp, path)


def ann_file(data_root: str, split: str) -> str:
    """Path of a split's annotation file."""
    return osp.join(data_root, 'annotations', f'instances_{split}.json')


def _split_is_complete(out_dir: str, split: str, params: dict) -> Optional[dict]:
    """The split's summary when its annotation file matches ``params`` and all its images exist, else None."""
    path = ann_file(out_dir, split)
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    info = data.get('info', {})
    if any(info.get(k) != v for k, v in params.items()):
        return None
    if not all(osp.isfile(osp.join(out_dir, split, im['file_name'])) for im in data['images']):
        return None
    return _summary(out_dir, split, data)


def _summary(out_dir: str, split: str, data: dict) -> dict:
    return dict(ann_file=ann_file(out_dir, split), img_prefix=osp.join(out_dir, split) + os.sep,
                num_images=len(data['images']), num_annotations=len(data['annotations']))


def _check_args(num_train: int, num_val: int, img_size: int, num_search: int, layout: Layout) -> None:
    for name, value, low in (('num_train', num_train, 1), ('num_val', num_val, 1), ('num_search', num_search, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f'{name} must be {"a positive" if low else "a non-negative"} integer, got {value!r}')
    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < 32:
        raise ValueError(f'img_size must be an integer >= 32, got {img_size!r}')
    if not isinstance(layout, Layout):
        raise ValueError(f'layout must be a sparsevit.datasets.synthetic.Layout, got {type(layout).__name__}')
    layout.check()


def generate_synthetic_coco(out_dir: str, num_train: int = 400, num_val: int = 100, img_size: int = 224,
                            seed: int = 0, layout: Layout = DEMO_LAYOUT, num_search: int = 0) -> dict:
    """Write (or reuse) the synthetic COCO dataset under ``out_dir``.

    Args:
        out_dir: data root; receives ``annotations/instances_{train,val}.json`` and ``{train,val}/*.png``.
        num_train: number of training images.
        num_val: number of validation images.
        img_size: side of the square images in pixels (>= 32).
        seed: generator seed; the same arguments always give the same files.
        layout: object sizes, counts and clustering (:class:`Layout`); the default is the demo's.
        num_search: images of an extra held-out ``search`` split (0: none, as the demo).

    Returns:
        dict with ``root``, ``classes``, ``generated`` (False when a complete dataset was reused) and, per split,
        ``dict(ann_file, img_prefix, num_images, num_annotations)`` under ``'train'`` and ``'val'`` (and
        ``'search'`` when ``num_search > 0``).

    Raises:
        ValueError: on a non-positive count, an image size below 32 or a bad layout.
    """
    _check_args(num_train, num_val, img_size, num_search, layout)
    out_dir = osp.abspath(out_dir)
    counts = dict(train=num_train, val=num_val, search=num_search)
    result = dict(root=out_dir, classes=SYNTHETIC_CLASSES, generated=False)
    for split in SPLITS + ((SEARCH_SPLIT, ) if num_search else ()):
        params = dict(version=_FORMAT_VERSION, seed=seed, img_size=img_size, num_images=counts[split],
                      **layout.info())
        summary = _split_is_complete(out_dir, split, params)
        if summary is None:
            data = _generate_split(out_dir, split, counts[split], img_size, seed, params, layout)
            os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
            _write_json_atomic(ann_file(out_dir, split), data)
            summary = _summary(out_dir, split, data)
            result['generated'] = True
        result[split] = summary
    return result


def synthetic_cfg_options(data_root: str, splits: Sequence[str] = ('train', 'val', 'test'),
                          eval_split: str = 'val') -> Dict[str, str]:
    """``--cfg-options`` overrides pointing a demo config's datasets at ``data_root``.

    ``data.train`` uses the train split; ``data.val`` and ``data.test`` use ``eval_split`` (the val split, or
    ``'search'``: the held-out split of a dataset written with ``num_search > 0``).

    Returns:
        Flat dotted keys, e.g. ``{'data.train.ann_file': '<root>/annotations/instances_train.json', ...}``.
    """
    if eval_split not in _SPLIT_STREAM:
        raise ValueError(f'unknown split {eval_split!r}; allowed: {tuple(_SPLIT_STREAM)}')
    source = dict(train='train', val=eval_split, test=eval_split)
    options = {}
    for key in splits:
        if key not in source:
            raise ValueError(f'unknown dataset key {key!r}; allowed: {tuple(source)}')
        split = source[key]
        options[f'data.{key}.ann_file'] = ann_file(data_root, split)
        options[f'data.{key}.img_prefix'] = osp.join(data_root, split) + '/'
    return options
