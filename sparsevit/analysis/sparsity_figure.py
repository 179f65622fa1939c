"""The figure of the windows a SparseViT backbone keeps on an image (``tools/visualize_sparsity.py``): one panel per
stage that prunes.

The image goes through the config's test pipeline (resize, normalisation, padding), the backbone runs once with
``record_selection = True`` and, for each stage with a pruned block, a panel shows the network's input image where
every token is dimmed by the share of the stage's pruned blocks that skipped it (:func:`stage_panel`,
:func:`dim_image`; bright: computed by every block; dark: pruned by every block), with the kept 7x7 windows of the
stage's most pruned regular (W-MSA) block outlined. Without a checkpoint the weights are random and so are the
selections (useful only to check the mechanics).

On a segmentation config (an mmseg segmentor, :func:`sparsevit.tasks.task_of`) the whole segmentor runs once
instead (the kept windows are those of its backbone in the same forward) and a panel beside the input shows the
predicted label map in the data set's palette (:func:`colorize`). A wide image (width >= 1.5 x height) is drawn two
panels per row: the input and its label map first, then the stages.
"""
import importlib
import math
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..deploy.build import backbone_cfg, parse_ratios
from ..ops.selection import SelectionRecord
from ..tasks import task_of
from ..utils.config import SPARSE_BACKBONES, load_config
from ..utils.latency import resolve_device
from .kept_windows import kept_token_mask

DIM = 0.25  # brightness of a token that every pruned block of its stage skipped
UNKNOWN_COLOUR = (128, 128, 128)  # a label without a palette entry
WIDE = 1.5  # images at least this much wider than high are drawn two panels per row


# ----------------------------------------------------------------------------------------------------------------
# Selections -> token masks (pure numpy)
# ----------------------------------------------------------------------------------------------------------------
def stage_panel(records: Sequence[Optional[SelectionRecord]], ratios: Sequence[float], window_size: int,
                image_index: int = 0) -> Optional[dict]:
    """Summary of one stage's selections, or None when the stage prunes nothing.

    Returns:
        dict(coverage=(H, W) float share of pruned blocks that computed each token, stride, outline=(block,
        record) of the most pruned regular block or None, blocks=[pruned block ids]).
    """
    pruned = [j for j, r in enumerate(records) if r is not None]
    if not pruned:
        return None
    masks = [kept_token_mask(records[j], window_size, image_index) for j in pruned]
    coverage = np.mean(np.stack(masks).astype(np.float32), axis=0)
    regular = [j for j in pruned if records[j].shift == 0]
    outline = max(regular, key=lambda j: (ratios[j], j)) if regular else None
    return dict(coverage=coverage, stride=records[pruned[0]].stride, outline=outline, blocks=pruned)


def dim_image(image: np.ndarray, coverage: np.ndarray, stride: int) -> np.ndarray:
    """``image (h, w, 3) uint8`` with each pixel scaled by ``DIM + (1 - DIM) * coverage`` of its token."""
    scale = coverage.repeat(stride, 0).repeat(stride, 1)
    h, w = image.shape[:2]
    full = np.ones((h, w), dtype=np.float32) * DIM  # pixels beyond the token map (none without padding)
    full[:min(h, scale.shape[0]), :min(w, scale.shape[1])] = scale[:h, :w] * (1 - DIM) + DIM
    return (image.astype(np.float32) * full[..., None]).clip(0, 255).astype(np.uint8)


def colorize(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """A label map ``(h, w)`` of class ids as an RGB image ``(h, w, 3)`` uint8: class ``i`` in ``palette[i]``,
    ids beyond the palette (e.g. the ignore index 255) in :data:`UNKNOWN_COLOUR`."""
    table = np.array(list(palette) + [UNKNOWN_COLOUR] * (256 - len(palette)), dtype=np.uint8)  # [256, 3]
    return table[labels.astype(np.uint8)]


def grid_shape(num_panels: int, aspect: float) -> Tuple[int, int]:
    """``(rows, cols)`` of the figure: one row, or two panels per row for an image of ``aspect`` (w / h) >=
    :data:`WIDE`."""
    cols = 2 if aspect >= WIDE and num_panels > 2 else num_panels
    return math.ceil(num_panels / cols), cols


# ----------------------------------------------------------------------------------------------------------------
# Model and image
# ----------------------------------------------------------------------------------------------------------------
def sparse_config(config: str, cfg_options: Optional[dict] = None):
    """The config (:func:`~sparsevit.utils.config.load_config`) with a sparse backbone that builds without a
    download (:func:`~sparsevit.deploy.build.backbone_cfg`); ValueError for another backbone."""
    cfg = load_config(config, cfg_options)
    if cfg.model.backbone.get('type') not in SPARSE_BACKBONES:
        raise ValueError(f"the config's backbone is {cfg.model.backbone.get('type')!r}; visualising needs one "
                         f'of {SPARSE_BACKBONES}')
    cfg.model.backbone = backbone_cfg(cfg)
    return cfg


def build_model_from(cfg, checkpoint: Optional[str], device: torch.device) -> torch.nn.Module:
    """The config's detector (mmdet's ``init_detector``) or segmentor (its task's builder, SyncBN as BN on CPU) with
    the checkpoint's weights (random weights without one), in eval mode."""
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise ValueError(f'checkpoint file not found: {checkpoint}')
    torch.manual_seed(0)  # without a checkpoint: the same random weights every run
    task = task_of(cfg)
    from ..utils.checkpoint import load_weights
    if task.name == 'detection':
        from mmdet.apis import init_detector
        model = init_detector(cfg, None, device='cpu')
    else:
        model = task.build_model(cfg.model, test_cfg=cfg.get('test_cfg'))
    if checkpoint is not None:  # the whole model must fit (another architecture is one error line)
        load_weights(model, checkpoint)
    return model.to(device).eval()


def build_backbone_from(cfg, checkpoint: Optional[str], device: torch.device) -> torch.nn.Module:
    """The model's backbone (:func:`build_model_from`), in eval mode."""
    return build_model_from(cfg, checkpoint, device).backbone.eval()


def preprocess(cfg, image_path: str, device: torch.device):
    """Run the config's test pipeline (its task's: mmdet's or mmseg's transforms); returns (input tensor
    [1, 3, Hp, Wp], img_meta)."""
    Compose = importlib.import_module(f'{task_of(cfg).package}.datasets.pipelines').Compose
    if not osp.isfile(image_path):
        raise ValueError(f'image file not found: {image_path}')
    pipeline = Compose(cfg.data.test.pipeline)
    data = pipeline(dict(img_info=dict(filename=image_path), img_prefix=None))
    img, meta = data['img'], data['img_metas']
    img, meta = (img[0], meta[0]) if isinstance(img, list) else (img, meta)  # MultiScaleFlipAug: first scale
    meta = meta.data if hasattr(meta, 'data') else meta
    img = img.data if hasattr(img, 'data') else img
    return img.unsqueeze(0).to(device), meta


def denormalize(img: torch.Tensor, meta: dict) -> np.ndarray:
    """The network input as an RGB uint8 image ``(h, w, 3)``, cropped to ``img_shape`` (no padding)."""
    norm = meta['img_norm_cfg']
    x = img[0].permute(1, 2, 0).cpu().numpy() * norm['std'] + norm['mean']  # [Hp, Wp, 3]
    if not norm.get('to_rgb', False):
        x = x[..., ::-1]  # BGR input -> RGB for display
    h, w = meta['img_shape'][:2]
    return x[:h, :w].clip(0, 255).astype(np.uint8)


def predict_labels(segmentor: torch.nn.Module, img: torch.Tensor, meta: dict) -> np.ndarray:
    """The segmentor's label map ``(h, w)`` of the network input (its ``encode_decode``: backbone, decode head,
    resize to the input), cropped to ``img_shape``."""
    logits = segmentor.encode_decode(img, [meta])  # [1, num_classes, Hp, Wp]
    h, w = meta['img_shape'][:2]
    return logits[0, :, :h, :w].argmax(0).cpu().numpy()


def label_legend(cfg, num_classes: int) -> List[Tuple[str, Tuple[int, int, int]]]:
    """``[(class name, RGB colour)]`` of the test data set: its config's ``classes`` and ``palette`` (the synthetic
    data's :data:`~sparsevit.datasets.synthetic_seg.SEG_PALETTE`), else those of its mmseg data set class, else
    seeded random colours (as mmseg's ``CustomDataset`` makes them)."""
    from mmseg.datasets import DATASETS
    ds_cfg = cfg.data.test
    dataset = DATASETS.get(ds_cfg.get('type', ''))
    names = ds_cfg.get('classes') or getattr(dataset, 'CLASSES', None) or [str(i) for i in range(num_classes)]
    palette = ds_cfg.get('palette') or getattr(dataset, 'PALETTE', None) or \
        np.random.RandomState(42).randint(0, 255, size=(num_classes, 3)).tolist()
    return [(str(n), tuple(int(c) for c in colour)) for n, colour in zip(names, palette)]


# ----------------------------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------------------------
def draw(image: np.ndarray, panels: List[tuple], out: str, title: str, labels: Optional[tuple] = None) -> None:
    """Save the input image, its label map (``labels``: ``(rgb (h, w, 3), [(class name, colour)])``, a
    segmentor's) and one panel per pruning stage side by side (matplotlib, Agg; :func:`grid_shape`)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle
    first = 2 if labels is not None else 1  # the panels before the stages
    aspect = image.shape[1] / image.shape[0]
    rows, cols = grid_shape(len(panels) + first, aspect)
    if rows == 1:
        size = (3.2 * cols, 3.6)
    else:  # panels of the image's aspect, room for two title lines (and the legend) below each
        side = 3.2 * min(aspect, 2.0)
        size = (side * cols, (side / aspect + 0.6) * rows + 0.4)
    fig, grid = plt.subplots(rows, cols, figsize=size, squeeze=False)
    axes = grid.ravel()
    axes[0].imshow(image)
    axes[0].set_title('input', fontsize=9)
    if labels is not None:
        rgb, legend = labels
        axes[1].imshow(rgb, interpolation='nearest')
        axes[1].set_title('predicted label map', fontsize=9)
        axes[1].legend(handles=[Patch(color=np.array(c) / 255, label=n) for n, c in legend], loc='lower center',
                       ncol=min(len(legend), 6), fontsize=6, framealpha=0.8, handlelength=1)
    for ax, (name, panel, rec, window_px) in zip(axes[first:], panels):
        ax.imshow(dim_image(image, panel['coverage'], panel['stride']))
        if rec is not None:
            nww = rec.grid[1]
            for win in np.asarray(rec.keep[0]).tolist():
                r, c = divmod(win, nww)
                ax.add_patch(Rectangle((c * window_px - 0.5, r * window_px - 0.5), window_px, window_px,
                                       fill=False, edgecolor='lime', linewidth=0.8))
        ax.set_title(name, fontsize=8)
    for ax in axes:
        ax.set_xlim(-0.5, image.shape[1] - 0.5)
        ax.set_ylim(image.shape[0] - 0.5, -0.5)
        ax.axis('off')
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.9 if rows == 1 else 1 - 0.4 / size[1]))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def panel_name(stage: int, panel: dict, ratios: Sequence[float],
               records: Sequence[Optional[SelectionRecord]]) -> str:
    blocks = panel['blocks']
    ratio_text = '/'.join(f'{ratios[j]:g}' for j in blocks)
    which = f'block {blocks[0]}' if len(blocks) == 1 else f'blocks {blocks[0]}-{blocks[-1]}'
    name = f'stage {stage}: {which} prune {ratio_text}'
    if panel['outline'] is not None:
        rec = records[panel['outline']]
        nw = rec.grid[0] * rec.grid[1]
        name += f"\nblock {panel['outline']} keeps {len(rec.keep[0])}/{nw} windows (outlined)"
    return name


def visualize(config: str, image_path: str, out: str, checkpoint: Optional[str] = None,
              ratios_text: Optional[str] = None, device: str = 'auto', cfg_options: Optional[dict] = None) -> int:
    """Run the config's backbone (``checkpoint``'s weights, or random ones) on the image (a segmentor: the whole
    segmentor, for its label map too) and write the PNG ``out``; returns the number of pruning stages drawn.
    ValueError (one line) on bad input or nothing to draw."""
    device = resolve_device(device)
    cfg = sparse_config(config, cfg_options)
    model = build_model_from(cfg, checkpoint, device)
    backbone = model.backbone
    if ratios_text is not None:
        backbone.set_pruning_ratios(parse_ratios(ratios_text, backbone.depths))
    img, meta = preprocess(cfg, image_path, device)
    backbone.record_selection = True
    segmentor = task_of(cfg).name == 'segmentation'
    with torch.inference_mode():
        predicted = predict_labels(model, img, meta) if segmentor else backbone(img)
    image = denormalize(img, meta)
    labels = None
    if segmentor:
        legend = label_legend(cfg, model.decode_head.num_classes)
        labels = (colorize(predicted, [colour for _, colour in legend]), legend)
    ws, panels = backbone.window_size, []
    for i, (records, ratios) in enumerate(zip(backbone.last_selection, backbone.pruning_ratios)):
        panel = stage_panel(records, ratios, ws)
        if panel is not None:
            rec = records[panel['outline']] if panel['outline'] is not None else None
            panels.append((panel_name(i, panel, ratios, records), panel, rec, ws * panel['stride']))
    if not panels:
        raise ValueError('the pruning ratios are all 0: no stage prunes, nothing to draw (set pruning_ratios in '
                         'the config or pass --pruning-ratios)')
    weights = osp.basename(checkpoint) if checkpoint else 'random weights'
    draw(image, panels, out, f'{osp.basename(config)} ({weights}): kept windows, pruned tokens dimmed', labels)
    return len(panels)
