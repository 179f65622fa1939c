# Finetune of a found sparsity for UperNet Swin-T on Cityscapes (as long as the dense schedule, 80k iterations, from
# the SAA checkpoint, AdamW at a tenth of the dense learning rate). Give the configuration the search found (its
# sparsevit_max*.py holds pruning_ratios), e.g.
#   bash tools/dist_train.sh configs/sparsevit_seg/upernet_sparsevit_finetune_512x1024_80k_cityscapes.py 8 \
#       --cfg-options pruning_ratios="[[0.3,0.3],[0,0],[0.1,0.1,0.2,0.2,0.2,0.2],[0,0]]"
_base_ = './upernet_sparsevit_512x1024_cityscapes.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

pruning_ratios = None  # the found configuration (one list per stage, one ratio per block)

optimizer = dict(lr=6e-06)
runner = dict(type='IterBasedRunner', max_iters=80000)

load_from = 'work_dirs/upernet_sparsevit_saa_512x1024_26k_cityscapes/latest.pth'
