# Semantic-segmentation demo: the dense demo UperNet with the SparseViT backbone (dense unless pruning_ratios is
# set); the search's base config and the model tested at a found sparsity.
_base_ = './upernet_swin_demo_seg.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

model = dict(backbone=dict(type='SparseViT', pruning_ratios=None))
