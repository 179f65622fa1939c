"""Matched latency by construction (sparsevit.experiments.matching): a budget's best candidates from a search
history, and the pick of the best one within 3 % of its baseline's measured latency."""
import pytest

from sparsevit.experiments.matching import (EDGE_BIN, EDGE_OFFSETS, GUARD_CAP, MATCH_TOLERANCE, Candidate,
                                            budget_candidates, candidate_name, guard_fraction, is_matched,
                                            latency_gap, nearest, pick_matched)
from sparsevit.schedule import gene_names, genes_to_ratios

DEPTHS = (2, 2, 6, 2)


def genes(value: float, first: float = 0.0) -> dict:
    """A configuration: the first gene ``first``, every other ``value``."""
    names = gene_names(DEPTHS)
    return {n: (first if i == 0 else value) for i, n in enumerate(names)}


def record(step, budget, metric, config, latency=50.0, feasible=True, cached=False):
    return dict(step=step, origin='random', cached=cached, feasible=feasible, budget=budget, latency=latency,
                metric=metric, config=config, extra={})


def test_budget_candidates_order_dedupe_and_budget_indices():
    # the experiments' budgets by size (descending fractions); the search sorted them ascending: its budget 0 is
    # the experiments' budget 2, its budget 2 the experiments' budget 0
    fractions = [0.8, 0.7, 0.5]
    history = [record(0, 2, 0.40, genes(0.1)),
               record(1, 2, 0.45, genes(0.2)),
               record(2, 2, 0.45, genes(0.3)),  # ties 0.45: the later step ranks first (the search's own rule)
               record(3, 2, 0.40, genes(0.1), cached=True),  # drawn again: counts once, its last step
               record(4, None, None, genes(0.0), latency=99.0, feasible=False),  # infeasible: never a candidate
               record(5, 0, 0.30, genes(0.8)),
               record(6, 2, 0.20, genes(0.4))]
    out = budget_candidates(history, fractions, DEPTHS, per_budget=3)
    assert set(out) == {0, 2}  # the experiments' budget 1 got no feasible record
    best = out[0]
    assert [c.metric for c in best] == [0.45, 0.45, 0.40] and [c.step for c in best] == [2, 1, 3]
    assert [c.rank for c in best] == [0, 1, 2] and [c.name for c in best] == ['cand_b1_r0', 'cand_b1_r1',
                                                                               'cand_b1_r2']
    assert best[0].pruning_ratios == genes_to_ratios(genes(0.3), DEPTHS) and best[0].budget == 0
    assert [c.name for c in out[2]] == ['cand_b3_r0'] and out[2][0].predicted_ms == 50.0
    assert len(budget_candidates(history, fractions, DEPTHS, per_budget=1)[0]) == 1
    assert budget_candidates([], fractions, DEPTHS, 5) == {}
    assert candidate_name(1, 3, 'random') == 'random_b2_r3'


def test_candidates_around_the_budget_edge_from_the_whole_history():
    # experiments' budgets 0.8 and 0.5 of dense and a guard budget 1.0; the search's edges (its ms) 80, 50 and 100;
    # the search numbers them ascending: its budget 1 is our 0, its 2 the guard
    fractions, edges = [0.8, 0.5, 1.0], [80.0, 50.0, 100.0]
    history = [record(0, 1, 0.60, genes(0.1), latency=66.0),  # the budget's best, 17.5 % below its edge: bin -16 %
               record(1, 1, 0.40, genes(0.2), latency=80.0),  # at the edge (bin 0)
               record(2, 1, 0.50, genes(0.3), latency=79.5),  # at the edge, better: bin 0's pick
               record(3, 1, 0.45, genes(0.4), latency=72.0),  # -10 %: bin -8 %
               record(4, None, 0.70, genes(0.5), latency=88.0, feasible=False),  # scored, infeasible: +10 %, bin +8 %
               record(5, 0, 0.30, genes(0.6), latency=62.0),  # the other budget's, -22.5 %: out of reach
               record(6, 2, 0.55, genes(0.7), latency=93.0),  # the guard budget's, +16.25 %: bin +16 %
               record(7, None, None, genes(0.8), latency=95.0, feasible=False),  # not scored: never a candidate
               record(8, 0, 0.35, genes(0.9), latency=50.5)]
    out = budget_candidates(history, fractions, DEPTHS, per_budget=5, edges_ms=edges)
    assert [c.step for c in out[0]] == [0, 2, 3, 4, 6] and [c.rank for c in out[0]] == list(range(5))
    assert out[0][0].metric == 0.60 and out[0][3].predicted_ms == 88.0
    assert len(budget_candidates(history, fractions, DEPTHS, per_budget=3, edges_ms=edges)[0]) == 3
    # budget 1 (edge 50): its own best is the only record near 50 ms, then nothing within the outermost bin
    assert [c.step for c in out[1]] == [8]
    # bins exhausted (bin -16 % holds only rank 0): the unused records closest to the edge within reach (80.0 at
    # 0 %; 62.0 at -22.5 % is out)
    out = budget_candidates(history, fractions, DEPTHS, per_budget=8, edges_ms=edges)
    assert [c.step for c in out[0]] == [0, 2, 3, 4, 6, 1]
    assert EDGE_OFFSETS[0] == 0.0 and max(EDGE_OFFSETS) + EDGE_BIN == pytest.approx(0.2)
    # without edges: the budget's best by metric, as before
    assert [c.step for c in budget_candidates(history, fractions, DEPTHS, per_budget=3)[0]] == [0, 2, 3]


def test_guard_budget():
    assert guard_fraction([0.5, 0.7], 1.25) == pytest.approx(0.875)
    assert guard_fraction([0.5, 0.8], 1.25) == GUARD_CAP  # capped below dense
    assert guard_fraction([0.5, 0.95], 1.25) is None and guard_fraction([0.5, 0.7], 0) is None
    assert guard_fraction([], 1.25) is None


def candidates(n: int, budget: int = 0):
    return [Candidate(candidate_name(budget, r), budget, r, 0.5 - 0.01 * r, 100.0, r, [[0.0]]) for r in range(n)]


def test_pick_matched_within_tolerance_or_not_matched():
    cands = candidates(3)
    # rank 0 is 5 % off, rank 1 2 % off, rank 2 1 % off: the best within 3 % is rank 1 (not the closest)
    pick = pick_matched(cands, {'cand_b1_r0': 105.0, 'cand_b1_r1': 98.0, 'cand_b1_r2': 101.0}, 100.0)
    assert (pick.name, pick.rank, pick.matched) == ('cand_b1_r1', 1, True) and pick.gap == pytest.approx(-0.02)
    # nothing within 3 %: the closest (rank 2, 4 % slower), not matched
    pick = pick_matched(cands, {'cand_b1_r0': 90.0, 'cand_b1_r1': 95.0, 'cand_b1_r2': 104.0}, 100.0)
    assert (pick.name, pick.matched) == ('cand_b1_r2', False) and pick.gap == pytest.approx(0.04)
    # one candidate 5 % off: "not matched"
    pick = pick_matched(cands[:1], {'cand_b1_r0': 105.0}, 100.0)
    assert not pick.matched and pick.gap == pytest.approx(0.05)
    # equally close: the better rank
    pick = pick_matched(cands[:2], {'cand_b1_r0': 95.0, 'cand_b1_r1': 105.0}, 100.0)
    assert pick.rank == 0 and not pick.matched
    assert pick_matched([], {}, 100.0) is None
    # matched ones by metric, not by rank: rank 2 scores best here
    better = cands[:2] + [Candidate('cand_b1_r2', 0, 2, 0.9, 100.0, 2, [[0.0]])]
    pick = pick_matched(better, {'cand_b1_r0': 101.0, 'cand_b1_r1': 99.0, 'cand_b1_r2': 102.5}, 100.0)
    assert (pick.name, pick.matched) == ('cand_b1_r2', True)
    assert pick_matched(cands[:1], {'cand_b1_r0': 103.0}, 100.0).matched  # exactly 3 %: matched
    assert pick_matched(cands[:1], {'cand_b1_r0': 97.0}, 100.0, tolerance=0.02).matched is False


def test_gap_and_nearest():
    assert MATCH_TOLERANCE == 0.03
    assert latency_gap(98.0, 100.0) == pytest.approx(-0.02) and latency_gap(100.0, 100.0) == 0.0
    assert is_matched(0.03) and is_matched(-0.03) and not is_matched(0.031)
    assert nearest(74.0, {'b1': 78.0, 'b2': 68.0, 'b3': 58.0}) == 'b1'
    assert nearest(63.0, {'b2': 68.0, 'b3': 58.0}) == 'b2'  # a tie: the first name
    assert nearest(10.0, {}) is None

