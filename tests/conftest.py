"""Shared pytest fixtures and the `cuda` marker.

``synthetic_coco``: a tiny synthetic COCO instance-segmentation dataset (8 train, 4 val images of 224 px, the
demo's image size), generated once per test session; returns its data root (a ``str``). Point a demo config at it
with ``sparsevit.datasets.synthetic.synthetic_cfg_options(root)``.

``exp``: ``tools/experiments.py`` loaded as a module (:func:`tool_loader.load_tool`), once per test module.

``cost_clock``: a deterministic clock for the latency code: ``cost_clock(backbone, speed=1.0)`` makes the
``perf_counter`` of the latency measurement and of the latency table advance by the work ``backbone`` does
(:class:`CostClock`), ``speed`` times (1.5: a machine 1.5x slower; change ``clock.speed`` at any time).

Tests marked ``@pytest.mark.cuda`` need a CUDA GPU: they are skipped (with the reason) when torch sees none, and
``pytest -m cuda`` (``make gpu-check``) runs only them.
"""
import os.path as osp
import sys
import types

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # tests import tools/ and sparsevit/ from the checkout
    sys.path.insert(0, ROOT)

SYNTHETIC_TINY = dict(num_train=8, num_val=4, img_size=224, seed=0)
SYNTHETIC_SEG_TINY = dict(num_train=8, num_val=4, img_size=(64, 128), seed=0)


@pytest.fixture(scope='session')
def synthetic_coco(tmp_path_factory) -> str:
    """Data root of a tiny synthetic COCO dataset (``annotations/instances_{train,val}.json``, ``train/``, ``val/``)."""
    from sparsevit.datasets.synthetic import generate_synthetic_coco
    root = tmp_path_factory.mktemp('synthetic_coco')
    return generate_synthetic_coco(str(root), **SYNTHETIC_TINY)['root']


@pytest.fixture(scope='session')
def synthetic_seg(tmp_path_factory) -> str:
    """Data root of a tiny synthetic semantic-segmentation dataset (``img_dir/``, ``ann_dir/``; 64x128 images)."""
    from sparsevit.datasets.synthetic_seg import generate_synthetic_seg
    root = tmp_path_factory.mktemp('synthetic_seg')
    return generate_synthetic_seg(str(root), **SYNTHETIC_SEG_TINY)['root']


@pytest.fixture(scope='session')
def search_demo(synthetic_coco, tmp_path_factory):
    """(``--cfg-options`` arguments, checkpoint path) of the demo detector with random weights on the tiny synthetic
    data: what the search tool's tests search."""
    import torch
    from mmcv import Config
    from mmdet.models import build_detector

    from sparsevit.datasets.synthetic import synthetic_cfg_options
    from sparsevit.utils.config import apply_sparsevit_cfg
    options = synthetic_cfg_options(synthetic_coco)
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_sparsevit_demo.py'))
    cfg.merge_from_dict(options)
    apply_sparsevit_cfg(cfg)
    torch.manual_seed(0)
    model = build_detector(cfg.model)
    model.init_weights()
    ckpt = str(tmp_path_factory.mktemp('ckpt') / 'demo_random.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(CLASSES=('circle', 'square', 'triangle', 'star'))),
               ckpt)
    # random weights detect 100 boxes per image: keep 5 so that pasting masks does not dominate the test time
    options['model.test_cfg.rcnn.max_per_img'] = 5
    return ['--cfg-options', *[f'{k}={v}' for k, v in options.items()]], ckpt


@pytest.fixture(scope='module')
def exp():
    """``tools/experiments.py`` as a module, loaded afresh for each test module."""
    from tool_loader import load_tool
    return load_tool('experiments')


@pytest.fixture
def one_cpu_thread():
    """One CPU thread for the test (restored after): several OpenMP threads on a shared 2-core machine make every
    forward erratic. Use as ``pytestmark = pytest.mark.usefixtures('one_cpu_thread')``."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class CostClock:
    """A fake ``perf_counter`` that advances by the work a SparseViT backbone does: a cost per token and channel
    entering every block (hooked at the block's first norm, which sees only the kept windows), plus fixed costs for
    the patch embedding (``overhead`` seconds: a forward's fixed cost) and each output norm; all times ``speed``.
    One clock can serve several backbones (:meth:`attach`)."""

    def __init__(self, speed: float = 1.0, overhead: float = 3e-3):
        self.now, self.speed, self.overhead = 0.0, speed, overhead

    def attach(self, backbone) -> 'CostClock':
        for stage in backbone.stages:
            for block in stage.blocks:
                block.norm1.register_forward_hook(lambda mod, inp, out: self.advance(1e-6 * inp[0].numel()))
        backbone.patch_embed.register_forward_hook(lambda *_: self.advance(self.overhead))
        for i in backbone.out_indices:
            getattr(backbone, f'norm{i}').register_forward_hook(lambda *_: self.advance(1e-3))
        return self

    def advance(self, seconds: float) -> None:
        self.now += self.speed * seconds

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cost_clock(monkeypatch):
    """``cost_clock(backbone=None, speed=1.0) -> CostClock``, installed as the clock of ``sparsevit.utils.latency``
    (every full-forward measurement) and ``sparsevit.search.latency_table`` (the stage clock of a table build)."""
    import sparsevit.search.latency_table as table_mod
    import sparsevit.utils.latency as latency_mod

    def install(backbone=None, speed: float = 1.0) -> CostClock:
        clock = CostClock(speed)
        if backbone is not None:
            clock.attach(backbone)
        fake = types.SimpleNamespace(perf_counter=clock)
        monkeypatch.setattr(latency_mod, 'time', fake)
        monkeypatch.setattr(table_mod, 'time', fake)
        return clock
    return install


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
