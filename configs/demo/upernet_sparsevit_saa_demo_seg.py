# Semantic-segmentation demo, step 2: Sparsity-Aware Adaptation from the dense demo checkpoint, in the detection
# recipe's proportions (a third of the dense schedule, a tenth of its learning rate): 100 of the dense 300
# iterations at 1e-4.
_base_ = './upernet_sparsevit_demo_seg.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

random_sample = True

optimizer = dict(lr=1e-4)
lr_config = dict(warmup_iters=20)
runner = dict(type='IterBasedRunner', max_iters=100)
checkpoint_config = dict(by_epoch=False, interval=100, max_keep_ckpts=1)
evaluation = dict(interval=100, metric='mIoU', pre_eval=True)

load_from = 'work_dirs/demo_seg/upernet_swin_demo_seg/latest.pth'
