"""The pure pickers of ``make experiments``: the reduced input sizes at matched latency, the search's relative
budgets, and the ``--cfg-options`` the pipeline gives its runs (epochs, input size, pruning ratios)."""
import json
from typing import List, Mapping, Sequence

from ..utils.config import read_pruning_ratios as config_pruning_ratios
from .settings import ExperimentError, knob

#: The resolution picker's latency window, as fractions of the dense latency at the full size: a size must save at
#: least 15 % (else it is no budget) and stay above the sparsest SparseViT configuration by 5 % (else the search has
#: nothing to choose from).
MAX_LATENCY_FRAC = 0.85
FLOOR_MARGIN = 1.05


def pick_resolutions(dense_ms: Mapping[int, float], full: int, k: int, floor_ms: float,
                     max_frac: float = MAX_LATENCY_FRAC, margin: float = FLOOR_MARGIN) -> List[int]:
    """The matched-latency resolution picker: the ``k`` largest reduced sizes whose dense backbone latency is at
    most ``max_frac`` of the full size's and at least ``margin`` x ``floor_ms`` (the sparsest SparseViT
    configuration at the full size: a budget below it cannot be met). Descending sizes, with strictly decreasing
    latencies (a smaller size timed no faster than a larger one, noise on a busy machine, is left out), so each
    size sets its own budget.

    Raises:
        ExperimentError: when no size qualifies.
    """
    top = dense_ms[full]
    fit = []
    for s in sorted(dense_ms, reverse=True):
        ms = dense_ms[s]
        if s < full and margin * floor_ms <= ms <= max_frac * top and (not fit or ms < dense_ms[fit[-1]]):
            fit.append(s)
    if not fit:
        timed = ', '.join(f'{s}: {ms:.1f} ms' for s, ms in sorted(dense_ms.items(), reverse=True))
        raise ExperimentError(f'no reduced input size has a dense latency in [{margin * floor_ms:.1f}, '
                              f'{max_frac * top:.1f}] ms (sparsest SparseViT {floor_ms:.1f} ms; timed {timed}); '
                              f'try another {knob("img_size")}')
    return fit[:k]


def budget_text(fraction: float) -> str:
    """A budget as given to tools/search.py (and in its output names): a fraction of the dense latency, three
    decimals and the ``x`` that marks it relative (e.g. ``0.712x``)."""
    return f'{fraction:.3f}x'


def budget_fractions(dense_ms: Mapping[int, float], full: int, sizes: Sequence[int]) -> List[float]:
    """Each picked size's dense latency as a fraction of the full size's, timed in the same run: the search's
    relative budgets (it resolves them against the dense latency it predicts itself, so a change of machine speed
    between this measurement and the search cannot move them)."""
    return [dense_ms[r] / dense_ms[full] for r in sizes]


def schedule_options(epochs: int) -> List[str]:
    """``--cfg-options`` giving a config ``epochs`` epochs with its one lr step before the last epoch."""
    return [f'runner.max_epochs={epochs}', f'lr_config.step=[{max(1, epochs - 1)}]']


def resolution_options(cfg, size: int) -> List[str]:
    """``--cfg-options`` setting the input size of every pipeline of ``cfg`` (an mmcv Config) to ``size``: the
    ``img_scale`` of each Resize (train) and MultiScaleFlipAug (test) step, found by index."""
    options = []
    for split in ('train', 'val', 'test'):
        for i, step in enumerate(cfg.data[split].pipeline):
            if step['type'] in ('Resize', 'MultiScaleFlipAug') and 'img_scale' in step:
                options.append(f'data.{split}.pipeline.{i}.img_scale=({size},{size})')
    if len(options) != 3:
        raise ExperimentError(f'expected one img_scale per pipeline (train, val, test), found {len(options)}')
    return options


def ratios_option(ratios) -> str:
    """``pruning_ratios=[[...],...]`` for ``--cfg-options`` (no spaces)."""
    return 'pruning_ratios=' + json.dumps([[float(r) for r in stage] for stage in ratios], separators=(',', ':'))


def read_pruning_ratios(path: str) -> list:
    """The top-level ``pruning_ratios`` literal of a config written by tools/search.py
    (:func:`sparsevit.utils.config.read_pruning_ratios`); ExperimentError when it sets none."""
    try:
        return config_pruning_ratios(path)
    except ValueError as err:
        raise ExperimentError(str(err)) from None
