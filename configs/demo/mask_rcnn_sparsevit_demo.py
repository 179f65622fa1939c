# Demo, steps 3-5: the SparseViT version of configs/demo/mask_rcnn_swin_demo.py, base of the latency-constrained
# search (tools/search.py) and of the finetune of the configuration it finds (the search writes
# sparsevit_max{MAX}_min{MIN}.py with this file as `_base_`, its own `pruning_ratios` and `load_from`).
# The backbone is SparseViT (= SparseSwinTransformer: mmdet's Swin arguments and weights plus window pruning).
# `pruning_ratios` is the original's top-level key: one list per stage, one ratio per block (the fraction of
# 7x7 windows removed). Dense here; e.g. [[0.3, 0.3], [0, 0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0, 0]] prunes.
# Override this key (--cfg-options pruning_ratios=...), not model.backbone.pruning_ratios: when both are set to
# different ratios the tools stop with an error naming both.
#
# python tools/search.py configs/demo/mask_rcnn_sparsevit_demo.py \
#     work_dirs/demo/mask_rcnn_sparsevit_saa_demo/latest.pth --max MS --min MS --img_size 224
_base_ = './mask_rcnn_swin_demo.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

model = dict(backbone=dict(type='SparseViT'))
pruning_ratios = [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0]]

# Finetune schedule: short, at a low learning rate, from the Sparsity-Aware Adaptation weights.
optimizer = dict(lr=2e-4)
lr_config = dict(
    _delete_=True, policy='step', warmup='linear', warmup_iters=20, warmup_ratio=0.1, step=[1])
runner = dict(type='EpochBasedRunner', max_epochs=2)
evaluation = dict(interval=2, metric=['bbox', 'segm'])

# The Sparsity-Aware Adaptation checkpoint (configs/demo/mask_rcnn_sparsevit_saa_demo.py).
load_from = 'work_dirs/demo/mask_rcnn_sparsevit_saa_demo/latest.pth'
