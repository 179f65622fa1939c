# Semantic-segmentation demo: the dense demo UperNet with the SparseViT backbone (dense unless pruning_ratios is
# set); the search's base config and that of the finetune of the configuration it finds (the search writes
# sparsevit_max{MAX}_min{MIN}.py with this file as `_base_`, its own `pruning_ratios` and `load_from`).
#
# torchpack dist-run -np 2 python tools/search.py configs/demo/upernet_sparsevit_demo_seg.py \
#     work_dirs/demo_seg/upernet_sparsevit_saa_demo_seg/latest.pth --max 0.85x --min 0.6x --img_size 256
_base_ = './upernet_swin_demo_seg.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

model = dict(backbone=dict(type='SparseViT', pruning_ratios=None))

# Finetune schedule, from the Sparsity-Aware Adaptation weights: as the SAA (a third of the dense 300 iterations,
# a tenth of its learning rate), as short as the detection demo's finetune (a third of its dense schedule) so that
# `make demo-seg` fits in 20 minutes; the full recipe's finetune runs as long as the dense schedule.
optimizer = dict(lr=1e-4)
lr_config = dict(warmup_iters=20)
runner = dict(type='IterBasedRunner', max_iters=100)
checkpoint_config = dict(by_epoch=False, interval=100, max_keep_ckpts=1)
evaluation = dict(interval=100, metric='mIoU', pre_eval=True)

# The Sparsity-Aware Adaptation checkpoint (configs/demo/upernet_sparsevit_saa_demo_seg.py).
load_from = 'work_dirs/demo_seg/upernet_sparsevit_saa_demo_seg/latest.pth'
