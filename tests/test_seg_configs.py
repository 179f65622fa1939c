"""The segmentation configs (configs/sparsevit_seg/): each loads through the tools' config reader, is an mmseg
segmentor (the task the tools choose), builds at tiny scale, and pins the recipe chosen where the original gives
none (README, "Semantic segmentation"): SAA for a third of the dense schedule from the dense checkpoint, AdamW at a
tenth of the dense learning rate, a finetune as long as the dense schedule."""
import os.path as osp

import pytest

pytest.importorskip('mmseg')

from sparsevit.tasks import TaskError, evaluation_kwargs, task_of  # noqa: E402
from sparsevit.utils.config import load_config  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG = osp.join(ROOT, 'configs', 'sparsevit_seg')
DENSE = dict(ade20k='upernet_swin_tiny_patch4_window7_512x512_160k_ade20k_pretrain_224x224_1K.py',
             cityscapes='upernet_swin_tiny_patch4_window7_512x1024_80k_cityscapes_pretrain_224x224_1K.py')
SPARSE = dict(ade20k='upernet_sparsevit_512x512_ade20k.py', cityscapes='upernet_sparsevit_512x1024_cityscapes.py')
SAA = dict(ade20k='upernet_sparsevit_saa_512x512_53k_ade20k.py',
           cityscapes='upernet_sparsevit_saa_512x1024_26k_cityscapes.py')
FINETUNE = dict(ade20k='upernet_sparsevit_finetune_512x512_160k_ade20k.py',
                cityscapes='upernet_sparsevit_finetune_512x1024_80k_cityscapes.py')
#: (classes, dense iterations, crop size, test scale) of each data set: mmseg's recipes
DATA = dict(ade20k=(150, 160000, (512, 512), (2048, 512)), cityscapes=(19, 80000, (512, 1024), (2048, 1024)))


def cfg_of(name: str):
    return load_config(osp.join(SEG, name))


@pytest.mark.parametrize('data', sorted(DATA))
def test_recipe(data):
    classes, iters, crop, scale = DATA[data]
    dense, sparse, saa, finetune = (cfg_of(d[data]) for d in (DENSE, SPARSE, SAA, FINETUNE))
    for cfg in (dense, sparse, saa, finetune):
        assert task_of(cfg).name == 'segmentation' and cfg.model.type == 'EncoderDecoder'
        assert cfg.model.decode_head.type == 'UPerHead' and cfg.model.decode_head.num_classes == classes
        assert cfg.model.auxiliary_head.num_classes == classes and cfg.crop_size == crop
        assert cfg.data.test.pipeline[1].img_scale == scale and cfg.model.test_cfg.mode == 'whole'
        assert cfg.optimizer.type == 'AdamW' and cfg.lr_config.policy == 'poly'
    assert dense.model.backbone.type == 'SwinTransformer' and dense.model.backbone.init_cfg.type == 'Pretrained'
    assert (dense.optimizer.lr, dense.runner.max_iters) == (6e-5, iters)
    for cfg in (sparse, saa, finetune):
        assert cfg.model.backbone.type == 'SparseViT' and cfg.model.backbone.init_cfg is None
        assert cfg.model.backbone.embed_dims == 96 and list(cfg.model.backbone.depths) == [2, 2, 6, 2]
    assert all(r == 0 for stage in sparse.model.backbone.pruning_ratios for r in stage)
    # SAA: a third of the dense schedule, a tenth of its lr, from the dense checkpoint, the SAA hook added
    assert saa.runner.max_iters == iters // 3 and saa.optimizer.lr == pytest.approx(dense.optimizer.lr / 10)
    assert [h['type'] for h in saa.custom_hooks] == ['SparsityAwareAdaptationHook']
    assert saa.load_from == f'work_dirs/{osp.splitext(DENSE[data])[0]}/latest.pth'
    # finetune: the dense schedule's length at the SAA lr, from the SAA checkpoint
    assert finetune.runner.max_iters == iters and finetune.optimizer.lr == saa.optimizer.lr
    assert finetune.load_from == f'work_dirs/{osp.splitext(SAA[data])[0]}/latest.pth'
    assert not finetune.get('custom_hooks')


def test_builds_at_tiny_scale():
    """The search base builds (narrowed) and runs a forward on CPU; SyncBN becomes BN without CUDA."""
    import torch
    cfg = cfg_of(SPARSE['ade20k'])
    cfg.model.backbone.update(embed_dims=16, num_heads=[1, 2, 4, 8], pruning_ratios=0.5)
    cfg.model.decode_head.update(in_channels=[16, 32, 64, 128], channels=16)
    cfg.model.auxiliary_head.update(in_channels=64, channels=8)
    task = task_of(cfg)
    model = task.build_model(cfg.model).eval()
    if not torch.cuda.is_available():
        assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    with torch.no_grad():
        logits = model.encode_decode(torch.randn(1, 3, 64, 96), [dict(img_shape=(64, 96, 3))])
    assert logits.shape == (1, 150, 64, 96)
    assert model.backbone.pruning_ratios[0] == (0.5, 0.5)


def test_task_of_and_metrics():
    det = load_config(osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_sparsevit_demo.py'))
    seg = cfg_of(SPARSE['cityscapes'])
    assert task_of(det).name == 'detection' and task_of(det).search_metric == 'bbox'
    assert task_of(seg).search_metric == 'mIoU'
    task_of(seg).check_metrics(['mIoU', 'mDice'])
    with pytest.raises(TaskError, match=r'--eval bbox: not a metric of a segmentor config .*allowed: mIoU, mDice'):
        task_of(seg).check_metrics(['bbox'])
    with pytest.raises(TaskError, match='--eval mIoU: not a metric of a detector config'):
        task_of(det).check_metrics(['mIoU'])


def test_evaluation_kwargs():
    """What the tools pass to a data set's ``evaluate``: the config's ``evaluation`` without the EvalHook's keys
    (both tasks' configs carry some), with ``--eval-options`` on top."""
    det = load_config(osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_sparsevit_demo.py'))
    seg = cfg_of(SPARSE['cityscapes'])
    assert set(seg.evaluation) >= {'interval', 'metric', 'pre_eval'} and evaluation_kwargs(seg) == {}
    assert 'metric' in det.evaluation and 'metric' not in evaluation_kwargs(det)
    seg.evaluation['efficient_test'] = True
    seg.evaluation['gt_seg_maps'] = None  # not a hook key: kept
    assert evaluation_kwargs(seg, dict(classwise=True)) == dict(gt_seg_maps=None, classwise=True)
    assert evaluation_kwargs(dict()) == {}


def test_synthetic_base_matches_the_generator():
    from sparsevit.datasets.synthetic_seg import SEG_CLASSES, SEG_PALETTE
    cfg = load_config(osp.join(ROOT, 'configs', 'demo', 'upernet_sparsevit_saa_demo_seg.py'))
    assert tuple(cfg.classes) == SEG_CLASSES and [tuple(c) for c in cfg.palette] == list(SEG_PALETTE)
    assert cfg.data.train.classes == cfg.data.test.classes and cfg.model.decode_head.num_classes == len(SEG_CLASSES)
    assert task_of(cfg).name == 'segmentation' and cfg.model.backbone.type == 'SparseViT'
    assert [h['type'] for h in cfg.custom_hooks] == ['SparsityAwareAdaptationHook']


def test_demo_schedules():
    """The demo's schedules (`make demo-seg`, shortened to fit 20 minutes on 2 CPU cores) in the recipe's
    proportions: SAA a third of the dense iterations at a tenth of its lr from the dense checkpoint; the search base
    (whose `_base_` the found configuration keeps) finetunes as long as the SAA from the SAA checkpoint."""
    demo = osp.join(ROOT, 'configs', 'demo')
    dense, sparse, saa = (load_config(osp.join(demo, f'upernet_{n}_demo_seg.py'))
                          for n in ('swin', 'sparsevit', 'sparsevit_saa'))
    iters = dense.runner.max_iters
    assert (dense.optimizer.lr, iters) == (1e-3, 300) and dense.checkpoint_config.interval == iters
    assert saa.runner.max_iters == iters // 3 and saa.optimizer.lr == pytest.approx(dense.optimizer.lr / 10)
    assert saa.load_from == 'work_dirs/demo_seg/upernet_swin_demo_seg/latest.pth' and saa.random_sample
    assert (sparse.runner.max_iters, sparse.optimizer.lr) == (saa.runner.max_iters, saa.optimizer.lr)
    assert sparse.load_from == 'work_dirs/demo_seg/upernet_sparsevit_saa_demo_seg/latest.pth'
    assert not sparse.get('random_sample') and not sparse.get('custom_hooks')
    for cfg in (sparse, saa):
        assert cfg.checkpoint_config.interval == cfg.runner.max_iters and cfg.lr_config.policy == 'poly'
