# Sparsity-Aware Adaptation for UperNet Swin-T on Cityscapes, in the detection recipe's proportions (README,
# "Semantic segmentation"): a third of the dense schedule (80k // 3 = 26666 iterations) from the dense checkpoint,
# AdamW at a tenth of the dense learning rate (6e-6).
_base_ = './upernet_sparsevit_512x1024_cityscapes.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

random_sample = True

optimizer = dict(lr=6e-06)
runner = dict(type='IterBasedRunner', max_iters=26666)
checkpoint_config = dict(by_epoch=False, interval=2666, max_keep_ckpts=1)
evaluation = dict(interval=2666, metric='mIoU', pre_eval=True)

load_from = 'work_dirs/upernet_swin_tiny_patch4_window7_512x1024_80k_cityscapes_pretrain_224x224_1K/latest.pth'
