"""Write a synthetic shapes dataset (reused when already complete): the COCO instance-segmentation data of the demo
configs (``--task det``, the default) or the mmseg semantic-segmentation data (``--task seg``).

    python tools/make_synthetic_data.py [--task det|seg] [--out DIR] [--num-train N] [--num-val N]
                                        [--img-size SIDE | --img-size H W] [--seed S] [--style flat|scene]

Unset options take the generator's defaults: det 400/100 images of 224 px, style flat, in data/sparsevit_demo; seg
200/50 images of 512x1024 (``WIDE_SCENE``), style scene, in data/sparsevit_seg.
"""
import argparse
import logging
import sys
import warnings

# Quiet imports: keep stderr to the progress bar and, on bad input, one error line.
warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)

from sparsevit.datasets.synthetic import STYLES, generate_synthetic_coco  # noqa: E402
from sparsevit.datasets.synthetic_seg import generate_synthetic_seg  # noqa: E402
from sparsevit.utils.cli import OneLineParser  # noqa: E402

GENERATORS = dict(det=generate_synthetic_coco, seg=generate_synthetic_seg)
DEFAULT_OUT = dict(det='data/sparsevit_demo', seg='data/sparsevit_seg')
DEFAULT_STYLE = dict(det='flat', seg='scene')


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(prog='make_synthetic_data.py', description='Generate a synthetic shapes dataset: COCO '
                           'instance segmentation (det) or mmseg semantic segmentation (seg).')
    parser.add_argument('--task', choices=tuple(GENERATORS), default='det',
                        help='det: the COCO demo dataset; seg: mmseg CustomDataset layout (default: det)')
    parser.add_argument('--out', help='data root (default: data/sparsevit_demo for det, data/sparsevit_seg for seg)')
    parser.add_argument('--num-train', type=int, help='training images (default: 400 for det, 200 for seg)')
    parser.add_argument('--num-val', type=int, help='validation images (default: 100 for det, 50 for seg)')
    parser.add_argument('--img-size', type=int, nargs='+', metavar='PX',
                        help='image side, or height and width (seg only) in pixels (default: 224 for det, '
                        '512 1024 for seg)')
    parser.add_argument('--seed', type=int, default=0, help='generator seed (default: 0)')
    parser.add_argument('--style', choices=STYLES,
                        help="appearance: 'flat' (the demo's images) or 'scene' (textured objects on smooth "
                        "background with textured distractors) (default: flat for det, scene for seg)")
    args = parser.parse_args(argv)
    if args.img_size is not None:  # one integer: a side; two: (height, width)
        if len(args.img_size) > 2:
            parser.error(f'argument --img-size: expected one or two integers (SIDE or H W), got {len(args.img_size)}')
        args.img_size = args.img_size[0] if len(args.img_size) == 1 else tuple(args.img_size)
    args.style = args.style or DEFAULT_STYLE[args.task]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    given = dict(num_train=args.num_train, num_val=args.num_val, img_size=args.img_size, seed=args.seed,
                 style=args.style)
    try:
        info = GENERATORS[args.task](args.out or DEFAULT_OUT[args.task],
                                     **{k: v for k, v in given.items() if v is not None})
    except (ValueError, OSError) as err:
        print(f'make_synthetic_data.py: error: {err}', file=sys.stderr)
        return 2
    state = 'generated' if info['generated'] else 'already complete, reused'
    for split in ('train', 'val'):
        s = info[split]
        if args.task == 'det':
            print(f"{split}: {s['num_images']} images, {s['num_annotations']} objects -> {s['ann_file']}")
        else:
            print(f"{split}: {s['num_images']} images -> {s['img_dir']}, label maps -> {s['ann_dir']}")
    print(f"synthetic {'' if args.task == 'det' else 'segmentation '}dataset {state}: {info['root']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
