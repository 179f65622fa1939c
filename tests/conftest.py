"""Shared pytest fixtures.

``synthetic_coco``: a tiny synthetic COCO instance-segmentation dataset (8 train, 4 val images of 224 px, the
demo's image size), generated once per test session; returns its data root (a ``str``). Point a demo config at it
with ``sparsevit.datasets.synthetic.synthetic_cfg_options(root)``.
"""
import os.path as osp
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # tests import tools/ and sparsevit/ from the checkout
    sys.path.insert(0, ROOT)

SYNTHETIC_TINY = dict(num_train=8, num_val=4, img_size=224, seed=0)


@pytest.fixture(scope='session')
def synthetic_coco(tmp_path_factory) -> str:
    """Data root of a tiny synthetic COCO dataset (``annotations/instances_{train,val}.json``, ``train/``, ``val/``)."""
    from sparsevit.datasets.synthetic import generate_synthetic_coco
    root = tmp_path_factory.mktemp('synthetic_coco')
    return generate_synthetic_coco(str(root), **SYNTHETIC_TINY)['root']
