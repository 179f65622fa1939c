"""The evolutionary searcher with fake latency and score functions (no torch, no model): milliseconds per test."""
import json
import zlib
from collections import Counter

import pytest

from sparsevit.schedule import DEFAULT_CHOICES, gene_names, genes_key, genes_to_ratios
from sparsevit.search.evolution import EvolutionSearcher, InfeasibleBandError

DEPTHS = (2, 2, 6, 2)
NAMES = gene_names(DEPTHS)
# stage 0 is the most expensive (high resolution), as in Swin: pruning it saves the most
WEIGHTS = dict(zip(NAMES, (9.0, 4.0, 3.0, 3.0, 3.0, 1.0)))


class Fakes:
    """Deterministic latency (dense 50 ms, decreasing with every ratio) and score; counts every call."""

    def __init__(self, band=None, fail_at=None):
        self.band, self.fail_at = band, fail_at
        self.latency_calls, self.score_calls = Counter(), Counter()

    def latency(self, genes):
        if self.fail_at is not None and sum(self.latency_calls.values()) == self.fail_at:
            raise KeyboardInterrupt('killed')
        self.latency_calls[genes_key(genes)] += 1
        return fake_latency(genes)

    def score(self, genes):
        lat = fake_latency(genes)
        if self.band is not None:
            assert self.band[0] <= lat <= self.band[1], 'an infeasible configuration was scored'
        self.score_calls[genes_key(genes)] += 1
        # prefers pruning the cheap late genes over the sensitive early ones; a deterministic tie-breaker
        penalty = sum((2.0 - i * 0.3) * v * v for i, v in enumerate(genes.values()))
        return 0.45 - 0.05 * penalty + 1e-4 * (zlib.crc32(genes_key(genes).encode()) % 7), {'segm_mAP': 0.4}


def fake_latency(genes):
    return 50.0 - sum(WEIGHTS[n] * v for n, v in genes.items())


def make(fakes, band=(30.0, 42.0), **kwargs):
    kw = dict(population=16, parents=4, seed=0)
    kw.update(kwargs)
    return EvolutionSearcher(DEPTHS, fakes.latency, fakes.score, band[1], band[0], **kw)


def test_seeded_determinism():
    runs = []
    for seed in (0, 0, 1):
        searcher = make(Fakes(), seed=seed)
        searcher.run(4)
        runs.append(json.dumps(searcher.history))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_never_infeasible_and_best_is_best_feasible():
    band = (30.0, 42.0)
    fakes = Fakes(band)
    searcher = make(fakes, band)
    best = searcher.run(5)
    assert band[0] <= best['latency'] <= band[1] and best['feasible']
    assert all(band[0] <= r['latency'] <= band[1] for r in searcher.population)
    infeasible = [r for r in searcher.history if not r['feasible']]
    assert infeasible, 'the fake band should reject some configurations'
    assert all(r['metric'] is None and genes_key(r['config']) not in fakes.score_calls for r in infeasible)
    assert best['metric'] == max(r['metric'] for r in searcher.history if r['feasible'])
    assert best['extra'] == {'segm_mAP': 0.4}


def test_children_stay_in_space_and_duplicates_are_never_evaluated():
    fakes = Fakes()
    searcher = make(fakes, mutation_prob=0.3)
    searcher.run(6)
    origins = Counter(r['origin'] for r in searcher.history)
    assert origins['mutation'] > 0 and origins['crossover'] > 0 and origins['random'] > 0
    for r in searcher.history:
        assert list(r['config']) == NAMES
        assert all(v in DEFAULT_CHOICES for v in r['config'].values())
        genes_to_ratios(r['config'], DEPTHS)  # raises if a stage decreases
    keys = [genes_key(r['config']) for r in searcher.history]
    assert len(keys) == len(set(keys))
    assert max(fakes.latency_calls.values()) == 1 and max(fakes.score_calls.values()) == 1
    assert len(searcher.population) == 16 and searcher.iteration == 6


def test_population_is_parents_plus_children():
    searcher = make(Fakes(), population=8, parents=3)
    searcher.run(0)
    parents = searcher.top(searcher.population, 3)
    children = searcher.step()
    assert searcher.population == parents + children
    assert Counter(c['origin'] for c in children) == Counter(mutation=2, crossover=3)  # half of 5, rounded
    assert all(c['iteration'] == 1 for c in children)


def test_small_settings_work():
    searcher = make(Fakes(), population=8, parents=3, seed=3)
    best = searcher.run(3)
    assert best is not None and searcher.iteration == 3 and len(searcher.population) == 8


def test_resume_after_interruption_equals_uninterrupted_run():
    reference = make(Fakes())
    reference.run(5)
    total_calls = len(reference.history)

    fakes = Fakes(fail_at=total_calls * 2 // 3)  # killed in the middle of an iteration
    saved = {}
    records = []
    interrupted = make(fakes, on_record=lambda r, replayed: records.append(json.dumps(r)))
    with pytest.raises(KeyboardInterrupt):
        interrupted.run(5, on_iteration=lambda s: saved.update(state=json.dumps(s.state_dict())))
    state = json.loads(saved['state'])
    assert state['num_records'] < len(records), 'the kill should leave records after the last saved state'

    resumed_fakes = Fakes()
    replayed = []
    resumed = make(resumed_fakes, on_record=lambda r, rep: replayed.append(rep))
    resumed.load_state_dict(state, [json.loads(r) for r in records])
    resumed.run(5)
    assert json.dumps(resumed.history) == json.dumps(reference.history)
    assert sum(replayed) == len(records) - state['num_records']
    evaluated_twice = set(fakes.latency_calls) & set(resumed_fakes.latency_calls)
    assert not evaluated_twice
    assert sum(fakes.latency_calls.values()) + sum(resumed_fakes.latency_calls.values()) == total_calls


def test_resume_rejects_other_settings():
    searcher = make(Fakes())
    searcher.run(1)
    state = json.loads(json.dumps(searcher.state_dict()))
    other = make(Fakes(), parents=5)
    with pytest.raises(ValueError, match='parents=4'):
        other.load_state_dict(state, searcher.history)
    with pytest.raises(ValueError, match='history has'):
        make(Fakes()).load_state_dict(state, searcher.history[:3])


def test_band_outside_the_space_fails_first():
    with pytest.raises(InfeasibleBandError, match='above the dense model'):
        make(Fakes(), band=(55.0, 60.0)).check_band()
    sparsest = 50.0 - 0.8 * sum(WEIGHTS.values())
    with pytest.raises(InfeasibleBandError, match='below the sparsest'):
        make(Fakes(), band=(0.0, sparsest - 1)).check_band()
    assert make(Fakes()).check_band() == (50.0, pytest.approx(sparsest))


def test_impossible_band_gives_up_after_bounded_retries():
    fakes = Fakes()
    # latencies are 50 - (multiples of 0.1): a band strictly between two of them cannot be met
    searcher = make(fakes, band=(40.01, 40.09), max_retries=200)
    searcher.check_band()  # dense and sparsest bracket the band: only sampling can tell
    with pytest.raises(InfeasibleBandError, match='no configuration with latency in'):
        searcher.run(3)
    assert sum(fakes.latency_calls.values()) <= 200 + 2
    assert not fakes.score_calls


def test_tiny_space_stops_when_exhausted():
    depths, choices = (2, 2), (0.0, 0.5)  # 4 configurations; 3 of them are in the band

    def latency(genes):
        return 10.0 - 4.0 * genes['backbone.stages.0'] - 2.0 * genes['backbone.stages.1']

    searcher = EvolutionSearcher(depths, latency, lambda g: -latency(g), 10.0, 7.5, population=8, parents=2,
                                 choices=choices, max_retries=50)
    best = searcher.run(20)
    assert searcher.exhausted and searcher.iteration == 1
    assert len(searcher.history) == 4 and sum(r['feasible'] for r in searcher.history) == 3
    assert best['latency'] == 8.0 and best['config'] == {'backbone.stages.0': 0.5, 'backbone.stages.1': 0.0}


def test_crossover_exhaustion_falls_back_to_mutation():
    searcher = make(Fakes(), population=16, parents=2, mutation_prob=0.3)
    searcher.run(4)  # 2 parents have few crossover children: mutation fills the remaining slots
    assert len(searcher.population) == 16 and not searcher.exhausted


@pytest.mark.parametrize('kwargs, match', [
    (dict(band=(45.0, 40.0)), 'above max latency'),
    (dict(population=1), 'population must be >= 2'),
    (dict(parents=16), r'parents must be in \[1, population - 1\] = \[1, 15\]'),
    (dict(mutation_prob=1.5), 'mutation probability'),
    (dict(max_retries=0), 'max retries'),
])
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(Fakes(), **kwargs)
