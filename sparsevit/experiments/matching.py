"""Matched latency by construction: which searched configuration is compared with which baseline.

The search predicts latencies from its table; the table's comparisons use latencies measured back to back in one
process. A budget's best configuration by the search's prediction can measure several percent off its baseline
(the dense model at that budget's reduced resolution), so the pipeline takes each budget's best few feasible
candidates from the search history (:func:`budget_candidates`), times them interleaved with the baselines, and
compares the best one by search metric within ±:data:`MATCH_TOLERANCE` of its baseline's measured latency
(:func:`pick_matched`). A budget where none is that close keeps the closest one, marked "not matched": its
comparison is shown but left out of the verdict.

Which candidates: the search's best of the budget (rank 0, its ``sparsevit_max{B}.py``), then, when the budget's
edge in the search's milliseconds is given, the best configuration of the *whole* history in each of the bins of
:data:`EDGE_OFFSETS` around that edge (the baseline's latency as the search's table predicts it). The budget's best
by a noisy held-out metric can lie anywhere in its interval (in the first full run: 17 % below the edge), and the
table's relative error moves every prediction a few percent: candidates spread around the edge are what can land
within 3 % of the baseline when measured. A configuration the search assigned to a neighbouring budget (or found
infeasible, if it was scored) is as good a candidate: the comparison is at measured latency, not at the search's.
Above the loosest budget the search scores nothing of its own, so the pipeline searches a guard budget above it
(:func:`guard_fraction`) whose configurations fill the bins above the loosest edges.

Budget indices: the experiments number budgets by their size (budget 0: the largest reduced size, the loosest
budget); the search numbers them ascending (its ``--budgets`` are sorted). :func:`budget_candidates` translates.
"""
import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence

from ..schedule import genes_key, genes_to_ratios

#: Largest relative latency difference of a comparison at matched latency (``|a / b - 1|``).
MATCH_TOLERANCE = 0.03
#: Centres of the bins around a budget's edge that candidates are drawn from (predicted latency / edge - 1), in the
#: order they are filled; each bin is :data:`EDGE_BIN` wide on either side: contiguous, -20 % to +20 %, the spread of
#: the table's rescaled errors in the full runs (the earlier ladder, 0, +-4, +-8, +-12 % of +-2 %, never reached past
#: +-4 % with the default 5 candidates, while the loosest budgets' candidates measured 10-20 % below their baselines).
EDGE_OFFSETS = (0.0, -0.08, 0.08, -0.16, 0.16)
EDGE_BIN = 0.04


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
                      per_budget: int, edges_ms: Optional[Sequence[float]] = None) -> Dict[int, List[Candidate]]:
    """Up to ``per_budget`` distinct configurations per budget from a search history, to be timed beside the
    budget's baseline.

    Args:
        history: the search's records (``search_{tag}_history.jsonl``): ``feasible``, ``budget`` (index in the
            search's ascending budgets), ``metric``, ``latency``, ``config`` (genes), ``step``.
        fractions: the experiments' budgets (fractions of dense), in the experiments' order; the search got them
            sorted ascending.
        depths: blocks per stage (genes -> pruning ratios).
        per_budget: candidates kept per budget.
        edges_ms: each budget's edge in the search's milliseconds (the experiments' order; the summary's resolved
            budgets). Without it, the candidates are the budget's best feasible ones by metric (the earlier rule).

    Returns:
        experiments' budget index -> candidates. Rank 0 is the search's best of the budget: by metric, a tie going
        to the later step (the search's own rule). With ``edges_ms``, the next ranks are the best scored
        configuration of the whole history in each bin of :data:`EDGE_OFFSETS` (in that order; an empty bin is
        skipped), then the unused ones closest to the edge within the outermost bin; without it, the budget's
        next best. A configuration drawn twice counts once (its last step). Budgets without a feasible record are
        absent.
    """
    ascending = sorted(range(len(fractions)), key=lambda i: fractions[i])  # search index -> experiments' index
    last: Dict[str, Mapping] = {}
    for record in history:
        if record.get('metric') is None:
            continue
        key = genes_key(record['config'])
        if key not in last or record['step'] >= last[key]['step']:
            last[key] = record
    by_metric = sorted(last.items(), key=lambda kv: (-kv[1]['metric'], -kv[1]['step']))
    out = {}
    for budget in range(len(fractions)):
        own = [(k, r) for k, r in by_metric if r.get('feasible') and r.get('budget') is not None
               and ascending[r['budget']] == budget]
        if not own:
            continue
        if edges_ms is None:
            chosen = own[:per_budget]
        else:
            chosen = [own[0]]
            edge = float(edges_ms[budget])
            gap = {k: float(r['latency']) / edge - 1.0 for k, r in by_metric}
            for offset in EDGE_OFFSETS:
                if len(chosen) >= per_budget:
                    break
                taken = {k for k, _ in chosen}
                inside = [(k, r) for k, r in by_metric
                          if k not in taken and offset - EDGE_BIN <= gap[k] < offset + EDGE_BIN]
                chosen += inside[:1]
            reach = max(abs(o) for o in EDGE_OFFSETS) + EDGE_BIN
            taken = {k for k, _ in chosen}
            rest = sorted(((k, r) for k, r in by_metric if k not in taken and abs(gap[k]) < reach),
                          key=lambda kv: abs(gap[kv[0]]))
            chosen += rest[:max(0, per_budget - len(chosen))]
        out[budget] = [Candidate(candidate_name(budget, rank), budget, rank, float(r['metric']), float(r['latency']),
                                 int(r['step']), genes_to_ratios(r['config'], depths))
                       for rank, (_, r) in enumerate(chosen)]
    return out


#: The guard budget's cap, as a fraction of dense: below the dense configuration, which the search times itself.
GUARD_CAP = 0.95


def guard_fraction(fractions: Sequence[float], factor: float) -> Optional[float]:
    """The guard budget searched beside ``fractions`` (fractions of dense): ``factor`` times the loosest, capped at
    :data:`GUARD_CAP`; None when ``factor`` is 0 or the cap is not above the loosest budget (by the 3 decimals the
    budgets are named with). Its configurations are never compared themselves: they are scored candidates above
    the loosest budgets' edges, for :func:`budget_candidates`."""
    if not factor or not fractions:
        return None
    guard = min(max(fractions) * factor, GUARD_CAP)
    return guard if round(guard, 3) > round(max(fractions), 3) else None


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
    """The best candidate by search metric (a tie: the lower rank) whose measured latency is within ``tolerance``
    of ``baseline_ms``; when none is, the one of closest latency (a tie: the lower rank), not matched. None
    without candidates.

    Args:
        candidates: one budget's candidates (:func:`budget_candidates`).
        latency_ms: measured latency per candidate name (the same interleaved run as the baseline).
        baseline_ms: the baseline's measured latency.
    """
    measured = sorted((c.rank, c.name, latency_gap(latency_ms[c.name], baseline_ms), c.metric) for c in candidates)
    if not measured:
        return None
    close = sorted((m for m in measured if is_matched(m[2], tolerance)), key=lambda m: (-m[3], m[0]))
    rank, name, gap, _ = close[0] if close else min(measured, key=lambda m: (abs(m[2]), m[0]))
    return Pick(name, rank, gap, bool(close))


def match_uniform(target_ms: float, uniform_ms: Mapping[float, float]) -> float:
    """The uniform ratio whose latency is closest to ``target_ms`` (ties: the smaller ratio)."""
    return min(sorted(uniform_ms), key=lambda r: abs(uniform_ms[r] - target_ms))


def nearest(target_ms: float, options: Mapping[str, float]) -> Optional[str]:
    """The name in ``options`` (name -> ms) of closest latency to ``target_ms`` (ties: the first name in sorted
    order); None when empty."""
    return min(sorted(options), key=lambda n: abs(options[n] - target_ms), default=None)
