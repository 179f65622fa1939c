# Sparsity-Aware Adaptation (SAA): starting from the dense Swin-T 3x checkpoint, train for a 1x schedule while
# SparsityAwareAdaptationHook samples a new layer-wise pruning configuration before every iteration (per stage,
# depth // 2 ratios from {0, 0.1, ..., 0.8}, sorted, each shared by a W-MSA/SW-MSA block pair), seeded from the
# run's seed and identical on every DDP rank. `random_sample = True` is the original's switch for it (it adds the
# hook to custom_hooks). Evaluation during and after SAA runs at the configured ratios, i.e. dense here.
#
# bash tools/dist_train.sh configs/sparsevit/mask_rcnn_sparsevit_saa.py 8
_base_ = './mask_rcnn_sparsevit.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

random_sample = True

optimizer = dict(
    _delete_=True,
    type='AdamW',
    lr=1e-5,
    betas=(0.9, 0.999),
    weight_decay=0.05,
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
lr_config = dict(
    policy='step',
    warmup='linear',
    warmup_iters=500,
    warmup_ratio=0.001,
    step=[8, 11])
runner = dict(type='EpochBasedRunner', max_epochs=12)
fp16 = dict(loss_scale=dict(init_scale=512))

# The dense pre-train of configs/swin/mask_rcnn_swin-t-p4-w7_fpn_fp16_ms-crop-3x_coco.py (or mmdet's released
# checkpoint, see that config).
load_from = 'work_dirs/mask_rcnn_swin-t-p4-w7_fpn_fp16_ms-crop-3x_coco/latest.pth'
