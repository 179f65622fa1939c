# Sparsity-Aware Adaptation for UperNet Swin-T on ADE20K. The original publishes no segmentation recipe; this one
# keeps the detection recipe's proportions (README, "Semantic segmentation"): SAA for a third of the dense schedule
# (detection: 12 of 36 epochs; here 160k // 3 = 53333 iterations) from the dense checkpoint, AdamW at a tenth of
# the dense learning rate (6e-6), mmseg's poly schedule with linear warm-up.
_base_ = './upernet_sparsevit_512x512_ade20k.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

random_sample = True

optimizer = dict(lr=6e-06)
runner = dict(type='IterBasedRunner', max_iters=53333)
checkpoint_config = dict(by_epoch=False, interval=5333, max_keep_ckpts=1)
evaluation = dict(interval=5333, metric='mIoU', pre_eval=True)

load_from = 'work_dirs/upernet_swin_tiny_patch4_window7_512x512_160k_ade20k_pretrain_224x224_1K/latest.pth'
