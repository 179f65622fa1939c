# Experiments (`make experiments`, tools/experiments.py), step 1: dense training of the demo's narrow Swin Mask R-CNN
# (configs/demo/mask_rcnn_swin_demo.py: embed 32, depths 2/2/6/2, window 7, patch 4) on the small-objects variant of
# the synthetic dataset (sparsevit.datasets.synthetic.SMALL_OBJECTS: 448x448 images, 4-12 shapes of 4-12 % of the
# side, some clustered). The demo's trained weights are for the 224 px large-object data, so the experiments train
# their own. Differences from the demo config: the 448 px input, anchors one octave smaller (16-256 px instead of
# 32-512 px: the objects are 14-54 px), at most 50 detections an image (instead of 100), and the schedule.
# The reduced-width baselines are this config from scratch with narrower stages (sparsevit.experiments.width:
# `model.backbone.embed_dims=24 model.neck.in_channels=[24,48,96,192]` for x0.75, the heads unchanged) for
# EXPERIMENTS_DENSE_EPOCHS + EXPERIMENTS_ADAPT_EPOCHS epochs.
#
# python tools/train.py configs/experiments/mask_rcnn_swin_small_objects.py \
#     --work-dir work_dirs/experiments/mask_rcnn_swin_small_objects
_base_ = '../demo/mask_rcnn_swin_demo.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

data_root = 'data/sparsevit_experiments/'  # tools/experiments.py writes it (and points the configs at its --data)
img_scale = (448, 448)  # == SMALL_OBJECTS['img_size']; the resolution baselines change it in the pipelines
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', img_scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', flip_ratio=0.5),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='Pad', size_divisor=32),
    dict(type='DefaultFormatBundle'),
    dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels', 'gt_masks']),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='MultiScaleFlipAug',
        img_scale=img_scale,
        flip=False,
        transforms=[
            dict(type='Resize', keep_ratio=True),
            dict(type='RandomFlip'),
            dict(type='Normalize', **img_norm_cfg),
            dict(type='Pad', size_divisor=32),
            dict(type='ImageToTensor', keys=['img']),
            dict(type='Collect', keys=['img']),
        ])
]
data = dict(
    train=dict(
        ann_file=data_root + 'annotations/instances_train.json',
        img_prefix=data_root + 'train/',
        pipeline=train_pipeline),
    val=dict(
        ann_file=data_root + 'annotations/instances_val.json',
        img_prefix=data_root + 'val/',
        pipeline=test_pipeline),
    test=dict(
        ann_file=data_root + 'annotations/instances_val.json',
        img_prefix=data_root + 'val/',
        pipeline=test_pipeline))

model = dict(
    rpn_head=dict(anchor_generator=dict(scales=[4])),
    test_cfg=dict(rcnn=dict(max_per_img=50)))  # at most 12 objects an image: 50 detections keep the recall

# From scratch, as the demo: AdamW 1e-3, linear warm-up, one step; EXPERIMENTS_DENSE_EPOCHS overrides max_epochs
# (tools/experiments.py moves the step to the last epoch). 50 warm-up iterations (the demo: 100): the default
# 150 images make 38 iterations an epoch, 228 in 6 epochs.
lr_config = dict(policy='step', warmup='linear', warmup_iters=50, warmup_ratio=0.01, step=[5])
runner = dict(type='EpochBasedRunner', max_epochs=6)
evaluation = dict(interval=6, metric=['bbox', 'segm'])
