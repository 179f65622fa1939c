# The embedded synthetic semantic-segmentation dataset (mmseg's CustomDataset layout: img_dir/{train,val},
# ann_dir/{train,val}, label-map PNGs), written by `python tools/make_synthetic_data.py --task seg`
# (sparsevit.datasets.synthetic_seg) under data/sparsevit_demo_seg/: wide scene-like images, a few large smooth
# "stuff" regions (background) and small textured shapes. Point it elsewhere with the --cfg-options of
# sparsevit.datasets.synthetic_seg.synthetic_seg_cfg_options(data_root).
dataset_type = 'CustomDataset'
data_root = 'data/sparsevit_demo_seg/'
classes = ('background', 'circle', 'square', 'triangle', 'star')  # == sparsevit.datasets.synthetic_seg.SEG_CLASSES
palette = [[0, 0, 0], [220, 20, 60], [0, 130, 200], [255, 190, 0], [60, 180, 75]]  # == SEG_PALETTE
img_scale = (512, 256)  # (w, h) of the generator's images: the whole image, no resizing
crop_size = (256, 512)  # (h, w): whole images
img_norm_cfg = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', img_scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='Pad', size=crop_size, pad_val=0, seg_pad_val=255),
    dict(type='DefaultFormatBundle'),
    dict(type='Collect', keys=['img', 'gt_semantic_seg']),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='MultiScaleFlipAug',
        img_scale=img_scale,
        flip=False,
        transforms=[
            dict(type='Resize', keep_ratio=True),
            dict(type='RandomFlip'),
            dict(type='Normalize', **img_norm_cfg),
            dict(type='ImageToTensor', keys=['img']),
            dict(type='Collect', keys=['img']),
        ])
]
data = dict(
    samples_per_gpu=2,
    workers_per_gpu=0,
    train=dict(
        type=dataset_type, data_root=data_root, img_dir='img_dir/train', ann_dir='ann_dir/train',
        img_suffix='.png', seg_map_suffix='.png', classes=classes, palette=palette, pipeline=train_pipeline),
    val=dict(
        type=dataset_type, data_root=data_root, img_dir='img_dir/val', ann_dir='ann_dir/val',
        img_suffix='.png', seg_map_suffix='.png', classes=classes, palette=palette, pipeline=test_pipeline),
    test=dict(
        type=dataset_type, data_root=data_root, img_dir='img_dir/val', ann_dir='ann_dir/val',
        img_suffix='.png', seg_map_suffix='.png', classes=classes, palette=palette, pipeline=test_pipeline))
