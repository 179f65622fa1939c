# Semantic-segmentation demo, step 1: dense training of a narrow Swin UperNet on the embedded synthetic
# semantic-segmentation dataset (`python tools/make_synthetic_data.py --task seg`). The same 4-stage 2/2/6/2 Swin
# with window 7 and patch 4 as Swin-T (the same sparsity search space), narrow (embed 32) with a narrow UperNet
# head (64 channels) and BN (SyncBN is CUDA-only), so that it trains from scratch on 2 CPU cores in minutes.
#
# Schedule: 300 iterations of batch 2 (3 epochs of the demo's 200 images), so that `make demo-seg` (dense, SAA,
# search, finetune, tests and latencies) fits in 20 minutes on 2 CPU cores: an iteration at 256x512 takes 0.6-1 s
# there, so the dense training takes 3-5 of the 20 minutes and the three trainings together 5-8 (600 dense
# iterations, with SAA and finetune in proportion, would take half the budget or more on a loaded machine).
#
# python tools/train.py configs/demo/upernet_swin_demo_seg.py --work-dir work_dirs/demo_seg/upernet_swin_demo_seg
_base_ = [
    '../_base_/models/upernet_swin.py', '../_base_/datasets/synthetic_semantic.py', '../_base_/seg_runtime.py',
    '../_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

embed_dims = 32
num_classes = 5
norm_cfg = dict(type='BN', requires_grad=True)
# About 4 % of the pixels are objects: with an unweighted loss the 300 iterations end predicting background
# everywhere (mIoU 0.194 = the background's IoU / 5, measured); the background's weight is a tenth.
class_weight = [0.1, 1.0, 1.0, 1.0, 1.0]
model = dict(
    backbone=dict(
        embed_dims=embed_dims,
        depths=[2, 2, 6, 2],
        num_heads=[1, 2, 4, 8],
        window_size=7,
        drop_path_rate=0.1,
        init_cfg=None),  # trained from scratch: no download
    decode_head=dict(
        in_channels=[embed_dims, 2 * embed_dims, 4 * embed_dims, 8 * embed_dims], channels=64,
        num_classes=num_classes, norm_cfg=norm_cfg, loss_decode=dict(class_weight=class_weight)),
    auxiliary_head=dict(in_channels=4 * embed_dims, channels=32, num_classes=num_classes, norm_cfg=norm_cfg,
                        loss_decode=dict(class_weight=class_weight)),
    test_cfg=dict(mode='whole'))

optimizer = dict(
    _delete_=True,
    type='AdamW',
    lr=1e-3,
    betas=(0.9, 0.999),
    weight_decay=0.01,
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
lr_config = dict(
    _delete_=True, policy='poly', warmup='linear', warmup_iters=50, warmup_ratio=1e-2, power=1.0, min_lr=0.0,
    by_epoch=False)
runner = dict(type='IterBasedRunner', max_iters=300)
checkpoint_config = dict(by_epoch=False, interval=300, max_keep_ckpts=1)
evaluation = dict(interval=300, metric='mIoU', pre_eval=True)
log_config = dict(interval=20, hooks=[dict(type='TextLoggerHook', by_epoch=False)])
dist_params = dict(backend='gloo')
cudnn_benchmark = False
