# Finetune recipe shared by the searched configurations (sparsevit_cfg*_*ms.py and the configs tools/search.py
# writes from mask_rcnn_sparsevit.py): 36 epochs, steps 27/33, warm-up 1000 (the dense 3x schedule), with
# mask_rcnn_sparsevit.py's AdamW at lr 1e-5 and 672x672 test pipeline, starting from the Sparsity-Aware Adaptation
# checkpoint. A child config sets only the original's top-level `pruning_ratios`.
_base_ = './mask_rcnn_sparsevit.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

lr_config = dict(
    policy='step',
    warmup='linear',
    warmup_iters=1000,
    warmup_ratio=0.001,
    step=[27, 33])
runner = dict(type='EpochBasedRunner', max_epochs=36)

# The Sparsity-Aware Adaptation checkpoint (configs/sparsevit/mask_rcnn_sparsevit_saa.py).
load_from = 'work_dirs/mask_rcnn_sparsevit_saa/latest.pth'
