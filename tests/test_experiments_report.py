"""The report's pieces (sparsevit.experiments.report) on constructed records: rows grouped over seeds, pairs at
matched latency (a pair more than 3 % apart is shown and left out of the verdict), width pairing by closest
latency, the spread flag in the table."""
import pytest

from sparsevit.experiments.report import (COMPARISONS, collect, comparison_pairs, markdown_table, sparsity_text,
                                          verdict)

RESOLUTION, WIDTH, RANDOM = (next(c for c in COMPARISONS if c.base == b) for b in ('resolution', 'width', 'random'))


def rec(name, method, ms, bbox, budget=None, **extra):
    return dict(dict(name=name, method=method, label=name, weights='w', img_size=448, budget=budget, width=None,
                     sparsity='dense', pruning_ratios=None, latency_ms=ms, latency_runs_ms=[ms], latency_spread=0.0,
                     spread_flag=False, gmacs=1.0, evals=[name], seeds=None, bbox_mAP=bbox, bbox_mAP_s=bbox,
                     segm_mAP=bbox, bbox_mAP_m=bbox), **extra)


def test_pairs_matched_and_left_out():
    records = [rec('res1', 'resolution', 100.0, 0.50, 0), rec('sv1', 'sparsevit', 98.0, 0.55, 0),  # 2 % faster
               rec('res2', 'resolution', 80.0, 0.45, 1), rec('sv2', 'sparsevit', 84.0, 0.40, 1)]  # 5 % slower
    pairs = comparison_pairs(records, RESOLUTION)
    assert [(p['a'], p['b'], p['match']) for p in pairs] == [('sv1', 'res1', 'matched'), ('sv2', 'res2', 'not matched')]
    assert pairs[0]['gap'] == pytest.approx(-0.02) and pairs[0]['delta'] == pytest.approx(0.05)
    assert pairs[0]['verdict'] == 'ahead' and pairs[0]['low'] is None  # no resamples: the sign, no interval
    text = verdict(pairs, RESOLUTION)
    assert 'ahead at 1/1 budgets at matched latency' in text  # budget 2 (behind, 5 % apart) does not count
    assert 'left out: budget 2' in text and 'budget 2 (84.0 vs 80.0 ms, +5.0%' in text and '[not matched]' in text
    assert 'no comparison at matched latency' in verdict(pairs[1:], RESOLUTION)
    assert verdict([], RESOLUTION) == 'no budget has both rows evaluated'


def test_same_ratio_pairs_are_always_compared():
    records = [rec('sv1', 'sparsevit', 98.0, 0.55, 0), rec('rnd1', 'random', 90.0, 0.50, 0)]  # 8 % apart
    pairs = comparison_pairs(records, RANDOM)
    assert pairs[0]['match'] == 'same ratios' and 'ahead at 1/1 budgets (same ratios)' in verdict(pairs, RANDOM)


def test_width_pairs_with_the_closest_sparsevit_row():
    records = [rec('sv1', 'sparsevit', 98.0, 0.55, 0), rec('sv2', 'sparsevit', 70.0, 0.50, 1),
               rec('saa_dense', 'sparsevit', 120.0, 0.6),  # not a budget's row: never paired
               rec('width0.75', 'width', 72.0, 0.45, width=0.75), rec('width0.5', 'width', 50.0, 0.3, width=0.5)]
    pairs = comparison_pairs(records, WIDTH)
    assert [(p['label'], p['match']) for p in pairs] == [('x0.75 vs budget 2', 'matched'),
                                                          ('x0.5 vs budget 2', 'not matched')]
    assert 'ahead at 1/1 widths at matched latency' in verdict(pairs, WIDTH)


def test_collect_groups_seeds_and_flags_spread():
    rows = [dict(name='dense', method='resolution', img_size=448, pruning_ratios=None, weights='w', budget=None,
                 latency_key='dense448')]
    rows += [dict(name=f'random_b1_s{s}', group='random_b1', seed=s, method='random', img_size=448,
                  pruning_ratios=[[0.5, 0.5]], weights='SAA', budget=0, latency_key='random_b1_r0') for s in range(3)]
    latency = dict(dense448=dict(latency_ms=100.0, runs_ms=[100.0, 115.0, 99.0], gmacs=2.0),
                   random_b1_r0=dict(latency_ms=60.0, runs_ms=[60.0, 61.0], gmacs=1.0))
    evals = {'dense': dict(bbox_mAP=0.6, bbox_mAP_s=-1.0), 'random_b1_s0': dict(bbox_mAP=0.3),
             'random_b1_s2': dict(bbox_mAP=0.4), 'random_b1_s1': None}  # one seed not evaluated
    records = collect(rows, latency, evals)
    assert [r['name'] for r in records] == ['dense', 'random_b1']
    dense, rnd = records
    assert dense['spread_flag'] and dense['latency_spread'] == pytest.approx(0.16) and dense['bbox_mAP_s'] is None
    assert rnd['bbox_mAP'] == pytest.approx(0.35) and rnd['seeds'] == [0, 2] and rnd['bbox_mAP_seeds'] == [0.3, 0.4]
    assert rnd['evals'] == ['random_b1_s0', 'random_b1_s2'] and not rnd['spread_flag'] and rnd['gmacs'] == 1.0
    table = markdown_table(records, 100.0)
    assert '| 100.0 | 16% (!) | 1.00 | 2.00 |' in table and '(budget 1, mean of 2 seeds)' in table
    assert sparsity_text([[0.5, 0.5]]) == 'uniform 0.5'
