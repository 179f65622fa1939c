"""Write the synthetic COCO-format shapes dataset used by the demo configs (reused when already complete).

    python tools/make_synthetic_data.py [--out data/sparsevit_demo] [--num-train 400] [--num-val 100]
                                        [--style flat|scene]
"""
import argparse
import logging
import sys
import warnings

# Quiet imports: keep stderr to the progress bar and, on bad input, one error line.
warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)

from sparsevit.datasets.synthetic import STYLES, generate_synthetic_coco  # noqa: E402
from sparsevit.utils.cli import OneLineParser  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(description='Generate the synthetic COCO instance-segmentation demo dataset.')
    parser.add_argument('--out', default='data/sparsevit_demo', help='data root (default: data/sparsevit_demo)')
    parser.add_argument('--num-train', type=int, default=400, help='training images (default: 400)')
    parser.add_argument('--num-val', type=int, default=100, help='validation images (default: 100)')
    parser.add_argument('--img-size', type=int, default=224, help='image side in pixels (default: 224)')
    parser.add_argument('--seed', type=int, default=0, help='generator seed (default: 0)')
    parser.add_argument('--style', choices=STYLES, default='flat',
                        help="appearance: 'flat' (the demo's images) or 'scene' (textured objects on smooth "
                        "background with textured distractors) (default: flat)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        info = generate_synthetic_coco(args.out, num_train=args.num_train, num_val=args.num_val,
                                       img_size=args.img_size, seed=args.seed, style=args.style)
    except (ValueError, OSError) as err:
        print(f'make_synthetic_data.py: error: {err}', file=sys.stderr)
        return 2
    state = 'generated' if info['generated'] else 'already complete, reused'
    for split in ('train', 'val'):
        s = info[split]
        print(f"{split}: {s['num_images']} images, {s['num_annotations']} objects -> {s['ann_file']}")
    print(f"synthetic dataset {state}: {info['root']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
