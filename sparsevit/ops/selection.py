"""Window selectors and the record of the windows a block kept (they know no model).

A *selector* ranks the windows of one stage map for the first pruned block of its kind (regular or shifted); later
blocks of that kind keep a prefix of the same ranking. Every selector is called the same way::

    order, scores = selector(importance, token_index, k, where)

with ``importance [B, Hp, Wp]`` (fp32, zeros on padding), ``token_index [nW, N]`` (:func:`window.window_token_index`),
``k`` the windows the first block keeps and ``where = (forward call, stage, shifted)``; ``order`` is ``[B, nW]`` (a
full ranking) or ``[B, k]`` (a top-k, in traced graphs), ``scores`` is ``[B, nW]`` fp32. The backbone chooses one
selector per mode once (:func:`make_selectors`), so no block branches on the selection kind or on tracing.

Layouts as in :mod:`sparsevit.ops.window`.
"""
import dataclasses
from typing import List, Optional, Tuple

import torch

from . import window as W

WINDOW_SELECTIONS = ('l2', 'random')
RANDOM_NOT_TRACEABLE = ("window_selection='random' runs eagerly only (its per-call CPU generator cannot be traced); "
                        "compile or export with window_selection='l2'")

Where = Tuple[int, int, int]  # (forward call, stage, shifted)


@dataclasses.dataclass(frozen=True)
class SelectionRecord:
    """The windows one pruned block kept (``record_selection``; ``last_selection`` holds one per pruned block).

    Attributes:
        keep: LongTensor ``[B, k]`` (CPU): kept window ids of the padded map's row-major window grid ``grid``,
            rolled by ``-shift`` for a shifted block, most important first.
        grid: ``(nWh, nWw)``, the window grid of the padded map.
        shift: the cyclic shift of the block's windows (0 for a regular block).
        hw: ``(H, W)``, the unpadded token map.
        stride: input pixels per token at this stage.
        scores: FloatTensor ``[B, nW]`` (fp32, CPU): the window scores the ranking used.
    """
    keep: torch.Tensor
    grid: Tuple[int, int]
    shift: int
    hw: Tuple[int, int]
    stride: int
    scores: torch.Tensor


Selections = List[List[Optional[SelectionRecord]]]  # ``last_selection``: per stage, per block, None (dense) or one


class Selector:
    """Ranks the windows by :meth:`scores` in full (eager); :meth:`traced` gives the variant for traced graphs."""

    def scores(self, importance: torch.Tensor, token_index: torch.Tensor, where: Where) -> torch.Tensor:
        """``[B, nW]`` fp32 window scores."""
        raise NotImplementedError

    def __call__(self, importance: torch.Tensor, token_index: torch.Tensor, k: int,
                 where: Where) -> Tuple[torch.Tensor, torch.Tensor]:
        scores = self.scores(importance, token_index, where)  # [B, nW]
        return W.rank_windows(scores), scores  # [B, nW]

    def traced(self):
        """The selector of traced graphs (``torch.compile``, ``torch.export``, ONNX): top-k of the same scores."""
        return TopKSelector(self)


class L2Selector(Selector):
    """SparseViT: the windows with the largest L2 norm of importance."""

    @torch.no_grad()
    def scores(self, importance: torch.Tensor, token_index: torch.Tensor, where: Where) -> torch.Tensor:
        """``[B, nW]`` fp32 window scores, autocast off."""
        with torch.autocast(importance.device.type, enabled=False):
            return W.window_scores(importance, token_index)


class RandomSelector(Selector):
    """The ablation: uniform random scores at the same counts and with the same structure.

    The scores at ``where = (call, stage, shifted)`` come from a CPU generator seeded by ``(seed, call, stage,
    shifted)`` (:func:`window.random_window_scores`): the same call of the same evaluation keeps the same windows.
    Eager only (:meth:`traced` raises when a traced graph prunes a block).
    """

    def __init__(self, seed: int):
        self.seed = seed

    @torch.no_grad()
    def scores(self, importance: torch.Tensor, token_index: torch.Tensor, where: Where) -> torch.Tensor:
        return W.random_window_scores(importance.shape[0], token_index.shape[0], (self.seed, *where),
                                      importance.device)

    def traced(self) -> 'Untraceable':
        return Untraceable(RANDOM_NOT_TRACEABLE)


class TopKSelector:
    """Static shapes for traced graphs: the top ``k`` of ``base``'s scores (one ``TopK`` in ONNX) instead of a full
    ranking; equal to the eager ranking's first ``k`` except possibly at exact ties."""

    def __init__(self, base: Selector):
        self.base = base

    def __call__(self, importance: torch.Tensor, token_index: torch.Tensor, k: int,
                 where: Where) -> Tuple[torch.Tensor, torch.Tensor]:
        scores = self.base.scores(importance, token_index, where)  # [B, nW]
        return W.top_windows(scores, k), scores  # [B, k]


class Untraceable:
    """A selector that cannot be traced: RuntimeError (``message``) when a traced graph prunes a block."""

    def __init__(self, message: str):
        self.message = message

    def __call__(self, importance: torch.Tensor, token_index: torch.Tensor, k: int, where: Where):
        raise RuntimeError(self.message)


def make_selectors(window_selection: str, seed: int) -> Tuple[Selector, object]:
    """The (eager, traced) selectors of ``window_selection`` (one of :data:`WINDOW_SELECTIONS`)."""
    eager = RandomSelector(seed) if window_selection == 'random' else L2Selector()
    return eager, eager.traced()


def check_window_selection(window_selection) -> None:
    """ValueError unless ``window_selection`` is one of :data:`WINDOW_SELECTIONS`."""
    if window_selection not in WINDOW_SELECTIONS:
        raise ValueError(f'window_selection must be one of {WINDOW_SELECTIONS}, got {window_selection!r}')


def check_selection_seed(selection_seed) -> None:
    """ValueError unless ``selection_seed`` is a non-negative int."""
    if isinstance(selection_seed, bool) or not isinstance(selection_seed, int) or selection_seed < 0:
        raise ValueError(f'selection_seed must be a non-negative int, got {selection_seed!r}')
