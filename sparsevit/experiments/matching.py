"""Matched latency by construction: which searched configuration is compared with which baseline.

The search predicts latencies from its table; the table's comparisons use latencies measured back to back in one
process. A budget's best configuration by the search's prediction can measure several percent off its baseline
(the dense model at that budget's reduced resolution), so the pipeline takes each budget's best few feasible
candidates from the search history (:func:`budget_candidates`), times them interleaved with the baselines, and
compares the best one by search metric within ±:data:`MATCH_TOLERANCE` of its baseline's measured latency
(:func:`pick_matched`). A budget where none is that close keeps the closest one, marked "not matched": its
comparison is shown but left out of the verdict.

Budget indices: the experiments number budgets by their size (budget 0: the largest reduced size, the loosest
budget); the search numbers them ascending (its ``--budgets`` are sorted). :func:`budget_candidates` translates.
"""
import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence

from ..schedule import genes_key, genes_to_ratios

#: Largest relative latency difference of a comparison at matched latency (``|a / b - 1|``).
MATCH_TOLERANCE = 0.03


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One feasible configuration of the search history, as a latency entry.

    Attributes:
        name: its latency entry (``cand_b1_r0``: budget 1, rank 0).
        budget: the experiments' budget index (that of its size).
        rank: 0 for the search's best of the budget, then by search metric.
        metric: the search's metric (on the held-out split).
        predicted_ms: the search's latency (its table's prediction).
        step: the (last) search step that drew it.
        pruning_ratios: one list per stage, one ratio per block.
    """
    name: str
    budget: int
    rank: int
    metric: float
    predicted_ms: float
    step: int
    pruning_ratios: List[List[float]]


def candidate_name(budget: int, rank: int, prefix: str = 'cand') -> str:
    """``cand_b1_r0`` (budgets and ranks as the table shows them: budgets from 1, ranks from 0)."""
    return f'{prefix}_b{budget + 1}_r{rank}'


def budget_candidates(history: Sequence[Mapping], fractions: Sequence[float], depths: Sequence[int],
                      per_budget: int) -> Dict[int, List[Candidate]]:
    """The ``per_budget`` best distinct feasible configurations of each budget in a search history.

    Args:
        history: the search's records (``search_{tag}_history.jsonl``): ``feasible``, ``budget`` (index in the
            search's ascending budgets), ``metric``, ``latency``, ``config`` (genes), ``step``.
        fractions: the experiments' budgets (fractions of dense), in the experiments' order; the search got them
            sorted ascending.
        depths: blocks per stage (genes -> pruning ratios).
        per_budget: candidates kept per budget.

    Returns:
        experiments' budget index -> candidates, best first: by metric, a tie going to the later step (the
        search's own rule, so rank 0 is the search's best). A configuration drawn twice counts once (its last
        step). Budgets without a feasible record are absent.
    """
    ascending = sorted(range(len(fractions)), key=lambda i: fractions[i])  # search index -> experiments' index
    last: Dict[int, Dict[str, Mapping]] = {}
    for record in history:
        if not record.get('feasible') or record.get('metric') is None or record.get('budget') is None:
            continue
        by_key = last.setdefault(ascending[record['budget']], {})
        key = genes_key(record['config'])
        if key not in by_key or record['step'] >= by_key[key]['step']:
            by_key[key] = record
    out = {}
    for budget, by_key in sorted(last.items()):
        best = sorted(by_key.values(), key=lambda r: (-r['metric'], -r['step']))[:per_budget]
        out[budget] = [Candidate(candidate_name(budget, rank), budget, rank, float(r['metric']), float(r['latency']),
                                 int(r['step']), genes_to_ratios(r['config'], depths))
                       for rank, r in enumerate(best)]
    return out


def latency_gap(ms: float, reference_ms: float) -> float:
    """Relative latency difference ``ms / reference_ms - 1`` (-0.02: 2 % faster than the reference)."""
    return ms / reference_ms - 1.0


def is_matched(gap: float, tolerance: float = MATCH_TOLERANCE) -> bool:
    """Whether a relative gap is within the tolerance (``|gap| <= tolerance``, with float slack)."""
    return abs(gap) <= tolerance + 1e-9


@dataclasses.dataclass(frozen=True)
class Pick:
    """The candidate compared for one budget: its name and rank, its measured gap to the baseline, matched or
    not."""
    name: str
    rank: int
    gap: float
    matched: bool


def pick_matched(candidates: Sequence[Candidate], latency_ms: Mapping[str, float], baseline_ms: float,
                 tolerance: float = MATCH_TOLERANCE) -> Optional[Pick]:
    """The best candidate (by search metric, i.e. lowest rank) whose measured latency is within ``tolerance`` of
    ``baseline_ms``; when none is, the one of closest latency (a tie: the better rank), not matched. None without
    candidates.

    Args:
        candidates: one budget's candidates (:func:`budget_candidates`).
        latency_ms: measured latency per candidate name (the same interleaved run as the baseline).
        baseline_ms: the baseline's measured latency.
    """
    measured = sorted((c.rank, c.name, latency_gap(latency_ms[c.name], baseline_ms)) for c in candidates)
    if not measured:
        return None
    close = [m for m in measured if is_matched(m[2], tolerance)]
    rank, name, gap = close[0] if close else min(measured, key=lambda m: (abs(m[2]), m[0]))
    return Pick(name, rank, gap, bool(close))


def match_uniform(target_ms: float, uniform_ms: Mapping[float, float]) -> float:
    """The uniform ratio whose latency is closest to ``target_ms`` (ties: the smaller ratio)."""
    return min(sorted(uniform_ms), key=lambda r: abs(uniform_ms[r] - target_ms))


def nearest(target_ms: float, options: Mapping[str, float]) -> Optional[str]:
    """The name in ``options`` (name -> ms) of closest latency to ``target_ms`` (ties: the first name in sorted
    order); None when empty."""
    return min(sorted(options), key=lambda n: abs(options[n] - target_ms), default=None)
