# Demo, step 1: dense pre-training of a narrow Swin Mask R-CNN on the embedded synthetic shapes dataset
# (`python tools/make_synthetic_data.py`; `bash tools/demo.sh` runs the whole pipeline). Same 4-stage, 2/2/6/2
# structure, window 7 and patch 4 as Swin-T, so the sparsity search space is the same; narrow (embed 32) and
# small (224x224 input), with narrow FPN/RoI heads, so that it trains from scratch on 2 CPU cores in minutes.
#
# python tools/train.py configs/demo/mask_rcnn_swin_demo.py --work-dir work_dirs/demo/mask_rcnn_swin_demo
_base_ = [
    '../_base_/models/mask_rcnn_swin_fpn.py',
    '../_base_/datasets/synthetic_instance.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

embed_dims = 32
num_classes = 4
neck_channels = 64
model = dict(
    backbone=dict(
        embed_dims=embed_dims,
        depths=[2, 2, 6, 2],
        num_heads=[1, 2, 4, 8],
        window_size=7,
        drop_path_rate=0.1,
        convert_weights=False,
        init_cfg=None),  # trained from scratch: no download
    neck=dict(
        in_channels=[embed_dims, 2 * embed_dims, 4 * embed_dims, 8 * embed_dims],
        out_channels=neck_channels),
    rpn_head=dict(in_channels=neck_channels, feat_channels=neck_channels),
    roi_head=dict(
        bbox_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=2), out_channels=neck_channels),
        bbox_head=dict(in_channels=neck_channels, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=2), out_channels=neck_channels),
        mask_head=dict(in_channels=neck_channels, conv_out_channels=neck_channels, num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))

optimizer = dict(
    _delete_=True,
    type='AdamW',
    lr=1e-3,
    betas=(0.9, 0.999),
    weight_decay=0.05,
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
optimizer_config = dict(_delete_=True, grad_clip=dict(max_norm=10.0, norm_type=2))
lr_config = dict(
    policy='step', warmup='linear', warmup_iters=100, warmup_ratio=0.01, step=[5])
runner = dict(type='EpochBasedRunner', max_epochs=6)
checkpoint_config = dict(interval=1, max_keep_ckpts=1)
evaluation = dict(interval=6, metric=['bbox', 'segm'])
log_config = dict(interval=10)
