"""Analyses of SparseViT models: what the kept windows hold, what they cost, and whether a difference is noise.

* :mod:`.kept_windows` — which image content lies in the windows a pruned block computes (below);
* :mod:`.compute` — multiply-accumulates of the backbone for the windows actually kept (analytic, per block);
* :mod:`.bootstrap` — paired bootstrap intervals of COCO AP differences over val images;
* :mod:`.selection_agreement` — whether half precision (autocast) keeps the windows fp32 keeps
  (``tools/check_precision.py``);
* :mod:`.table_accuracy` — how well the search's latency table predicts measured latency
  (``tools/check_latency_table.py``);
* :mod:`.sparsity_figure` — the kept windows drawn on an image (``tools/visualize_sparsity.py``).

The measurements here compare the backbone's recorded selections (``record_selection=True``) with ground truth
(instance masks mapped to each stage's token grid): how much of the objects the kept windows cover (recall), how
many kept windows hold an object at all (precision), the same for random window selection and for chance, by COCO
object size, and how the importance signal (``mean_c |x|`` of a stage's input) differs between object and
background tokens. The arithmetic is plain numpy on records and masks (:mod:`.kept_windows`); only
:func:`~.kept_windows.record_forward` runs a backbone, and :func:`~.kept_windows.analyze_dataset` adds the
mmdet config, checkpoint and dataset around it for ``tools/analyze_windows.py``.
"""
from .kept_windows import (KINDS, SIZE_BINS, ImageTruth, KeptWindowAnalysis, MagnitudeTally, SelectionTally, Setting,
                           analyze_dataset, analyze_images, block_tally, format_markdown, kept_token_mask,
                           magnitude_tally, record_forward, size_bin, token_pixel_counts, uniform_settings,
                           window_pixel_counts, write_outputs)

__all__ = ['KINDS', 'SIZE_BINS', 'ImageTruth', 'KeptWindowAnalysis', 'MagnitudeTally', 'SelectionTally', 'Setting',
           'analyze_dataset', 'analyze_images', 'block_tally', 'format_markdown', 'kept_token_mask',
           'magnitude_tally', 'record_forward', 'size_bin', 'token_pixel_counts', 'uniform_settings',
           'window_pixel_counts', 'write_outputs']
