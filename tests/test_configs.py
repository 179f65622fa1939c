"""Every config in configs/ loads and builds its detector (or segmentor); the original's ratio keys work and fail
early."""
import glob
import os
import os.path as osp

import pytest
from mmcv import Config
from mmcv.utils import build_from_cfg

from sparsevit.schedule import DEFAULT_CHOICES, normalize_pruning_ratios
from sparsevit.utils.config import SAA_HOOK, apply_sparsevit_cfg

from helpers import run_python

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p.split(os.sep))
SPARSE = 'configs/sparsevit/mask_rcnn_sparsevit.py'
SEARCHED = {
    'configs/sparsevit/sparsevit_cfg1_42ms.py': [[.3, .3], [0, 0], [.1, .1, .2, .2, .2, .2], [0, 0]],
    'configs/sparsevit/sparsevit_cfg2_35ms.py': [[.6, .6], [0, 0], [.2, .2, .4, .4, .5, .5], [0, 0]],
    'configs/sparsevit/sparsevit_cfg3_33ms.py': [[.7, .7], [0, 0], [.2, .2, .4, .4, .5, .5], [0, 0]],
}


def load(path: str, options: dict = None) -> Config:
    cfg = Config.fromfile(osp.join(ROOT, path))
    if options:
        cfg.merge_from_dict(options)
    return apply_sparsevit_cfg(cfg)


def build(cfg: Config):
    from sparsevit.tasks import task_of
    return task_of(cfg).build_model(cfg.model, train_cfg=cfg.get('train_cfg'), test_cfg=cfg.get('test_cfg'))


def as_tuples(ratios) -> tuple:
    return tuple(tuple(float(r) for r in stage) for stage in ratios)


def test_the_readme_configs_exist():
    for path in ['configs/swin/mask_rcnn_swin-t-p4-w7_fpn_fp16_ms-crop-3x_coco.py',
                 'configs/sparsevit/mask_rcnn_sparsevit_saa.py', SPARSE, *SEARCHED]:
        assert path in CONFIGS


@pytest.mark.parametrize('path', CONFIGS)
def test_config_loads_and_builds(path):
    cfg = load(path)
    assert cfg.custom_imports == dict(imports=['sparsevit'], allow_failed_imports=False)
    model = build(cfg)
    assert type(model).__name__ == ('EncoderDecoder' if cfg.model.type == 'EncoderDecoder' else 'MaskRCNN')
    if cfg.model.backbone.type in ('SparseViT', 'SparseSwinTransformer'):
        assert as_tuples(model.backbone.pruning_ratios) == as_tuples(cfg.model.backbone.pruning_ratios)


@pytest.mark.parametrize('path', sorted(SEARCHED))
def test_searched_configs_have_the_originals_ratios(path):
    cfg = load(path)
    expected = as_tuples(SEARCHED[path])
    assert as_tuples(Config.fromfile(osp.join(ROOT, path)).pruning_ratios) == expected
    assert cfg.model.backbone.type in ('SparseViT', 'SparseSwinTransformer')
    assert_originals_sparsevit_recipe(cfg)
    assert dict(cfg.lr_config) == dict(policy='step', warmup='linear', warmup_iters=1000, warmup_ratio=0.001,
                                       step=[27, 33])
    assert cfg.runner.max_epochs == 36
    assert cfg.load_from.endswith('mask_rcnn_sparsevit_saa/latest.pth')
    backbone = build(cfg).backbone
    assert as_tuples(backbone.pruning_ratios) == expected


def test_dense_pretrain_is_mmdets_swin_t_3x():
    cfg = load('configs/swin/mask_rcnn_swin-t-p4-w7_fpn_fp16_ms-crop-3x_coco.py')
    backbone = cfg.model.backbone
    assert backbone.type == 'SwinTransformer' and backbone.embed_dims == 96
    assert list(backbone.depths) == [2, 2, 6, 2] and list(backbone.num_heads) == [3, 6, 12, 24]
    assert cfg.optimizer.type == 'AdamW' and cfg.optimizer.lr == 1e-4 and cfg.runner.max_epochs == 36
    assert cfg.fp16 == dict(loss_scale=dict(init_scale=512))
    # ImageNet-pretrained backbone (the original's copy comments this out: a deliberate difference)
    assert backbone.init_cfg.type == 'Pretrained' and backbone.init_cfg.checkpoint.endswith(
        'swin_tiny_patch4_window7_224.pth')
    assert backbone.convert_weights is True


def assert_originals_sparsevit_recipe(cfg: Config) -> None:
    """The optimizer, checkpoint policy, backbone flags and 672x672 test pipeline of the original's
    mask_rcnn_sparsevit.py, which SAA and every finetune inherit."""
    opt = cfg.optimizer
    assert (opt.type, opt.lr, tuple(opt.betas), opt.weight_decay) == ('AdamW', 1e-5, (0.9, 0.999), 0.05)
    assert {k: v['decay_mult'] for k, v in opt.paramwise_cfg.custom_keys.items()} == {
        'absolute_pos_embed': 0., 'relative_position_bias_table': 0., 'norm': 0.}
    assert 'momentum' not in opt  # _delete_ dropped the SGD base
    assert dict(cfg.checkpoint_config) == dict(interval=1, max_keep_ckpts=1)
    assert cfg.model.backbone.type in ('SparseViT', 'SparseSwinTransformer')
    assert cfg.model.backbone.convert_weights is True
    for split in ('val', 'test'):
        pipeline = cfg.data[split].pipeline
        assert [t['type'] for t in pipeline] == ['LoadImageFromFile', 'MultiScaleFlipAug']
        aug = pipeline[1]
        assert tuple(aug.img_scale) == (672, 672) and aug.flip is False
        assert [dict(t) for t in aug.transforms] == [
            dict(type='Resize', keep_ratio=False),
            dict(type='RandomFlip'),
            dict(type='Normalize', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True),
            dict(type='Pad', size_divisor=32),
            dict(type='ImageToTensor', keys=['img']),
            dict(type='Collect', keys=['img']),
        ]


def test_sparsevit_base_is_the_originals_recipe():
    cfg = load(SPARSE)
    assert_originals_sparsevit_recipe(cfg)
    assert cfg.model.backbone.init_cfg is None  # the weights come from load_from / the tools' checkpoint
    assert as_tuples(cfg.model.backbone.pruning_ratios) == as_tuples(normalize_pruning_ratios(None, (2, 2, 6, 2)))


def test_672_test_pipeline_stretches_to_exactly_672(tmp_path):
    """keep_ratio=False: a 480x640 image becomes exactly 672x672 (no letterbox, no padding needed)."""
    import mmcv
    import numpy as np
    from mmdet.datasets.pipelines import Compose
    path = str(tmp_path / 'img.png')
    mmcv.imwrite(np.random.RandomState(0).randint(0, 255, (480, 640, 3), dtype=np.uint8), path)
    data = Compose(load(SPARSE).data.test.pipeline)(dict(img_info=dict(filename=path), img_prefix=None))
    meta = data['img_metas'][0].data
    assert tuple(data['img'][0].shape) == (3, 672, 672)
    assert meta['img_shape'][:2] == (672, 672) and meta['pad_shape'][:2] == (672, 672)
    np.testing.assert_allclose(meta['scale_factor'], [672 / 640, 672 / 480, 672 / 640, 672 / 480], rtol=1e-6)


def test_saa_config():
    cfg = load('configs/sparsevit/mask_rcnn_sparsevit_saa.py')
    assert cfg.random_sample is True
    assert_originals_sparsevit_recipe(cfg)
    assert as_tuples(cfg.model.backbone.pruning_ratios) == as_tuples(normalize_pruning_ratios(None, (2, 2, 6, 2)))
    # the Swin 1x schedule
    assert dict(cfg.lr_config) == dict(policy='step', warmup='linear', warmup_iters=1000, warmup_ratio=0.001,
                                       step=[8, 11])
    assert dict(cfg.runner) == dict(type='EpochBasedRunner', max_epochs=12)
    assert cfg.fp16 == dict(loss_scale=dict(init_scale=512))
    assert cfg.load_from.endswith('.pth')
    hooks = [h for h in cfg.custom_hooks if h['type'] == SAA_HOOK]
    assert len(hooks) == 1
    from mmcv.runner import HOOKS
    hook = build_from_cfg(hooks[0], HOOKS)
    assert hook.choices == DEFAULT_CHOICES


def test_the_config_the_search_writes_inherits_the_recipe(tmp_path):
    """tools/search.py writes sparsevit_max*_min*.py with the searched config as `_base_`: with
    mask_rcnn_sparsevit.py it finetunes with the original's optimizer and the 3x schedule."""
    ratios = SEARCHED['configs/sparsevit/sparsevit_cfg1_42ms.py']
    path = tmp_path / 'sparsevit_max42_min37.py'
    path.write_text(f"_base_ = {osp.join(ROOT, SPARSE)!r}\n"
                    "custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)\n"
                    f"pruning_ratios = {ratios!r}\nload_from = 'saa.pth'\n")
    cfg = apply_sparsevit_cfg(Config.fromfile(str(path)))
    assert_originals_sparsevit_recipe(cfg)
    assert as_tuples(cfg.model.backbone.pruning_ratios) == as_tuples(ratios)
    assert cfg.runner.max_epochs == 36 and cfg.lr_config.step == [27, 33] and cfg.lr_config.warmup_iters == 1000
    assert cfg.load_from == 'saa.pth'


@pytest.mark.parametrize('key', ['pruning_ratios', 'model.backbone.pruning_ratios'])
def test_both_ratio_keys_work(key):
    ratios = [[0.6, 0.6], [0, 0], [0.2, 0.2, 0.4, 0.4, 0.5, 0.5], [0, 0]]
    cfg = load(SPARSE, {key: ratios})
    assert as_tuples(cfg.model.backbone.pruning_ratios) == as_tuples(ratios)
    assert as_tuples(build(cfg).backbone.pruning_ratios) == as_tuples(ratios)


@pytest.mark.parametrize('ratios,message', [
    ([[0.3, 0.3], [0, 0], [0.1] * 6], 'has 3 stages'),
    ([[0.3, 0.3], [0, 0], [0.1] * 6, [0, 0], [0]], 'has 5 stages'),
    ([[1.0, 1.0], [0, 0], [0.1] * 6, [0, 0]], 'stage 0 block 0 is 1.0'),
    ([[0.3, 0.3], [-0.1, 0], [0.1] * 6, [0, 0]], 'stage 1 block 0 is -0.1'),
    ([[0.3, 0.3], [0, 0], [0.2, 0.1, 0.2, 0.2, 0.2, 0.2], [0, 0]], 'stage 2 block 1'),
    ([[0.3, 0.3], [0, 0], [0.1] * 5, [0, 0]], 'stage 2 has 5 ratios'),
])
def test_bad_ratios_fail_before_building(ratios, message):
    with pytest.raises(ValueError, match=message):
        load(SPARSE, {'pruning_ratios': ratios})


def test_ratios_on_a_dense_backbone_fail():
    with pytest.raises(ValueError, match='SwinTransformer'):
        load('configs/swin/mask_rcnn_swin-t-p4-w7_fpn_fp16_ms-crop-3x_coco.py', {'pruning_ratios': 0.5})


def test_train_tool_rejects_bad_ratios_before_training(tmp_path):
    option, message = 'pruning_ratios=[[0.3,0.3],[0,0],[0.1,0.1,0.2,0.2,0.2,1.5],[0,0]]', 'stage 2 block 5 is 1.5'
    work_dir = tmp_path / 'work'
    proc = run_python(osp.join(ROOT, 'tools', 'train.py'), osp.join(ROOT, SPARSE), '--work-dir', str(work_dir),
                      '--cfg-options', option, timeout=300)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if 'error:' in line]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not work_dir.exists()


# ---------------------------------------------------------------------------------------------------- both keys
def test_top_level_and_backbone_ratios_that_differ_fail_naming_both():
    """The demo sets top-level all-zero ratios; a different model.backbone.pruning_ratios must not be discarded."""
    with pytest.raises(ValueError) as err:
        load('configs/demo/mask_rcnn_sparsevit_demo.py', {'model.backbone.pruning_ratios': 1.5})
    message = str(err.value)
    assert 'pruning_ratios=[[0.0, 0.0], [0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0]] (top level)' in message
    assert 'model.backbone.pruning_ratios=1.5' in message and 'set only one' in message
    assert '\n' not in message
    with pytest.raises(ValueError, match=r'pruning_ratios=0\.5 \(top level\) and model.backbone.pruning_ratios=0\.3'):
        load(SPARSE, {'pruning_ratios': 0.5, 'model.backbone.pruning_ratios': 0.3})


@pytest.mark.parametrize('top,backbone', [
    (0.3, [[0.3, 0.3], [0.3, 0.3], [0.3] * 6, [0.3, 0.3]]),  # the same ratios in two forms
    ([[0, 0], [0, 0], [0] * 6, [0, 0]], 0),
    ([[0.3, 0.3], [0, 0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0, 0]], None),  # None: not set (the base's default)
    (None, [[0.3, 0.3], [0, 0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0, 0]]),
])
def test_ratio_keys_that_agree_or_are_unset_work(top, backbone):
    cfg = load(SPARSE, {'pruning_ratios': top, 'model.backbone.pruning_ratios': backbone})
    expected = normalize_pruning_ratios(top if top is not None else backbone, (2, 2, 6, 2))
    assert as_tuples(cfg.model.backbone.pruning_ratios) == as_tuples(expected)


def test_dumped_config_loads_again(tmp_path):
    """tools/train.py dumps the config after apply_sparsevit_cfg: both keys are then set, to the same ratios."""
    name = 'configs/sparsevit/sparsevit_cfg2_35ms.py'
    path = str(tmp_path / 'dumped.py')
    load(name).dump(path)
    again = apply_sparsevit_cfg(Config.fromfile(path))
    assert as_tuples(again.model.backbone.pruning_ratios) == as_tuples(SEARCHED[name])


def test_train_tool_rejects_conflicting_ratio_keys(tmp_path):
    """The issue's example: a whole run used to train with the invalid 1.5 silently discarded."""
    work_dir = tmp_path / 'work'
    demo = 'configs/demo/mask_rcnn_sparsevit_demo.py'
    proc = run_python(osp.join(ROOT, 'tools', 'train.py'), demo, '--work-dir', str(work_dir),
                      '--cfg-options', 'model.backbone.pruning_ratios=1.5', timeout=300)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if 'error:' in line]
    assert len(errors) == 1 and 'model.backbone.pruning_ratios=1.5' in errors[0] and '(top level)' in errors[0]
    assert 'Traceback' not in proc.stderr
    assert not work_dir.exists()
