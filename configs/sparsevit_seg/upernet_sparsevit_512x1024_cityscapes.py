# SparseViT in mmseg's UperNet Swin-T recipe on Cityscapes: the dense recipe with the SparseViT backbone (dense unless
# pruning_ratios is set; weights from a checkpoint, so no ImageNet initialisation). The search's base config:
#   torchpack dist-run -np 8 python tools/search.py configs/sparsevit_seg/upernet_sparsevit_512x1024_cityscapes.py \
#       work_dirs/upernet_sparsevit_saa_512x1024_26k_cityscapes/latest.pth --max 0.85x --min 0.7x
_base_ = './upernet_swin_tiny_patch4_window7_512x1024_80k_cityscapes_pretrain_224x224_1K.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

model = dict(backbone=dict(type='SparseViT', pruning_ratios=None, init_cfg=None))
