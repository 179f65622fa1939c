# Demo, step 2: Sparsity-Aware Adaptation of the dense demo model (configs/demo/mask_rcnn_swin_demo.py): before
# every iteration a layer-wise pruning configuration is sampled from the search space (per stage, depth // 2
# ratios from {0, 0.1, ..., 0.8}, sorted, each shared by a W-MSA/SW-MSA pair). `random_sample = True` is the
# original's switch for it. Evaluation runs at the configured ratios: dense (from mask_rcnn_sparsevit_demo.py).
#
# python tools/train.py configs/demo/mask_rcnn_sparsevit_saa_demo.py \
#     --work-dir work_dirs/demo/mask_rcnn_sparsevit_saa_demo
_base_ = './mask_rcnn_sparsevit_demo.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

random_sample = True

optimizer = dict(lr=2e-4)
lr_config = dict(
    _delete_=True, policy='step', warmup='linear', warmup_iters=20, warmup_ratio=0.1, step=[2])
runner = dict(type='EpochBasedRunner', max_epochs=3)
evaluation = dict(interval=3, metric=['bbox', 'segm'])

# The dense demo checkpoint (step 1).
load_from = 'work_dirs/demo/mask_rcnn_swin_demo/latest.pth'
