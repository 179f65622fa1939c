# UperNet Swin-T on Cityscapes, following mmseg 0.30's naming and its Swin recipe (mmseg has UperNet Swin for ADE20K
# only): the ADE20K recipe's model, AdamW and poly schedule, with mmseg's Cityscapes data (512x1024 crops, whole
# 1024x2048 images at test) and its 80k schedule. The dense model SparseViT starts from.
_base_ = [
    '../_base_/models/upernet_swin.py', '../_base_/datasets/cityscapes.py', '../_base_/seg_runtime.py',
    '../_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)  # the tools' plugin (CPU DDP, tasks)
checkpoint_file = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/swin_tiny_patch4_window7_224_20220317-1cdeb081.pth'  # noqa
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file),
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        use_abs_pos_embed=False,
        drop_path_rate=0.3,
        patch_norm=True),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=19),
    auxiliary_head=dict(in_channels=384, num_classes=19),
    test_cfg=dict(mode='whole'))

# AdamW optimizer, no weight decay for position embedding & layer norm in backbone (as the ADE20K recipe)
optimizer = dict(
    _delete_=True,
    type='AdamW',
    lr=0.00006,
    betas=(0.9, 0.999),
    weight_decay=0.01,
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))

lr_config = dict(
    _delete_=True,
    policy='poly',
    warmup='linear',
    warmup_iters=1500,
    warmup_ratio=1e-6,
    power=1.0,
    min_lr=0.0,
    by_epoch=False)

# 8 GPUs with 2 images per GPU, as mmseg's Cityscapes recipes
data = dict(samples_per_gpu=2)
