"""A small synthetic COCO-format instance-segmentation dataset for demos and tests (numpy + PIL only).

Each image holds a few non-overlapping shapes (:data:`SYNTHETIC_CLASSES`) drawn as polygons in colours chosen to
contrast with the background. The class is given by the shape alone (colours and textures are random per object,
independent of the class), so a detector has to learn geometry. The polygon of each shape is its exact
``segmentation``, so masks are inside boxes by construction.

Two appearance styles (``style``, :data:`STYLES`):
    * ``'flat'`` (the default, the demo's images byte for byte): shapes filled with one flat colour on a softly
      textured background (a low-frequency colour gradient, a few faint blurred blobs and mild pixel noise). Its
      objects have *less* local contrast than its background (:func:`local_contrast_ratio` is about 0 inside
      the outlines), the reverse of real scenes.
    * ``'scene'``: the image statistics of the street and indoor scenes SparseViT targets. Objects are textured
      (stripes, checkers or grain at a random orientation and scale, a shading ramp, and internal edges); the
      background is a few large smooth "stuff" regions (sky, road, wall: near-uniform colours with soft
      boundaries and very low noise) plus 0-2 textured distractor regions per image (irregular blobs and
      bands, not of the shape classes, not annotated, not overlapping objects). Its premise, stated as an image
      statistic and tested: mean local gradient energy inside objects is at least :data:`CONTRAST_TARGET` times
      that of the background in almost every image (:func:`local_contrast_ratio`, :func:`split_contrast_ratio`;
      median over 50 val images: about 11 for the demo's layout, 45 for :data:`SMALL_OBJECTS`; 0 for 'flat').

Design for SparseViT:
    * Objects are 20-45 % of the image side (e.g. 45-100 px at 224 px): several 7x7 windows of stage 0 (28 px)
      and about one window of stage 2 (112 px) in a Swin with patch 4 and window 7, which such a backbone can
      detect and localise well.
    * Window importance is the L2 norm of activations, which follows local contrast: pruning low-importance
      windows is meaningful only where objects have more local contrast than most of the background. The
      ``'scene'`` style holds that premise by construction (and its distractors keep it from being trivial);
      the ``'flat'`` style does not.

Variants: the same generator with another :class:`Layout` (object size range, objects per image, clustering).
:data:`SMALL_OBJECTS` is the regime SparseViT targets, used by ``make experiments``: 448 px images with 4-12
objects of 4-12 % of the side, about half placed next to an earlier one (clusters), most of the image background,
so lowering the input resolution loses the objects' detail while most windows hold nothing. The defaults
(:data:`DEMO_LAYOUT`, ``style='flat'``) give the demo's dataset, byte for byte. :func:`render_image` also draws
non-square images (``size=(height, width)``; layout sizes are then fractions of the short side): the semantic
segmentation data of :mod:`sparsevit.datasets.synthetic_seg` are drawn by the same code.

The layout written under ``out_dir``::

    annotations/instances_train.json  annotations/instances_val.json
    train/000000.png ...              val/000000.png ...

plus ``annotations/instances_search.json`` and ``search/`` when ``num_search > 0``: a split held out from both,
for model selection (the sparsity search scores candidates on it, so the val split stays unbiased).

Generation is deterministic for a given ``seed`` and idempotent: a complete dataset written with the same
parameters (style and layout included) is reused as is (annotation files are written last and atomically, so an
interrupted run is detected as incomplete and regenerated).
"""
import dataclasses
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..utils.files import make_dir, write_json

#: Shape classes, in category-id order (ids start at 1 in the annotation files).
SYNTHETIC_CLASSES = ('circle', 'square', 'triangle', 'star')

SPLITS = ('train', 'val')
#: The optional held-out split (``num_search > 0``); its random stream follows the two others'.
SEARCH_SPLIT = 'search'
_SPLIT_STREAM = dict(train=0, val=1, search=2)
_FORMAT_VERSION = 1
#: Info keys of an annotation file that are not generation parameters (every other key must match to reuse it).
_INFO_NOT_PARAMS = ('description', 'split')

#: Appearance styles: ``'flat'`` the demo's images (flat fills on a softly textured background), ``'scene'`` the
#: statistics of real scenes (textured objects, smooth background with a few textured distractors).
STYLES = ('flat', 'scene')
#: The premise, as an image statistic: in ``'scene'`` images the mean gradient energy inside objects is at least
#: this many times the background's (:func:`local_contrast_ratio`, at pixels and on the 4 px patch grid) in the
#: median image of a split and in at least 90 % of its images (the rest: distractors covering much background).
CONTRAST_TARGET = 2.0

# The 'scene' style's parameters, set from the premise statistic alone (never from a trained model's scores).
# Gradient energies below are of the luminance (0-255), per pixel.
_STUFF_REGIONS = (2, 5)  # smooth background regions per image (min, max)
_STUFF_SOFTNESS = 0.02  # width scale of their boundaries, as a fraction of the side
_STUFF_NOISE = 1.0  # per-channel pixel noise std of the background (energy ~2; the flat style's is 4: ~29)
_STUFF_SHADING = 0.12  # largest relative illumination change across the image
_TEXTURE_PERIOD = (4.0, 12.0)  # px, the patterns' spatial period: at least one 4x4 patch embedding cell
#: RMS luminance gradient of a textured region's pattern, grey levels per px (the stuff's is ~1.4, the flat
#: style's background ~5): its amplitude is set from it, so every pattern kind and period has this local contrast.
_TEXTURE_CONTRAST = (8.0, 20.0)
_TEXTURE_MAX_AMPLITUDE = 60.0  # at most, half peak-to-peak, grey levels (long periods)
_EDGE_CONTRAST = (20.0, 50.0)  # grey levels of the internal edges against the region's colour
_TEXTURE_SHADING = (0.1, 0.35)  # relative brightness change across an object
_INTERNAL_EDGES = (1, 3)  # dark or light lines inside each textured region (min, max)
_DISTRACTORS = (0, 2)  # textured non-object regions per image (min, max)
#: PNG writer options per style: the flat images' files as before; the textured ones' fast (zlib level 6 takes
#: 6x as long on them for 10 % smaller files).
_PNG_OPTIONS = dict(flat={}, scene=dict(compress_level=1))
#: ITU-R BT.601 luma weights (R, G, B).
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where and how large the shapes of an image are.

    Sizes and gaps are fractions of the image side: the short side of a non-square image.

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
# Rendering. Image sizes are ``hw = (height, width)``; lengths relative to "the side" use the short side (a square
# image's side: its images as before the sizes could differ, byte for byte).
# ----------------------------------------------------------------------------------------------------------------
def image_shape(size: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    """``(height, width)`` of an image given as its side (square) or as ``(height, width)``."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def _background(rng: np.random.Generator, hw: Tuple[int, int]) -> np.ndarray:
    """A smooth textured background ``(h, w, 3)`` float32 in [0, 255]."""
    h, w = hw
    side = min(hw)
    c0, c1 = rng.uniform(60, 200, size=(2, 3))
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / max(max(hw) - 1, 1)
    t = (math.cos(theta) * xx + math.sin(theta) * yy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    blobs = Image.new('L', (w, h), 0)
    draw = ImageDraw.Draw(blobs)
    for _ in range(rng.integers(2, 5)):
        cx, cy = rng.uniform(0, (w, h))
        r = rng.uniform(0.1, 0.25) * side
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=int(rng.integers(20, 50)))
    blobs = np.asarray(blobs.filter(ImageFilter.GaussianBlur(side / 12)), dtype=np.float32)
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


def _near(rng: np.random.Generator, hw: Tuple[int, int], r: float, placed: List[Tuple[float, float, float]],
          gap: float) -> Optional[Tuple[float, float]]:
    """A centre for radius ``r`` next to a random earlier disc (edge gap 2 to ``2 + gap * side`` px); None when
    it falls outside the image."""
    h, w = hw
    px, py, pr = placed[int(rng.integers(len(placed)))]
    dist = r + pr + 2 + rng.uniform(0, gap * min(hw))
    theta = rng.uniform(0, 2 * math.pi)
    cx, cy = px + dist * math.cos(theta), py + dist * math.sin(theta)
    if not (r + 1 <= cx <= w - r - 1 and r + 1 <= cy <= h - r - 1):
        return None
    return cx, cy


def _place(rng: np.random.Generator, hw: Tuple[int, int], placed: List[Tuple[float, float, float]],
           layout: Layout = DEMO_LAYOUT):
    """A (center, radius) fully inside the image and not overlapping ``placed`` discs; None when none fits.

    With ``layout.cluster_prob > 0`` each try is, with that chance, a spot next to an earlier disc. (The demo's
    layout draws no extra random numbers, so its images are unchanged.)
    """
    h, w = hw
    for _ in range(100):
        r = rng.uniform(*layout.rel_size) * min(hw) / 2
        if placed and layout.cluster_prob > 0 and rng.random() < layout.cluster_prob:
            center = _near(rng, hw, r, placed, layout.cluster_gap)
            if center is None:
                continue
            cx, cy = center
        else:
            cx, cy = rng.uniform(r + 1, (w - r - 1, h - r - 1))
        if all(math.hypot(cx - px, cy - py) > r + pr + 2 for px, py, pr in placed):
            return (float(cx), float(cy)), float(r)
    return None


# ----------------------------------------------------------------------------------------------------------------
# The 'scene' style (smooth stuff, textured objects and distractors) and render_image (both styles)
# ----------------------------------------------------------------------------------------------------------------
def _ramp(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A linear ramp ``(h, w)`` float32 from -1 to 1 along a random direction."""
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = math.cos(theta) * xx + math.sin(theta) * yy
    return 2 * (t - t.min()) / max(float(t.max() - t.min()), 1e-6) - 1


def _stuff(rng: np.random.Generator, hw: Tuple[int, int]) -> np.ndarray:
    """A smooth "stuff" background ``(h, w, 3)`` float32 in [0, 255]: a few large regions of near-uniform
    colour (a soft Voronoi partition, stretched horizontally like sky, walls and road), soft boundaries, a gentle
    illumination ramp and very low pixel noise."""
    h, w = hw
    k = int(rng.integers(_STUFF_REGIONS[0], _STUFF_REGIONS[1] + 1))
    seeds = rng.uniform(0, (w, h), size=(k, 2))  # (k, 2) x, y
    colours = rng.uniform(40, 220, size=(k, 3))
    stretch = rng.uniform(1.0, 3.0)  # > 1: regions wider than tall
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.hypot(xx[None] - seeds[:, 0, None, None], stretch * (yy[None] - seeds[:, 1, None, None]))  # (k, H, W)
    weight = np.exp((dist.min(axis=0) - dist) / (_STUFF_SOFTNESS * min(hw)))  # soft nearest seed
    img = np.einsum('khw,kc->hwc', weight / weight.sum(axis=0), colours)  # (H, W, 3)
    img = img * (1 + rng.uniform(0, _STUFF_SHADING) * _ramp(rng, h, w))[..., None]
    img = img + rng.normal(0, _STUFF_NOISE, size=img.shape)
    return np.clip(img, 0, 255).astype(np.float32)


def _pattern(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A texture pattern ``(h, w)`` float32 in about [-1, 1]: stripes, a checker (hard internal edges) or grain,
    at a random orientation and period (:data:`_TEXTURE_PERIOD`)."""
    period = rng.uniform(*_TEXTURE_PERIOD)
    theta = rng.uniform(0, math.pi)
    kind = int(rng.integers(3))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (math.cos(theta) * xx + math.sin(theta) * yy) * (2 * math.pi / period)
    if kind == 0:  # stripes
        return np.sin(u + rng.uniform(0, 2 * math.pi))
    if kind == 1:  # checker
        v = (math.cos(theta) * yy - math.sin(theta) * xx) * (2 * math.pi / period)
        return np.where(np.sin(u) * np.sin(v) >= 0, 1.0, -1.0).astype(np.float32)
    cells = rng.normal(0, 1, size=(int(2 * h / period) + 2, int(2 * w / period) + 2)).astype(np.float32)
    grain = Image.fromarray(cells, 'F').resize((w, h), Image.BICUBIC)  # two samples per period
    return np.clip(np.asarray(grain), -1.5, 1.5)


def _paint_textured(rng: np.random.Generator, canvas: Image.Image, pts: np.ndarray, colour: Sequence[int]) -> None:
    """Fill polygon ``pts`` of ``canvas`` (in place, inside the polygon only) with a texture around ``colour``: a
    pattern (:func:`_pattern`) of random tint and amplitude, a shading ramp and a few internal edges."""
    x0, y0 = (int(max(math.floor(v), 0)) for v in pts.min(axis=0))
    x1, y1 = (int(min(math.ceil(v) + 1, end)) for v, end in zip(pts.max(axis=0), canvas.size))
    h, w = y1 - y0, x1 - x0
    pattern = _pattern(rng, h, w)
    amplitude = rng.uniform(*_TEXTURE_CONTRAST) / math.sqrt(max(float(gradient_energy(pattern).mean()), 1e-6))
    tint = rng.uniform(0.5, 1.5, size=3)
    tint = tint / float(tint @ _LUMA)  # the pattern changes brightness (by ``amplitude``) and hue a little
    tex = np.asarray(colour, np.float32) + (min(amplitude, _TEXTURE_MAX_AMPLITUDE) * pattern)[..., None] * tint
    tex = tex * (1 + rng.uniform(*_TEXTURE_SHADING) * _ramp(rng, h, w))[..., None]
    patch = Image.fromarray(np.clip(tex, 0, 255).astype(np.uint8), 'RGB')
    draw = ImageDraw.Draw(patch)
    for _ in range(int(rng.integers(_INTERNAL_EDGES[0], _INTERNAL_EDGES[1] + 1))):
        ends = rng.uniform(0, 1, size=(2, 2)) * (w, h)
        shift = rng.choice([-1.0, 1.0]) * rng.uniform(*_EDGE_CONTRAST)
        draw.line([tuple(p) for p in ends], fill=tuple(int(np.clip(c + shift, 0, 255)) for c in colour),
                  width=int(rng.integers(1, 3)))
    mask = Image.new('L', canvas.size, 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in pts], fill=255)  # the same pixels as a flat fill
    canvas.paste(patch, (x0, y0), mask.crop((x0, y0, x1, y1)))


def distractor_polygon(rng: np.random.Generator, center: Tuple[float, float], radius: float) -> np.ndarray:
    """Vertices ``(48, 2)`` (x, y) of an irregular region inside the disc ``(center, radius)``, touching its edge:
    a blob (a circle wobbled by random 2nd and 3rd harmonics) or a band (the same, squeezed to 20-40 % of its
    length, at a random angle). Neither is one of the shape classes."""
    t = 2 * math.pi * np.arange(48) / 48
    amp, phase = rng.uniform(0.08, 0.2, size=2), rng.uniform(0, 2 * math.pi, size=2)
    wobble = 1 + amp[0] * np.cos(2 * t + phase[0]) + amp[1] * np.cos(3 * t + phase[1])
    squeeze = rng.uniform(0.2, 0.4) if rng.random() < 0.5 else 1.0
    angle = rng.uniform(0, math.pi)
    x, y = wobble * np.cos(t), squeeze * wobble * np.sin(t)
    pts = np.stack([x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle)], axis=1)
    return pts * (radius / np.hypot(pts[:, 0], pts[:, 1]).max()) + np.asarray(center, dtype=np.float64)


#: Where distractors go, whatever the objects' layout: anywhere in free space, 10-35 % of the side (textured
#: "stuff" such as foliage or a facade: as large as the demo's objects, larger than the small ones).
_DISTRACTOR_LAYOUT = Layout(rel_size=(0.10, 0.35))


def render_image(rng: np.random.Generator, size: Union[int, Tuple[int, int]], layout: Layout = DEMO_LAYOUT,
                 style: str = 'flat') -> Tuple[Image.Image, List[dict], List[np.ndarray]]:
    """One RGB image of ``style`` (:data:`STYLES`), its objects and its distractors.

    Args:
        rng: the random stream (the same stream and arguments give the same image).
        size: the side of a square image, or ``(height, width)``; the layout's sizes are fractions of the short
            side.
        layout: object sizes, counts and clustering.
        style: ``'flat'`` or ``'scene'``.

    Returns:
        ``(image, objects, distractors)``: objects are ``dict(category_id, polygon (N, 2))`` (annotated);
        distractors are the polygons ``(N, 2)`` of textured regions that are not objects (not annotated, not
        overlapping objects; none in the ``'flat'`` style).
    """
    scene = style == 'scene'
    hw = image_shape(size)
    img = _stuff(rng, hw) if scene else _background(rng, hw)
    canvas = Image.fromarray(img.astype(np.uint8), 'RGB')
    draw = ImageDraw.Draw(canvas)
    objects, placed, distractors = [], [], []
    lo, hi = layout.num_objects
    for _ in range(int(rng.integers(lo, hi + 1))):
        spot = _place(rng, hw, placed, layout)
        if spot is None:
            break
        center, radius = spot
        placed.append((*center, radius))
        label = int(rng.integers(len(SYNTHETIC_CLASSES)))
        pts = shape_polygon(SYNTHETIC_CLASSES[label], center, radius, rng.uniform(0, 2 * math.pi))
        colour = _contrasting_colour(rng, img[int(center[1]), int(center[0])])
        if scene:
            _paint_textured(rng, canvas, pts, colour)
        else:
            draw.polygon([tuple(p) for p in pts], fill=colour)
        objects.append(dict(category_id=label + 1, polygon=pts))
    if scene:  # after the objects, in free space: their discs are at least 2 px apart from every object's
        for _ in range(int(rng.integers(_DISTRACTORS[0], _DISTRACTORS[1] + 1))):
            spot = _place(rng, hw, placed, _DISTRACTOR_LAYOUT)
            if spot is None:
                break
            center, radius = spot
            placed.append((*center, radius))
            pts = distractor_polygon(rng, center, radius)
            _paint_textured(rng, canvas, pts, _contrasting_colour(rng, img[int(center[1]), int(center[0])]))
            distractors.append(pts)
    return canvas, objects, distractors


# ----------------------------------------------------------------------------------------------------------------
# The premise, as an image statistic
# ----------------------------------------------------------------------------------------------------------------
def polygon_mask(polygons: Sequence[np.ndarray], shape: Tuple[int, int]) -> np.ndarray:
    """Boolean mask ``(H, W)`` of the union of ``polygons`` (each ``(N, 2)`` x, y), rasterised as they are drawn."""
    mask = Image.new('L', (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(mask)
    for pts in polygons:
        draw.polygon([tuple(p) for p in np.asarray(pts, dtype=np.float64).reshape(-1, 2)], fill=1)
    return np.asarray(mask, dtype=bool)


def gradient_energy(image: np.ndarray) -> np.ndarray:
    """Local contrast per pixel ``(H, W)`` float64 of an RGB ``(H, W, 3)`` or grey ``(H, W)`` image (0-255): the
    squared forward differences of its luminance (BT.601), ``(Y[y, x+1] - Y[y, x])**2 + (Y[y+1, x] - Y[y, x])**2``
    (a difference that would leave the image counts 0)."""
    img = np.asarray(image, dtype=np.float64)
    lum = img @ _LUMA if img.ndim == 3 else img  # (H, W)
    energy = np.zeros_like(lum)
    energy[:, :-1] += np.diff(lum, axis=1) ** 2
    energy[:-1] += np.diff(lum, axis=0) ** 2
    return energy


def local_contrast_ratio(image: np.ndarray, object_mask: np.ndarray, patch: int = 1, margin: int = 2,
                         ignore: Optional[np.ndarray] = None) -> float:
    """Mean gradient energy (:func:`gradient_energy`) inside objects over its mean outside them.

    The premise of pruning windows by activation norm: > 1 where objects carry more local contrast than the
    background, as in real scenes; :data:`CONTRAST_TARGET` is the ``'scene'`` style's bound.

    Args:
        image: RGB ``(H, W, 3)`` or grey ``(H, W)`` image, 0-255.
        object_mask: boolean ``(H, W)``, True on object pixels (all objects of the image).
        patch: 1 compares pixels: those at least ``margin`` px inside an object against those at least ``margin``
            px outside every object, so the outlines (shared by both sides) are left out and the statistic
            measures the regions' own texture. ``p > 1`` compares the cells of the stride-``p`` patch grid
            (the backbone's patch embedding is 4x4), outlines included as the tokens see them: a cell is an object
            cell when at least half its pixels are object pixels, a background cell when none is (cells beyond
            the last whole one are dropped); ``margin`` is unused.
        margin: see ``patch``.
        ignore: optional boolean ``(H, W)``: pixels left out of both sides (at pixels with the same ``margin``;
            on the grid, every cell holding one), e.g. the distractors, to compare objects with the smooth
            stuff alone.

    Returns:
        The ratio (``inf`` when only the background is perfectly flat, 1 when both are).

    Raises:
        ValueError: on mismatched shapes, a bad ``patch`` or ``margin``, or when either side has no pixel/cell.
    """
    energy = gradient_energy(image)
    mask = np.asarray(object_mask, dtype=bool)
    skip = np.zeros_like(mask) if ignore is None else np.asarray(ignore, dtype=bool)
    if mask.shape != energy.shape or skip.shape != energy.shape:
        raise ValueError(f'object_mask {mask.shape} and ignore {skip.shape} must match the image {energy.shape}')
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1 or min(mask.shape) < patch:
        raise ValueError(f'patch must be an integer in [1, {min(mask.shape)}], got {patch!r}')
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
        raise ValueError(f'margin must be a non-negative integer, got {margin!r}')
    if patch == 1:
        inside, outside = _erode(mask & ~skip, margin), _erode(~(mask | skip), margin)
    else:
        gh, gw = mask.shape[0] // patch, mask.shape[1] // patch

        def cells(a: np.ndarray) -> np.ndarray:  # (H, W) -> (gh, gw): the mean of each cell
            return a[:gh * patch, :gw * patch].reshape(gh, patch, gw, patch).mean(axis=(1, 3))

        energy, share, kept = cells(energy), cells(mask.astype(np.float64)), cells(skip.astype(np.float64)) == 0
        inside, outside = (share >= 0.5) & kept, (share == 0) & kept
    if not inside.any() or not outside.any():
        raise ValueError('local_contrast_ratio needs object and background pixels (or cells); one side is empty')
    fg, bg = float(energy[inside].mean()), float(energy[outside].mean())
    return fg / bg if bg > 0 else (math.inf if fg > 0 else 1.0)


def _erode(mask: np.ndarray, margin: int) -> np.ndarray:
    """``mask`` eroded by a (2 margin + 1)-square (the image's edge does not erode it)."""
    if margin == 0:
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * 255, 'L')
    return np.asarray(img.filter(ImageFilter.MinFilter(2 * margin + 1))) > 0


def split_contrast_ratio(data_root: str, split: str = 'val', patch: int = 1, margin: int = 2,
                         max_images: Optional[int] = None) -> dict:
    """:func:`local_contrast_ratio` over the images of a written split (the first ``max_images``; all for None).

    Object masks are rasterised from the annotation polygons; images without objects are skipped.

    Returns:
        ``dict(mean, median, min, max, num_images)`` of the per-image ratios.
    """
    with open(ann_file(data_root, split)) as f:
        data = json.load(f)
    polygons: Dict[int, List[np.ndarray]] = {}
    for ann in data['annotations']:
        polygons.setdefault(ann['image_id'], []).append(np.asarray(ann['segmentation'][0]))
    ratios = []
    for im in data['images'][:max_images]:
        if im['id'] not in polygons:
            continue
        with Image.open(osp.join(data_root, split, im['file_name'])) as pil:
            image = np.asarray(pil.convert('RGB'))
        mask = polygon_mask(polygons[im['id']], image.shape[:2])
        ratios.append(local_contrast_ratio(image, mask, patch=patch, margin=margin))
    r = np.asarray(ratios)
    return dict(mean=float(r.mean()), median=float(np.median(r)), min=float(r.min()), max=float(r.max()),
                num_images=len(ratios))


# ----------------------------------------------------------------------------------------------------------------
# COCO files
# ----------------------------------------------------------------------------------------------------------------
def _annotation(ann_id: int, image_id: int, obj: dict) -> dict:
    pts = obj['polygon']
    return dict(id=ann_id, image_id=image_id, category_id=obj['category_id'], iscrowd=0,
                segmentation=[[round(float(v), 2) for v in pts.reshape(-1)]],
                area=round(polygon_area(pts), 2), bbox=[round(v, 2) for v in polygon_bbox(pts)])


def _generate_split(out_dir: str, split: str, num_images: int, img_size: int, seed: int, params: dict,
                    layout: Layout = DEMO_LAYOUT, style: str = 'flat') -> dict:
    """Render one split's images and return its COCO dict (not yet written)."""
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    images, annotations = [], []
    for image_id in range(num_images):
        canvas, objects, _ = render_image(rng, img_size, layout, style)  # distractors are not annotated
        file_name = f'{image_id:06d}.png'
        canvas.save(osp.join(out_dir, split, file_name), **_PNG_OPTIONS[style])
        images.append(dict(id=image_id, file_name=file_name, width=img_size, height=img_size))
        for obj in objects:
            annotations.append(_annotation(len(annotations) + 1, image_id, obj))
    categories = [dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(SYNTHETIC_CLASSES)]
    return dict(info=dict(description='sparsevit synthetic shapes', **params, split=split), licenses=[],
                images=images, annotations=annotations, categories=categories)




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
    if {k: v for k, v in info.items() if k not in _INFO_NOT_PARAMS} != params:  # extra keys too: other data
        return None
    if not all(osp.isfile(osp.join(out_dir, split, im['file_name'])) for im in data['images']):
        return None
    return _summary(out_dir, split, data)


def _summary(out_dir: str, split: str, data: dict) -> dict:
    return dict(ann_file=ann_file(out_dir, split), img_prefix=osp.join(out_dir, split) + os.sep,
                num_images=len(data['images']), num_annotations=len(data['annotations']))


def _check_args(num_train: int, num_val: int, img_size: int, num_search: int, layout: Layout, style: str) -> None:
    _check_counts(num_train, num_val, num_search)
    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < 32:
        raise ValueError(f'img_size must be an integer >= 32, got {img_size!r}')
    _check_layout_and_style(layout, style)


def _check_counts(num_train: int, num_val: int, num_search: int) -> None:
    """Raise ValueError naming the first bad image count (train and val >= 1, search >= 0)."""
    for name, value, low in (('num_train', num_train, 1), ('num_val', num_val, 1), ('num_search', num_search, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f'{name} must be {"a positive" if low else "a non-negative"} integer, got {value!r}')


def _check_layout_and_style(layout: Layout, style: str) -> None:
    """Raise ValueError on a bad layout (naming the field) or an unknown style."""
    if not isinstance(layout, Layout):
        raise ValueError(f'layout must be a sparsevit.datasets.synthetic.Layout, got {type(layout).__name__}')
    layout.check()
    if style not in STYLES:
        raise ValueError(f'style must be one of {STYLES}, got {style!r}')


def generate_synthetic_coco(out_dir: str, num_train: int = 400, num_val: int = 100, img_size: int = 224,
                            seed: int = 0, layout: Layout = DEMO_LAYOUT, num_search: int = 0,
                            style: str = 'flat') -> dict:
    """Write (or reuse) the synthetic COCO dataset under ``out_dir``.

    Args:
        out_dir: data root; receives ``annotations/instances_{train,val}.json`` and ``{train,val}/*.png``.
        num_train: number of training images.
        num_val: number of validation images.
        img_size: side of the square images in pixels (>= 32).
        seed: generator seed; the same arguments always give the same files.
        layout: object sizes, counts and clustering (:class:`Layout`); the default is the demo's.
        num_search: images of an extra held-out ``search`` split (0: none, as the demo).
        style: appearance (:data:`STYLES`): ``'flat'`` (the default: the demo's images, byte for byte) or
            ``'scene'`` (textured objects on smooth stuff with textured distractors; see the module docstring).
            Recorded in the annotation files' ``info`` unless ``'flat'``, so each style has its own dataset.

    Returns:
        dict with ``root``, ``classes``, ``generated`` (False when a complete dataset was reused) and, per split,
        ``dict(ann_file, img_prefix, num_images, num_annotations)`` under ``'train'`` and ``'val'`` (and
        ``'search'`` when ``num_search > 0``).

    Raises:
        ValueError: on a non-positive count, an image size below 32, a bad layout or an unknown style.
    """
    _check_args(num_train, num_val, img_size, num_search, layout, style)
    make_dir(out_dir, 'the data root')
    out_dir = osp.abspath(out_dir)
    counts = dict(train=num_train, val=num_val, search=num_search)
    result = dict(root=out_dir, classes=SYNTHETIC_CLASSES, generated=False)
    for split in SPLITS + ((SEARCH_SPLIT, ) if num_search else ()):
        params = dict(version=_FORMAT_VERSION, seed=seed, img_size=img_size, num_images=counts[split],
                      **layout.info(), **({} if style == 'flat' else dict(style=style)))
        summary = _split_is_complete(out_dir, split, params)
        if summary is None:
            data = _generate_split(out_dir, split, counts[split], img_size, seed, params, layout, style)
            os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
            write_json(ann_file(out_dir, split), data, indent=None)
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
    options = {}
    for key, split in _dataset_splits(splits, eval_split).items():
        options[f'data.{key}.ann_file'] = ann_file(data_root, split)
        options[f'data.{key}.img_prefix'] = osp.join(data_root, split) + '/'
    return options


def _dataset_splits(keys: Sequence[str], eval_split: str) -> Dict[str, str]:
    """The split each config dataset key reads: ``train`` the train split, ``val`` and ``test`` ``eval_split``.

    Raises:
        ValueError: on an unknown key or split.
    """
    if eval_split not in _SPLIT_STREAM:
        raise ValueError(f'unknown split {eval_split!r}; allowed: {tuple(_SPLIT_STREAM)}')
    source = dict(train='train', val=eval_split, test=eval_split)
    for key in keys:
        if key not in source:
            raise ValueError(f'unknown dataset key {key!r}; allowed: {tuple(source)}')
    return {key: source[key] for key in keys}
