"""Shared pytest fixtures and the `cuda` marker.

``synthetic_coco``: a tiny synthetic COCO instance-segmentation dataset (8 train, 4 val images of 224 px, the
demo's image size), generated once per test session; returns its data root (a ``str``). Point a demo config at it
with ``sparsevit.datasets.synthetic.synthetic_cfg_options(root)``.

Tests marked ``@pytest.mark.cuda`` need a CUDA GPU: they are skipped (with the reason) when torch sees none, and
``pytest -m cuda`` (``make gpu-check``) runs only them.
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


def pytest_configure(config):
    config.addinivalue_line('markers', 'cuda: needs a CUDA GPU; skipped without one (`make gpu-check` runs them: '
                            'pytest -m cuda)')


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``cuda`` when torch sees no CUDA GPU (one reason line each, no failure)."""
    marked = [item for item in items if item.get_closest_marker('cuda') is not None]
    if not marked:
        return
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs a CUDA GPU (torch.cuda.is_available() is False)')
    for item in marked:
        item.add_marker(skip)
