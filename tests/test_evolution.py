"""The evolutionary searchers with fake latency and score functions (no torch, no model): milliseconds per test.

The original strategy (default) is checked rule by rule against issue 7's description; the elitist variant keeps
the tests of its own rules; multi-budget runs (issue 8) are checked for feasibility, filing and resume."""
import json
import random
import zlib
from collections import Counter

import pytest

from sparsevit import schedule
from sparsevit.schedule import (DEFAULT_CHOICES, gene_names, genes_key, genes_to_ratios, make_monotone,
                                mutate_genes_from_sample)
from sparsevit.search import evolution
from sparsevit.search.budgets import Budgets
from sparsevit.search.evolution import ElitistSearcher, EvolutionSearcher, InfeasibleBandError, make_searcher

DEPTHS = (2, 2, 6, 2)
NAMES = gene_names(DEPTHS)
# stage 0 is the most expensive (high resolution), as in Swin: pruning it saves the most
WEIGHTS = dict(zip(NAMES, (9.0, 4.0, 3.0, 3.0, 3.0, 1.0)))


def fake_latency(genes):
    return 50.0 - sum(WEIGHTS[n] * v for n, v in genes.items())


class Fakes:
    """Deterministic latency (dense 50 ms, decreasing with every ratio) and score; counts every call; can raise
    KeyboardInterrupt at a given latency call (a killed run)."""

    def __init__(self, budgets=None, fail_at=None, constant=None):
        self.budgets, self.fail_at, self.constant = budgets, fail_at, constant
        self.latency_calls, self.score_calls = Counter(), Counter()

    def latency(self, genes):
        if self.fail_at is not None and sum(self.latency_calls.values()) == self.fail_at:
            raise KeyboardInterrupt('killed')
        self.latency_calls[genes_key(genes)] += 1
        return fake_latency(genes)

    def score(self, genes):
        if self.budgets is not None:
            assert self.budgets.index(fake_latency(genes)) is not None, 'an infeasible configuration was scored'
        self.score_calls[genes_key(genes)] += 1
        if self.constant is not None:
            return self.constant
        # prefers pruning the cheap late genes over the sensitive early ones; a deterministic tie-breaker
        penalty = sum((2.0 - i * 0.3) * v * v for i, v in enumerate(genes.values()))
        return 45.0 - 5.0 * penalty + 1e-2 * (zlib.crc32(genes_key(genes).encode()) % 7), {'segm_mAP': 40.0}


def band(low=30.0, high=42.0):
    return Budgets([high], low)


def make(cls, fakes, budgets=None, **kwargs):
    kw = dict(population=16, parents=4, seed=0)
    kw.update(kwargs)
    budgets = budgets or band()
    fakes.budgets = fakes.budgets or budgets
    return cls(DEPTHS, fakes.latency, fakes.score, budgets, **kw)


def original(fakes, budgets=None, **kwargs):
    return make(EvolutionSearcher, fakes, budgets, **kwargs)


def elitist(fakes, budgets=None, **kwargs):
    return make(ElitistSearcher, fakes, budgets, **kwargs)


class ScriptedRng:
    """A ``random.Random`` stand-in returning scripted values for ``choice`` and ``random``."""

    def __init__(self, choices, randoms):
        self.choices, self.randoms = list(choices), list(randoms)

    def choice(self, seq):
        value = self.choices.pop(0)
        assert value in seq
        return value

    def random(self):
        return self.randoms.pop(0)


# ---------------------------------------------------------------------------------------------------- budgets
def test_budgets_file_latencies_into_half_open_bands():
    b = Budgets([33, 36, 39, 42], min_latency=20)
    assert [b.index(x) for x in (19.99, 20, 33, 33.01, 36, 38, 42, 42.01)] == [None, 0, 0, 1, 1, 2, 3, None]
    assert b.label(0) == '[20, 33] ms' and b.label(2) == '(36, 39] ms' and b.max == 42
    single = Budgets([42], 37)
    assert [single.index(x) for x in (36.9, 37, 42, 42.1)] == [None, 0, 0, None]  # both ends included
    assert b.reachable(dense_ms=37, sparsest_ms=34) == [False, True, True, False]


@pytest.mark.parametrize('edges, low, match', [
    ([], 0, 'at least one'),
    ([33, 0], 0, 'positive'),
    ([-1], 0, 'positive'),
    ([36, 33], 0, 'strictly ascending, got 36 before 33'),
    ([33, 33], 0, 'strictly ascending'),
    ([33, 36], 34, 'above the first budget'),
])
def test_bad_budgets_raise(edges, low, match):
    with pytest.raises(ValueError, match=match):
        Budgets(edges, low)


# ---------------------------------------------------------------------------------------------------- original
def test_mutation_takes_the_same_position_value_of_a_sorted_fresh_sample():
    parent = dict(zip(NAMES, (0.3, 0.0, 0.2, 0.3, 0.4, 0.1)))
    # the fresh sample draws stage 2 as 0.8, 0.1, 0.5: sorted 0.1, 0.5, 0.8
    fresh_draws = [0.6, 0.7, 0.8, 0.1, 0.5, 0.2]
    cases = [  # which genes mutate (random() < 0.1) -> expected child
        ([1, 1, 0, 1, 1, 1], (0.3, 0.0, 0.1, 0.3, 0.4, 0.1)),  # 2_1 takes the fresh minimum 0.1
        ([1, 1, 1, 1, 0, 1], (0.3, 0.0, 0.2, 0.3, 0.8, 0.1)),  # 2_3 takes the fresh maximum 0.8
        ([1, 1, 1, 0, 1, 1], (0.3, 0.0, 0.2, 0.4, 0.5)[:3] + (0.4, 0.5, 0.1)),  # 2_2 takes 0.5, stage re-sorted
        ([0, 1, 1, 1, 1, 0], (0.6, 0.0, 0.2, 0.3, 0.4, 0.2)),  # single-gene stages take their draw
    ]
    for mutate, expected in cases:
        rng = ScriptedRng(fresh_draws, [0.05 if m == 0 else 0.5 for m in mutate])
        child = mutate_genes_from_sample(parent, rng, DEPTHS, prob=0.1)
        assert list(child) == NAMES
        assert tuple(child.values()) == pytest.approx(expected)
        assert not rng.choices and not rng.randoms, 'one fresh sample and one draw per gene'
    # the same with a real rng: the child is the parent with some positions of the sorted fresh sample, re-sorted
    rng = random.Random(5)
    for _ in range(200):
        probe = random.Random()
        probe.setstate(rng.getstate())
        fresh = schedule.sample_genes(probe, DEPTHS)
        flags = [probe.random() < 0.3 for _ in NAMES]
        child = mutate_genes_from_sample(parent, rng, DEPTHS, prob=0.3)
        mixed = {n: fresh[n] if f else parent[n] for n, f in zip(NAMES, flags)}
        assert child == make_monotone(mixed, DEPTHS)


def test_every_sampled_candidate_is_a_step_cached_and_infeasible_included():
    fakes = Fakes()
    searcher = original(fakes, population=8, parents=2, mutation_prob=0.2)
    searcher.run(400)
    history = searcher.history
    assert len(history) == searcher.steps == 400 and [r['step'] for r in history] == list(range(400))
    cached = [r for r in history if r['cached']]
    infeasible = [r for r in history if not r['feasible']]
    assert cached and infeasible, 'the fakes should produce both'
    assert any(r['cached'] and not r['feasible'] for r in history)
    # nothing measured or scored twice; infeasible never scored (metric -inf: None in the record)
    assert max(fakes.latency_calls.values()) == 1 and max(fakes.score_calls.values()) == 1
    assert len(fakes.latency_calls) == len({genes_key(r['config']) for r in history}) == 400 - len(cached)
    assert all(r['metric'] is None and r['budget'] is None for r in infeasible)
    for r in cached:
        first = next(f for f in history if f['config'] == r['config'])
        assert not first['cached'] and first['step'] < r['step']
        assert (r['latency'], r['metric'], r['feasible']) == (first['latency'], first['metric'], first['feasible'])
    for r in history:
        assert list(r['config']) == NAMES and all(v in DEFAULT_CHOICES for v in r['config'].values())
        genes_to_ratios(r['config'], DEPTHS)  # raises if a stage decreases
    json.dumps(history, allow_nan=False)  # standard JSON


def test_generations_uniform_then_mutation_then_crossover_and_not_elitist():
    """Replays the population bookkeeping of the original from the history alone and checks every rule."""
    fakes = Fakes()
    pop_size, n_parents = 8, 3
    searcher = original(fakes, population=pop_size, parents=n_parents)
    observed = []

    def on_step(s):
        observed.append(([dict(p) for p in s.parents[0]], [r['step'] for r in s.populations[0]]))

    searcher.run(300, on_step=on_step)
    population, parents = [], []
    for record, (seen_parents, seen_population) in zip(searcher.history, observed):
        if len(population) == pop_size:  # before the step: parents = top by metric, population emptied
            parents = sorted(population, key=lambda r: r['metric'], reverse=True)[:n_parents]
            population = []
        if not parents:
            assert record['origin'] == 'random'
        elif len(population) < pop_size // 2:
            assert record['origin'] == 'mutation'
        else:
            assert record['origin'] == 'crossover'
        if record['feasible']:  # new or cached
            population.append(record)
        assert [p['step'] for p in parents] == [p['step'] for p in seen_parents]
        assert [r['step'] for r in population] == seen_population
    origins = Counter(r['origin'] for r in searcher.history)
    assert origins['random'] >= pop_size and origins['mutation'] > 0 and origins['crossover'] > 0
    # not elitist: a full population is emptied (its parents are kept apart, not in the next population)
    sizes = [len(pop) for _, pop in observed]
    assert any(a == pop_size - 1 and b <= 1 for a, b in zip(sizes, sizes[1:])) or pop_size - 1 in sizes
    assert max(sizes) <= pop_size and any(a > b for a, b in zip(sizes, sizes[1:]))


def test_crossover_takes_two_distinct_parents_and_mutation_one(monkeypatch):
    calls, searcher = [], None
    real_crossover, real_mutate = evolution.crossover_genes, evolution.mutate_genes_from_sample

    def pool():
        return [p['config'] for parents in searcher.parents for p in parents]

    def spy_crossover(a, b, rng, depths):
        calls.append(('crossover', a, b, pool()))
        return real_crossover(a, b, rng, depths)

    def spy_mutate(genes, rng, depths, prob, choices):
        calls.append(('mutation', genes, None, pool()))
        return real_mutate(genes, rng, depths, prob, choices)

    monkeypatch.setattr(evolution, 'crossover_genes', spy_crossover)
    monkeypatch.setattr(evolution, 'mutate_genes_from_sample', spy_mutate)
    searcher = original(Fakes(), population=6, parents=2)
    searcher.run(200)
    children = [r for r in searcher.history if r['origin'] != 'random']
    assert len(calls) == len(children) and Counter(c[0] for c in calls) == Counter(r['origin'] for r in children)
    assert sum(c[0] == 'crossover' for c in calls) > 20 and sum(c[0] == 'mutation' for c in calls) > 20
    for (kind, a, b, parents), child in zip(calls, children):
        assert any(a is p for p in parents)
        if kind == 'crossover':
            assert any(b is p for p in parents) and a is not b, 'crossover of one parent with itself'
            # each gene from one of the two, then stages sorted: per stage the multiset comes from the parents
            assert set(child['config'].values()) <= set(a.values()) | set(b.values())


def test_feasible_band_includes_both_ends_and_best_tie_goes_to_the_later_candidate():
    fakes = Fakes(constant=1.0)
    notes = []
    searcher = original(fakes, band(38.0, 44.0), population=6, parents=2,
                        on_record=lambda r, replayed, new_best: notes.append(new_best))
    searcher.run(120)
    feasible = [r for r in searcher.history if r['feasible']]
    assert all(38.0 <= r['latency'] <= 44.0 for r in feasible)
    assert searcher.best is feasible[-1], 'a tie goes to the later candidate'
    # the log gets a record each time the best configuration changes (a cached repeat of the best is no change)
    changes = [r for r, note in zip(searcher.history, notes) if note]
    assert changes[0] is feasible[0]
    keys = [genes_key(r['config']) for r in changes]
    assert all(a != b for a, b in zip(keys, keys[1:]))


def test_best_is_the_highest_metric_over_feasible_candidates():
    fakes = Fakes()
    searcher = original(fakes)
    best = searcher.run(300)
    feasible = [r for r in searcher.history if r['feasible']]
    assert best['metric'] == max(r['metric'] for r in feasible) and best['extra'] == {'segm_mAP': 40.0}
    assert best is [r for r in feasible if r['metric'] == best['metric']][-1]
    assert 30.0 <= best['latency'] <= 42.0


def test_seeded_determinism():
    runs = []
    for seed in (0, 0, 1):
        searcher = original(Fakes(), seed=seed)
        searcher.run(100)
        runs.append(json.dumps(searcher.history))
    assert runs[0] == runs[1] != runs[2]


def test_unreachable_band_runs_its_steps_without_scoring():
    fakes = Fakes()
    searcher = original(fakes, band(40.01, 40.09))  # latencies are multiples of 0.1 apart: none inside
    searcher.check_band()  # dense and sparsest bracket the band: only sampling can tell
    assert searcher.run(50) is None
    assert len(searcher.history) == 50 and not fakes.score_calls
    assert all(r['origin'] == 'random' for r in searcher.history)


def test_resume_after_a_kill_equals_the_uninterrupted_run():
    reference = original(Fakes(), mutation_prob=0.2)
    reference.run(150)
    distinct = len({genes_key(r['config']) for r in reference.history})

    fakes = Fakes(fail_at=distinct * 2 // 3)
    records = []
    killed = original(fakes, mutation_prob=0.2, on_record=lambda r, replayed, new: records.append(json.dumps(r)))
    with pytest.raises(KeyboardInterrupt):
        killed.run(150)
    assert 0 < len(records) < 150

    resumed_fakes, replayed = Fakes(), []
    resumed = original(resumed_fakes, mutation_prob=0.2, on_record=lambda r, rep, new: replayed.append(rep))
    resumed.resume([json.loads(r) for r in records])
    resumed.run(150)
    assert json.dumps(resumed.history) == json.dumps(reference.history)
    assert sum(replayed) == len(records)
    assert not set(fakes.latency_calls) & set(resumed_fakes.latency_calls), 'evaluated twice'
    assert not set(fakes.score_calls) & set(resumed_fakes.score_calls), 'scored twice'
    assert sum(fakes.latency_calls.values()) + sum(resumed_fakes.latency_calls.values()) == distinct
    # a finished run resumed with more steps continues it
    longer = original(Fakes(), mutation_prob=0.2)
    longer.resume(reference.history)
    longer.run(200)
    fresh = original(Fakes(), mutation_prob=0.2)
    fresh.run(200)
    assert json.dumps(longer.history) == json.dumps(fresh.history)


def test_resume_with_other_settings_fails_clearly():
    searcher = original(Fakes())
    searcher.run(40)
    other = original(Fakes(), seed=1)
    other.resume(searcher.history)
    with pytest.raises(ValueError, match='does not match this search: step 0 proposes'):
        other.run(40)


@pytest.mark.parametrize('kwargs, match', [
    (dict(population=1), r'^--population must be >= 2, got 1$'),
    (dict(parents=1), r'^--parents must be in \[2, --population\] = \[2, 16\] \(crossover needs two parents\), got 1$'),
    (dict(parents=17),
     r'^--parents must be in \[2, --population\] = \[2, 16\] \(crossover needs two parents\), got 17$'),
    (dict(mutation_prob=1.5), r'^--mutation-prob must be in \[0, 1\], got 1.5$'),
    (dict(budgets=Budgets([30, 35, 40]), parents=5),
     r'^--parents must give each of the 3 budgets at least 2: >= 6, got 5$'),
    (dict(budgets=Budgets([30, 35, 40]), parents=6, population=5),
     r'^--population must give each of the 3 budgets at least its 2 parents: >= 6, got 5$'),
])
def test_bad_original_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        original(Fakes(), **kwargs)


def test_band_outside_the_space_fails_first():
    with pytest.raises(InfeasibleBandError, match='above the dense model'):
        original(Fakes(), band(55.0, 60.0)).check_band()
    sparsest = 50.0 - 0.8 * sum(WEIGHTS.values())
    with pytest.raises(InfeasibleBandError, match='below the sparsest'):
        original(Fakes(), band(0.0, sparsest - 1)).check_band()
    assert original(Fakes()).check_band() == (50.0, pytest.approx(sparsest))
    with pytest.raises(InfeasibleBandError, match=r'no budget is reachable: budgets 10 15 ms'):
        original(Fakes(), Budgets([10, 15]), parents=4).check_band()


# ---------------------------------------------------------------------------------------------------- budgets
BUDGETS = Budgets([36, 40, 44, 48], min_latency=32)  # sparsest 31.6 ms, dense 50 ms


def test_multi_budget_run_gives_every_budget_a_feasible_best_and_files_each_candidate():
    fakes = Fakes(BUDGETS)
    searcher = original(fakes, BUDGETS, population=32, parents=8, seed=2)
    searcher.check_band()
    assert searcher.targets == [0, 1, 2, 3]
    searcher.run(600)
    assert searcher.share_population == 8 and searcher.share_parents == 2
    assert all(b is not None for b in searcher.bests), 'every budget is reachable with these fakes'
    for i, best in enumerate(searcher.bests):
        low, high = BUDGETS.band(i)
        assert (low <= best['latency'] if i == 0 else low < best['latency']) and best['latency'] <= high
        in_budget = [r for r in searcher.history if r['budget'] == i]
        top = max(r['metric'] for r in in_budget)
        assert best is [r for r in in_budget if r['metric'] == top][-1]
    for r in searcher.history:
        assert r['budget'] == BUDGETS.index(r['latency']) and r['feasible'] == (r['budget'] is not None)
    # one shared cache: nothing measured or scored twice
    assert max(fakes.latency_calls.values()) == 1 and max(fakes.score_calls.values()) == 1
    assert all(len(p) == 2 for p in searcher.parents) and all(len(p) < 8 for p in searcher.populations)


def test_multi_budget_budgets_take_turns_with_their_own_generations(monkeypatch):
    """Replays the per-budget bookkeeping from the history and checks each step's kind and its parents."""
    pairs, real_crossover = [], evolution.crossover_genes
    searcher = None

    def spy_crossover(a, b, rng, depths):
        pairs.append((a, b, [[p['config'] for p in parents] for parents in searcher.parents], searcher.steps % 4))
        return real_crossover(a, b, rng, depths)

    share_pop, share_par = 8, 2
    fakes = Fakes(BUDGETS)
    searcher = original(fakes, BUDGETS, population=4 * share_pop, parents=4 * share_par, seed=1)
    monkeypatch.setattr(evolution, 'crossover_genes', spy_crossover)
    searcher.run(500)
    populations, parents = [[] for _ in range(4)], [[] for _ in range(4)]
    crossovers = iter(pairs)
    for record in searcher.history:
        for b in range(4):
            if len(populations[b]) == share_pop:
                parents[b] = sorted(populations[b], key=lambda r: r['metric'], reverse=True)[:share_par]
                populations[b] = []
        turn = record['step'] % 4
        if not parents[turn]:
            assert record['origin'] == 'random'
        elif len(populations[turn]) < share_pop // 2:
            assert record['origin'] == 'mutation'
        else:
            assert record['origin'] == 'crossover'
            a, b, pools, spy_turn = next(crossovers)
            assert spy_turn == turn and any(a is p for p in pools[turn]), \
                'the first parent is of the budget whose turn it is'
            assert any(b is p for pool in pools for p in pool) and a is not b
        if record['feasible']:
            populations[record['budget']].append(record)
    assert sum(1 for _ in crossovers) == 0 and len(pairs) > 20
    assert any(not any(b is p for p in pools[turn]) for _, b, pools, turn in pairs), \
        'some crossovers pair parents of different budgets'


def test_multi_budget_with_one_budget_is_the_single_band_search():
    a = original(Fakes(), Budgets([42], 30))
    a.run(200)
    b = original(Fakes(), band(30, 42))
    b.run(200)
    assert json.dumps(a.history) == json.dumps(b.history)


def test_multi_budget_resume_reproduces_the_uninterrupted_run():
    reference = original(Fakes(BUDGETS), BUDGETS, population=32, parents=8)
    reference.run(300)
    records = []
    fakes = Fakes(BUDGETS, fail_at=100)
    killed = original(fakes, BUDGETS, population=32, parents=8, on_record=lambda r, *_: records.append(r))
    with pytest.raises(KeyboardInterrupt):
        killed.run(300)
    resumed_fakes = Fakes(BUDGETS)
    resumed = original(resumed_fakes, BUDGETS, population=32, parents=8)
    resumed.resume(json.loads(json.dumps(records)))
    resumed.run(300)
    assert json.dumps(resumed.history) == json.dumps(reference.history)
    assert [b['step'] for b in resumed.bests] == [b['step'] for b in reference.bests]
    assert not set(fakes.latency_calls) & set(resumed_fakes.latency_calls)


def test_unreachable_budget_stays_empty_others_are_served():
    sparsest = 50.0 - 0.8 * sum(WEIGHTS.values())  # 31.6 ms
    budgets = Budgets([sparsest - 2, 40, 46])
    searcher = original(Fakes(budgets), budgets, population=24, parents=6)
    dense, fastest = searcher.check_band()
    assert budgets.reachable(dense, fastest) == [False, True, True] and searcher.targets == [1, 2]
    searcher.run(300)
    assert searcher.bests[0] is None and searcher.bests[1] is not None and searcher.bests[2] is not None


# ---------------------------------------------------------------------------------------------------- elitist
def test_elitist_never_scores_infeasible_and_never_evaluates_duplicates():
    fakes = Fakes()
    searcher = elitist(fakes, mutation_prob=0.3)
    best = searcher.run(120)
    assert searcher.steps == 120 and [r['step'] for r in searcher.history] == list(range(120))
    assert 30.0 <= best['latency'] <= 42.0
    assert best['metric'] == max(r['metric'] for r in searcher.history if r['feasible'])
    infeasible = [r for r in searcher.history if not r['feasible']]
    assert infeasible and all(r['metric'] is None for r in infeasible)
    assert not any(r['cached'] for r in searcher.history)
    keys = [genes_key(r['config']) for r in searcher.history]
    assert len(keys) == len(set(keys))
    assert max(fakes.latency_calls.values()) == 1 and max(fakes.score_calls.values()) == 1
    origins = Counter(r['origin'] for r in searcher.history)
    assert origins['mutation'] > 0 and origins['crossover'] > 0 and origins['random'] > 0


def test_elitist_population_is_parents_plus_children():
    searcher = elitist(Fakes(), population=8, parents=3)
    searcher._on_step = None
    searcher.init_population()
    parents = searcher.top(searcher.population, 3)
    children = searcher.generation()
    assert searcher.population == parents + children
    assert Counter(c['origin'] for c in children) == Counter(mutation=2, crossover=3)  # half of 5, rounded
    assert all(c['iteration'] == 1 for c in children)


def test_elitist_resume_after_a_kill_equals_the_uninterrupted_run():
    reference = elitist(Fakes())
    reference.run(90)
    records = []
    fakes = Fakes(fail_at=60)
    killed = elitist(fakes, on_record=lambda r, *_: records.append(json.dumps(r)))
    with pytest.raises(KeyboardInterrupt):
        killed.run(90)
    resumed_fakes = Fakes()
    resumed = elitist(resumed_fakes)
    resumed.resume([json.loads(r) for r in records])
    resumed.run(90)
    assert json.dumps(resumed.history) == json.dumps(reference.history)
    assert not set(fakes.latency_calls) & set(resumed_fakes.latency_calls)


def test_elitist_impossible_band_gives_up_after_bounded_retries():
    fakes = Fakes()
    searcher = elitist(fakes, band(40.01, 40.09), max_retries=200)
    with pytest.raises(InfeasibleBandError, match='no configuration with latency in'):
        searcher.run(10_000)
    assert sum(fakes.latency_calls.values()) <= 200
    assert not fakes.score_calls


def test_elitist_tiny_space_stops_when_exhausted():
    depths, choices = (2, 2), (0.0, 0.5)  # 4 configurations; 3 of them are in the band

    def latency(genes):
        return 10.0 - 4.0 * genes['backbone.stages.0'] - 2.0 * genes['backbone.stages.1']

    searcher = ElitistSearcher(depths, latency, lambda g: -latency(g), Budgets([10.0], 7.5), population=8,
                               parents=2, choices=choices, max_retries=50)
    best = searcher.run(20)
    assert searcher.exhausted and searcher.iteration == 1
    assert len(searcher.history) == 4 and sum(r['feasible'] for r in searcher.history) == 3
    assert best['latency'] == 8.0 and best['config'] == {'backbone.stages.0': 0.5, 'backbone.stages.1': 0.0}


def test_elitist_crossover_exhaustion_falls_back_to_mutation():
    searcher = elitist(Fakes(), population=16, parents=2, mutation_prob=0.3)
    searcher.run(70)  # 2 parents have few crossover children: mutation fills the remaining slots
    assert searcher.steps == 70 and not searcher.exhausted


@pytest.mark.parametrize('kwargs, match', [
    (dict(population=1), r'^--population must be >= 2, got 1$'),
    (dict(parents=16), r'^--parents must be in \[1, --population - 1\] = \[1, 15\], got 16$'),
    (dict(mutation_prob=1.5), r'^--mutation-prob must be in \[0, 1\], got 1.5$'),
    (dict(mutation_ratio=1.5), r'^mutation ratio must be in \[0, 1\], got 1.5$'),
    (dict(max_retries=0), r'^--max-retries must be >= 1, got 0$'),
    (dict(budgets=Budgets([30, 40])),
     r'^--budgets needs --strategy original \(the elitist strategy searches one band\)$'),
])
def test_bad_elitist_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        elitist(Fakes(), **kwargs)


def test_make_searcher_picks_the_strategy():
    fakes = Fakes()
    assert isinstance(make_searcher('original', DEPTHS, fakes.latency, fakes.score, band()), EvolutionSearcher)
    assert isinstance(make_searcher('elitist', DEPTHS, fakes.latency, fakes.score, band()), ElitistSearcher)
    with pytest.raises(ValueError, match="unknown search strategy 'greedy'"):
        make_searcher('greedy', DEPTHS, fakes.latency, fakes.score, band())
