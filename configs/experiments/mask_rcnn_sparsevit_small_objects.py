# Experiments: the SparseViT version of mask_rcnn_swin_finetune_small_objects.py (same weights and schedule), dense
# here. It is the base of the multi-budget search (tools/search.py --budgets, on the dataset's held-out `search`
# split) and of every sparse evaluation: tools/experiments.py sets `pruning_ratios` (searched, or one uniform
# ratio) and, for the window-selection ablation, model.backbone.window_selection='random'.
_base_ = './mask_rcnn_swin_finetune_small_objects.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

model = dict(backbone=dict(type='SparseViT'))
pruning_ratios = [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0]]
