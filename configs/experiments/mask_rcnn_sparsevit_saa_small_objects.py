# Experiments: Sparsity-Aware Adaptation of the dense model (mask_rcnn_swin_small_objects.py) with the schedule of
# the baselines' finetune (mask_rcnn_swin_finetune_small_objects.py): a layer-wise configuration sampled before
# every iteration (`random_sample = True`, the original's switch), L2-norm window selection.
#
# python tools/train.py configs/experiments/mask_rcnn_sparsevit_saa_small_objects.py \
#     --work-dir work_dirs/experiments/mask_rcnn_sparsevit_saa_small_objects
_base_ = './mask_rcnn_sparsevit_small_objects.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

random_sample = True
