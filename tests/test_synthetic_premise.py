"""The premise of window pruning by activation norm, as an image statistic of the synthetic data: in the 'scene'
style objects carry more local contrast than the background (``local_contrast_ratio >= CONTRAST_TARGET``), in
both layouts; the 'flat' style (the demo's data) has the reverse; distractors are textured, not annotated and apart
from the objects."""
import json
import math

import numpy as np
import pytest

from sparsevit.datasets.synthetic import (CONTRAST_TARGET, DEMO_LAYOUT, SMALL_OBJECTS, distractor_polygon,
                                          generate_synthetic_coco, gradient_energy, local_contrast_ratio,
                                          polygon_mask, render_image, split_contrast_ratio)

LAYOUTS = dict(demo=(224, DEMO_LAYOUT), small_objects=(SMALL_OBJECTS['img_size'], SMALL_OBJECTS['layout']))
#: Vertex counts of the shape classes' polygons (circle, square, triangle, star); a distractor has 48.
SHAPE_VERTICES = {32, 4, 3, 10}


def images(style: str, layout_name: str, num: int, seed: int = 0):
    """``num`` rendered images ``(image (H, W, 3) uint8, object mask, distractor mask, distractors)``."""
    size, layout = LAYOUTS[layout_name]
    rng = np.random.default_rng(seed)
    for _ in range(num):
        canvas, objects, distractors = render_image(rng, size, layout, style)
        image = np.asarray(canvas)
        yield (image, polygon_mask([o['polygon'] for o in objects], image.shape[:2]),
               polygon_mask(distractors, image.shape[:2]), distractors)


def test_gradient_energy_and_ratio_on_known_images():
    flat = np.full((32, 48), 100.0)
    assert gradient_energy(flat).shape == (32, 48) and not gradient_energy(flat).any()
    ramp = np.tile(np.arange(48.0) * 3, (32, 1))  # 3 grey levels per px along x
    assert gradient_energy(ramp)[:, :-1] == pytest.approx(9.0) and not gradient_energy(ramp)[:, -1].any()
    rgb = np.stack([ramp] * 3, axis=-1)  # grey in RGB: the same luminance
    np.testing.assert_allclose(gradient_energy(rgb), gradient_energy(ramp))

    mask = np.zeros((64, 64), dtype=bool)
    mask[16:48, 8:40] = True
    checker = (np.indices((64, 64)).sum(0) % 2) * 40.0 + 100.0
    image = np.where(mask, checker, 100.0)  # textured object on a flat background
    assert local_contrast_ratio(image, mask) == math.inf
    assert local_contrast_ratio(image, mask, patch=4) > 100  # background cells by the outline: a little energy
    assert local_contrast_ratio(flat, np.pad(np.ones((8, 8), bool), ((12, 12), (20, 20)))) == 1.0
    # ignored pixels are on neither side: the textured object compared with a textured region ignored
    other = np.zeros_like(mask)
    other[50:60, 45:60] = True
    both = np.where(mask | other, checker, 100.0)
    assert local_contrast_ratio(both, mask) < local_contrast_ratio(both, mask, ignore=other) == math.inf
    assert local_contrast_ratio(both, mask, patch=4, ignore=other) > local_contrast_ratio(both, mask, patch=4)
    assert local_contrast_ratio(np.where(mask, 100.0, checker), mask) == 0.0  # the flat style's situation
    noise = np.random.default_rng(0).normal(128, 10, size=(64, 64))  # the same texture everywhere
    for patch in (1, 4):
        assert 0.8 < local_contrast_ratio(noise, mask, patch=patch) < 1.25
    # the outline is left out at pixels (margin), counted on the patch grid
    step = np.where(mask, 200.0, 100.0)
    assert local_contrast_ratio(step + noise - 128, mask) == pytest.approx(1.0, abs=0.25)
    assert local_contrast_ratio(step + noise - 128, mask, patch=4) > 1.5  # half of it in object cells


@pytest.mark.parametrize('kwargs, match', [
    (dict(object_mask=np.zeros((8, 8), bool)), 'must match'),
    (dict(ignore=np.zeros((8, 8), bool)), 'must match'), (dict(patch=0), 'patch'),
    (dict(patch=2.0), 'patch'), (dict(margin=-1), 'margin'), (dict(object_mask=np.zeros((16, 16), bool)), 'empty'),
    (dict(object_mask=np.ones((16, 16), bool)), 'empty')])
def test_ratio_bad_arguments(kwargs, match):
    args = dict(image=np.zeros((16, 16, 3)), object_mask=np.zeros((16, 16), bool))
    args['object_mask'][4:12, 4:12] = True
    with pytest.raises(ValueError, match=match):
        local_contrast_ratio(**dict(args, **kwargs))


@pytest.mark.parametrize('layout_name, num', [('demo', 20), ('small_objects', 8)])
def test_scene_style_meets_the_target(layout_name, num):
    """The premise by construction: the median image has at least CONTRAST_TARGET times the background's local
    contrast inside its objects, at pixels (outlines left out) and on the 4 px patch grid; almost every image
    does (an image whose distractors take much of the background may not); none is below 1."""
    for patch in (1, 4):
        ratios = np.array([local_contrast_ratio(im, mask, patch=patch) for im, mask, _, _ in
                           images('scene', layout_name, num)])
        assert np.median(ratios) >= CONTRAST_TARGET, (patch, ratios)
        assert (ratios >= CONTRAST_TARGET).mean() >= 0.9 and ratios.min() > 1, (patch, ratios)


@pytest.mark.parametrize('layout_name, num', [('demo', 10), ('small_objects', 4)])
def test_flat_style_lacks_the_premise(layout_name, num):
    """The demo's data (the measured defect): flat fills have no local contrast inside the outlines, while the
    background has pixel noise, so the ratio at pixels is 0. (On the patch grid their outlines alone give a
    median of about 4 for the demo's layout and 11 for the small objects: outlines are not texture.)"""
    ratios = [local_contrast_ratio(im, mask) for im, mask, _, _ in images('flat', layout_name, num)]
    assert max(ratios) < 0.01 < CONTRAST_TARGET


@pytest.mark.parametrize('layout_name, num', [('demo', 20), ('small_objects', 8)])
def test_distractors_textured_apart_and_few(layout_name, num):
    counts = []
    for image, objects, distractors, polygons in images('scene', layout_name, num):
        counts.append(len(polygons))
        assert not (objects & distractors).any()  # each distractor pixel is background
        assert all(len(p) == 48 for p in polygons)  # not one of the shape classes' polygons
        if polygons:  # textured like objects, unlike the smooth stuff around them
            assert local_contrast_ratio(image, distractors, ignore=objects) > CONTRAST_TARGET
    assert max(counts) <= 2 and sum(counts) >= num // 2  # 0-2 per image


def test_distractor_polygon_inside_its_disc():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pts = distractor_polygon(rng, (50.0, 60.0), 20.0)
        r = np.hypot(pts[:, 0] - 50, pts[:, 1] - 60)
        assert pts.shape == (48, 2) and r.max() == pytest.approx(20.0) and r.min() > 0
        assert r.max() / r.min() > 1.1  # irregular: never the circle class


def test_split_statistic_and_distractors_not_annotated(tmp_path):
    kw = dict(num_train=2, num_val=6, img_size=224, seed=0)
    scene = generate_synthetic_coco(str(tmp_path / 'scene'), style='scene', **kw)
    flat = generate_synthetic_coco(str(tmp_path / 'flat'), **kw)
    s, f = split_contrast_ratio(scene['root']), split_contrast_ratio(flat['root'], 'val', max_images=3)
    assert s['num_images'] == 6 and f['num_images'] == 3
    assert s['median'] >= CONTRAST_TARGET and s['min'] <= s['median'] <= s['max'] and f['max'] < 0.01
    assert split_contrast_ratio(scene['root'], 'train', patch=4)['median'] >= CONTRAST_TARGET
    with open(scene['val']['ann_file']) as fh:
        anns = json.load(fh)['annotations']
    assert {len(a['segmentation'][0]) // 2 for a in anns} <= SHAPE_VERTICES  # only shapes are annotated
    rng = np.random.default_rng([0, 1])  # the val split's stream: the same images, with their distractors
    rendered = [render_image(rng, 224, DEMO_LAYOUT, 'scene') for _ in range(6)]
    assert sum(len(d) for _, _, d in rendered) > 0  # there were distractors to leave out
    assert len(anns) == sum(len(o) for _, o, _ in rendered)
    for ann, obj in zip(anns, [o for _, objs, _ in rendered for o in objs]):
        assert ann['category_id'] == obj['category_id']
        assert np.allclose(np.reshape(ann['segmentation'][0], (-1, 2)), obj['polygon'], atol=0.01)
    assert math.isfinite(s['mean'])
