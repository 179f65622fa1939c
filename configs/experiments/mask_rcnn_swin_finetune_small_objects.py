# Experiments, step 2 (the fairness rule): after the dense training every compared model gets the same further
# training, with this schedule. The dense and reduced-resolution baselines are finetuned with it from the dense
# weights (at their input size: tools/experiments.py sets the pipelines' img_scale), and the Sparsity-Aware
# Adaptation (mask_rcnn_sparsevit_saa_small_objects.py) inherits it, so SAA and the baselines' finetune get the
# same epochs, learning rate and steps. EXPERIMENTS_ADAPT_EPOCHS overrides max_epochs.
#
# python tools/train.py configs/experiments/mask_rcnn_swin_finetune_small_objects.py \
#     --work-dir work_dirs/experiments/finetune_448 \
#     --cfg-options load_from=work_dirs/experiments/mask_rcnn_swin_small_objects/latest.pth
_base_ = './mask_rcnn_swin_small_objects.py'
custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)

optimizer = dict(lr=2e-4)
lr_config = dict(
    _delete_=True, policy='step', warmup='linear', warmup_iters=20, warmup_ratio=0.1, step=[1])
runner = dict(type='EpochBasedRunner', max_epochs=2)
evaluation = dict(interval=2, metric=['bbox', 'segm'])

load_from = 'work_dirs/experiments/mask_rcnn_swin_small_objects/latest.pth'
