# SparseViT Mask R-CNN: the base of the latency-constrained search (tools/search.py) and of the finetuned configs
# (sparsevit_cfg*_*ms.py). Dense Swin-T 3x training recipe with the backbone replaced by SparseViT
# (= SparseSwinTransformer: mmdet's SwinTransformer arguments and weights, plus window activation pruning), and a
# fixed 672x672 test input (resize keeping the aspect ratio so the long side is 672, then pad to 672x672), the
# resolution at which the README's latencies are measured.
#
# Pruning ratios: set the original's top-level key, e.g.
#   pruning_ratios = [[0.3, 0.3], [0, 0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0, 0]]
# (one list per stage, one ratio per block: the fraction of 7x7 windows removed), or model.backbone.pruning_ratios.
# Here it is dense (None). The weights come from the checkpoint given to the search/test tools or from `load_from`.
_base_ = '../swin/mask_rcnn_swin-t-p4-w7_fpn_fp16_ms-crop-3x_coco.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

model = dict(
    backbone=dict(type='SparseViT', pruning_ratios=None, init_cfg=None))

img_norm_cfg = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='MultiScaleFlipAug',
        img_scale=(672, 672),
        flip=False,
        transforms=[
            dict(type='Resize', keep_ratio=True),
            dict(type='RandomFlip'),
            dict(type='Normalize', **img_norm_cfg),
            dict(type='Pad', size=(672, 672)),
            dict(type='ImageToTensor', keys=['img']),
            dict(type='Collect', keys=['img']),
        ])
]
data = dict(
    val=dict(pipeline=test_pipeline), test=dict(pipeline=test_pipeline))
