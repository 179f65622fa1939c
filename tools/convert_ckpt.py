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
import os
import os.path as osp
import warnings
from typing import Optional

warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)

import torch  # noqa: E402

from sparsevit.utils.checkpoint import (checkpoint_state_dict, convert_official_swin_detector,  # noqa: E402
                                        read_checkpoint)
from sparsevit.utils.cli import fail  # noqa: E402


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Convert a Swin-Transformer-Object-Detection Mask R-CNN checkpoint '
                                     "to mmdet's Swin layout (loadable by the sparsevit configs)")
    parser.add_argument('src', help='checkpoint of the official Swin-Transformer-Object-Detection repository')
    parser.add_argument('dst', help='converted checkpoint to write')
    return parser.parse_args(argv)


def convert(src: str, dst: str) -> str:
    """Convert ``src`` into ``dst``; returns a one-line summary. Raises ValueError (one line) for a bad input."""
    if not osp.isfile(src):
        raise ValueError(f'checkpoint {src!r} does not exist')
    if osp.abspath(src) == osp.abspath(dst):
        raise ValueError('DST must differ from SRC (the source is kept)')
    ckpt = read_checkpoint(src)
    state = checkpoint_state_dict(ckpt, src)
    converted = convert_official_swin_detector(state, src)
    meta = dict(ckpt['meta']) if isinstance(ckpt.get('meta'), dict) else {}
    meta['converted_from'] = 'Swin-Transformer-Object-Detection'
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(dict(state_dict=converted, meta=meta), dst)
    num_backbone = sum(k.startswith('backbone.') for k in converted)
    return (f'converted {src}: {num_backbone} backbone weights to mmdet\'s Swin layout, '
            f'{len(converted) - num_backbone} neck/head weights unchanged -> {dst}')


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    try:
        print(convert(args.src, args.dst))
    except (ValueError, OSError) as err:
        fail(__file__, err)


if __name__ == '__main__':
    main()
