"""Convert a Mask R-CNN checkpoint of the official Swin-Transformer-Object-Detection repository for our configs.

    python tools/convert_ckpt.py SRC DST
    python tools/test.py configs/sparsevit/mask_rcnn_sparsevit.py DST --eval bbox segm

The backbone weights go through mmdet's ``swin_converter`` (``layers`` -> ``stages``, ``attn`` -> ``attn.w_msa``,
``mlp.fc1/fc2`` -> ``ffn.layers``, ``patch_embed.proj`` -> ``patch_embed.projection``, the patch-merging channels
reordered); the output norms ``backbone.norm{i}``, the neck and the heads keep their names. DST holds the
``state_dict`` and the source's ``meta`` (class names, config text); optimizer and apex ``amp`` states are dropped.
A file that is not such a checkpoint is one ``error:`` line and exit status 2.
"""
import argparse
import warnings
from typing import Optional

warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)

from sparsevit.utils.checkpoint import convert_checkpoint  # noqa: E402
from sparsevit.utils.cli import OneLineParser, fail  # noqa: E402


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = OneLineParser(description='Convert a Swin-Transformer-Object-Detection Mask R-CNN checkpoint '
                           "to mmdet's Swin layout (loadable by the sparsevit configs)")
    parser.add_argument('src', help='checkpoint of the official Swin-Transformer-Object-Detection repository')
    parser.add_argument('dst', help='converted checkpoint to write')
    return parser.parse_args(argv)


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    try:
        print(convert_checkpoint(args.src, args.dst))
    except (ValueError, OSError) as err:
        fail(__file__, err)


if __name__ == '__main__':
    main()
