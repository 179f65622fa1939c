"""Draw the windows a SparseViT backbone keeps on an image: one panel per stage that prunes.

    python tools/visualize_sparsity.py CONFIG [CHECKPOINT] IMAGE --out sparsity.png

The image goes through the config's test pipeline (resize, normalisation, padding), the backbone runs once with
``record_selection = True`` and, for each stage with a pruned block, a panel shows the network's input image where
every token is dimmed by the share of the stage's pruned blocks that skipped it (bright: computed by every block;
dark: pruned by every block), with the kept 7x7 windows of the stage's most pruned regular (W-MSA) block outlined.
Without a checkpoint the weights are random and so are the selections (useful only to check the mechanics). On a
segmentation config (an mmseg segmentor) the whole segmentor runs and a panel beside the input shows its predicted
label map in the data set's palette; a wide image is drawn two panels per row. The figure:
:mod:`sparsevit.analysis.sparsity_figure`.
"""
import argparse
import logging
import sys
import warnings

# Quiet imports: keep stderr to the progress bar and, on bad input, one error line.
warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)

from mmcv import DictAction  # noqa: E402

from sparsevit.analysis.sparsity_figure import visualize  # noqa: E402
from sparsevit.utils.cli import OneLineParser, check_outputs  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(description='Visualise the windows kept by a SparseViT backbone on an image.')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', nargs='?', default=None, help='checkpoint file (optional: random weights)')
    parser.add_argument('image', help='image file')
    parser.add_argument('--out', required=True, help='output PNG path')
    parser.add_argument('--pruning-ratios', default=None,
                        help='override the ratios: a float, a per-stage or per-block list (JSON/Python), or a '
                        'gene dict')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto', help='default: auto')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings (key=value)')
    args = parser.parse_args(argv)
    check_outputs(parser, args, '--out')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        n = visualize(args.config, args.image, args.out, args.checkpoint, args.pruning_ratios, args.device,
                      args.cfg_options)
    except (ValueError, TypeError, KeyError, FileNotFoundError, SyntaxError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f'visualize_sparsity.py: error: {message}', file=sys.stderr)
        return 2
    print(f'{n} pruning stage(s) drawn: {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
