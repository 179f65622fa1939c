# Finetune the SAA model at the sparsity configuration found by the latency-constrained search under 35 ms
# (dense Swin-T at 672x672: 47.8 ms on an RTX A6000). The original reports 34.2 ms, bbox mAP 41.6, mask mAP 37.7.
# Search log (genes: one ratio per W-MSA/SW-MSA block pair):
#   backbone.stages.0 : 0.6
#   backbone.stages.1 : 0
#   backbone.stages.2_1 : 0.2
#   backbone.stages.2_2 : 0.4
#   backbone.stages.2_3 : 0.5
#   backbone.stages.3 : 0
#
# bash tools/dist_train.sh configs/sparsevit/sparsevit_cfg2_35ms.py 8
_base_ = './sparsevit_finetune.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

# one list per stage, one ratio per block (fraction of windows removed)
pruning_ratios = [[0.6, 0.6], [0, 0], [0.2, 0.2, 0.4, 0.4, 0.5, 0.5], [0, 0]]
