# Sparsity-Aware Adaptation (SAA): starting from the dense Swin-T 3x checkpoint, train for the Swin 1x schedule
# (12 epochs, steps 8/11, linear warm-up of 1000 iterations from 0.001 x lr, fp16 with init_scale 512) while
# SparsityAwareAdaptationHook samples a new layer-wise pruning configuration before every iteration (per stage,
# depth // 2 ratios from {0, 0.1, ..., 0.8}, sorted, each shared by a W-MSA/SW-MSA block pair), seeded from the
# run's seed and identical on every DDP rank. `random_sample = True` is the original's switch for it (it adds the
# hook to custom_hooks). The optimizer (AdamW, lr 1e-5), the 672x672 test pipeline and the checkpoint policy come
# from mask_rcnn_sparsevit.py. Evaluation during and after SAA runs at the configured ratios, i.e. dense here.
#
# bash tools/dist_train.sh configs/sparsevit/mask_rcnn_sparsevit_saa.py 8
_base_ = './mask_rcnn_sparsevit.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

random_sample = True

lr_config = dict(
    _delete_=True,
    policy='step',
    warmup='linear',
    warmup_iters=1000,
    warmup_ratio=0.001,
    step=[8, 11])
runner = dict(type='EpochBasedRunner', max_epochs=12)
fp16 = dict(loss_scale=dict(init_scale=512))

# The dense pre-train of configs/swin/mask_rcnn_swin-t-p4-w7_fpn_fp16_ms-crop-3x_coco.py (or mmdet's released
# checkpoint, see that config).
load_from = 'work_dirs/mask_rcnn_swin-t-p4-w7_fpn_fp16_ms-crop-3x_coco/latest.pth'
