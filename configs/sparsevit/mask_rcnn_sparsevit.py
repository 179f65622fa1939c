# SparseViT Mask R-CNN: the base of Sparsity-Aware Adaptation (mask_rcnn_sparsevit_saa.py), of the
# latency-constrained search (tools/search.py) and of every finetune (sparsevit_cfg*_*ms.py through
# sparsevit_finetune.py, and the sparsevit_max*_min*.py configs the search writes). As the original:
# * the dense Swin-T 3x recipe with the backbone replaced by SparseViT (= SparseSwinTransformer: mmdet's
#   SwinTransformer arguments and weights, plus window activation pruning; convert_weights=True);
# * AdamW at lr 1e-5 (the dense pre-train's 1e-4 / 10: SAA and the finetunes start from trained detectors), no
#   weight decay on position tables and norms; only the latest checkpoint kept;
# * a fixed 672x672 test input: each image is stretched to exactly 672x672 (Resize keep_ratio=False, no
#   letterbox), the resolution at which the README's latencies are measured.
#
# Pruning ratios: set the original's top-level key, e.g.
#   pruning_ratios = [[0.3, 0.3], [0, 0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0, 0]]
# (one list per stage, one ratio per block: the fraction of 7x7 windows removed), or model.backbone.pruning_ratios;
# a value other than None counts as set, and setting both to different values is an error. Dense here (None).
# The weights come from the checkpoint given to the search/test tools or from `load_from`.
_base_ = '../swin/mask_rcnn_swin-t-p4-w7_fpn_fp16_ms-crop-3x_coco.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='SparseViT', pruning_ratios=None, convert_weights=True,
        init_cfg=None))

img_norm_cfg = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='MultiScaleFlipAug',
        img_scale=(672, 672),
        flip=False,
        transforms=[
            dict(type='Resize', keep_ratio=False),
            dict(type='RandomFlip'),
            dict(type='Normalize', **img_norm_cfg),
            dict(type='Pad', size_divisor=32),
            dict(type='ImageToTensor', keys=['img']),
            dict(type='Collect', keys=['img']),
        ])
]
data = dict(
    val=dict(pipeline=test_pipeline), test=dict(pipeline=test_pipeline))

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
checkpoint_config = dict(interval=1, max_keep_ckpts=1)
