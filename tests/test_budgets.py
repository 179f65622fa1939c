"""Latency limits and budgets: milliseconds (the original's plain numbers) and fractions of the dense latency
(``0.85x``), on a deterministic fake clock (no torch, no model).

A relative band must give the same search when every latency is scaled (the machine 1.5x slower or faster), an
absolute band must search exactly as before relative bands existed (recorded histories), and a search that finds
nothing feasible must say, in one line, what to change."""
import hashlib
import json
import zlib

import pytest

from sparsevit.schedule import gene_names, genes_key
from sparsevit.search.budgets import Budgets, Limit, infeasible_message
from sparsevit.search.evolution import ElitistSearcher, EvolutionSearcher, InfeasibleBandError

DEPTHS = (2, 2, 6, 2)
NAMES = gene_names(DEPTHS)
#: stage 0 is the most expensive (high resolution), as in Swin: pruning it saves the most
WEIGHTS = dict(zip(NAMES, (9.0, 4.0, 3.0, 3.0, 3.0, 1.0)))
DENSE_MS = 50.0
SPARSEST_MS = DENSE_MS - 0.8 * sum(WEIGHTS.values())  # 31.6 ms


class Clock:
    """Deterministic latency of a configuration (dense 50 ms, each ratio saving its stage's weight), times
    ``speed``: 1.5 is a machine 1.5x slower."""

    def __init__(self, speed: float = 1.0):
        self.speed, self.calls = speed, 0

    def __call__(self, genes) -> float:
        self.calls += 1
        return self.speed * (DENSE_MS - sum(WEIGHTS[n] * v for n, v in genes.items()))


def score(genes):
    """Prefers pruning the cheap late genes over the sensitive early ones; a deterministic tie-breaker."""
    penalty = sum((2.0 - i * 0.3) * v * v for i, v in enumerate(genes.values()))
    return 45.0 - 5.0 * penalty + 1e-2 * (zlib.crc32(genes_key(genes).encode()) % 7), {'segm_mAP': 40.0}


def limits(*texts):
    return [Limit.parse(t) for t in texts]


# ---------------------------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize('text, value, relative', [
    ('42', 42.0, False), ('0', 0.0, False), ('37.5', 37.5, False), ('0.85x', 0.85, True), ('1x', 1.0, True),
    (' 0.6X ', 0.6, True), ('.5x', 0.5, True), ('-1', -1.0, False),  # a negative ms is rejected by the checks
])
def test_limits_parse_milliseconds_and_fractions(text, value, relative):
    limit = Limit.parse(text)
    assert (limit.value, limit.relative) == (value, relative)
    assert limit.text == text.strip().lower() and str(limit) == limit.text


@pytest.mark.parametrize('text, match', [
    ('0x', r"bad latency '0x': a fraction of the dense latency must be in \(0, 1\]"),
    ('1.2x', r"bad latency '1.2x': a fraction of the dense latency must be in \(0, 1\]"),
    ('abcx', r"bad latency 'abcx': give milliseconds \(e.g. 42\) or a fraction"),
    ('-0.5x', "bad latency '-0.5x'"),
    ('x', "bad latency 'x'"),
    ('fast', "bad latency 'fast'"),
    ('nan', 'must be a finite number'),
    ('inf', 'must be a finite number'),
])
def test_bad_limits_fail_with_one_message(text, match):
    with pytest.raises(ValueError, match=match):
        Limit.parse(text)


def test_limit_in_milliseconds():
    assert Limit.parse('42').ms(None) == 42.0 and Limit.parse('0.5x').ms(80.0) == 40.0
    with pytest.raises(ValueError, match='needs the dense latency'):
        Limit.parse('0.5x').ms(None)


@pytest.mark.parametrize('edges, low, band, match', [
    (['0.85x'], '40', True, r'--max and --min mix fractions of the dense latency \(x\) with milliseconds'),
    (['42'], '0.6x', True, 'mix fractions'),
    (['0.6x', '40'], '0', False, '--budgets and --min mix'),
    (['0.5x'], '0.6x', True, '--min 0.6x is above --max 0.5x'),
    (['0.7x', '0.6x'], '0', False, '--budgets must be strictly ascending, got 0.7x before 0.6x'),
    (['0.6x', '0.7x'], '0.6x', False, r'--min 0.6x is not below the first budget 0.6x; the first budget accepts '
                                      r'\[--min, 0.6x\]$'),
    (['42'], '45', True, '--min 45 is above --max 42'),
    (['-1'], '0', True, '--max must be a positive latency in ms, got -1'),
    (['0', '33'], '0', False, '--budgets must be positive latencies in ms, got 0'),
    (['36', '33'], '0', False, '--budgets must be strictly ascending, got 36 before 33'),
    (['33', '36'], '33', False, r'--min 33 is not below the first budget 33; the first budget accepts '
                                r'\[--min, 33\] ms'),
])
def test_bad_budgets_name_the_flag(edges, low, band, match):
    with pytest.raises(ValueError, match=match):
        Budgets.from_limits(limits(*edges), Limit.parse(low), band=band)


def test_relative_budgets_resolve_against_the_dense_latency():
    b = Budgets.from_limits(limits('0.6x', '0.72x', '0.86x'), Limit.parse('0.4x'))
    assert b.relative and not b.resolved and b.label(1) == '(0.6x, 0.72x] of dense'
    with pytest.raises(ValueError, match='resolved against the dense latency first'):
        b.index(30.0)
    r = b.resolve(50.0)
    assert r.edges == pytest.approx((30.0, 36.0, 43.0)) and r.min == pytest.approx(20.0) and r.dense_ms == 50.0
    assert r.label(0) == '[0.4x, 0.6x] = [20, 30] ms' and r.label(2) == '(0.72x, 0.86x] = (36, 43] ms'
    assert r.fractions == (0.6, 0.72, 0.86) and r.min_fraction == 0.4 and r.texts() == (['0.6x', '0.72x', '0.86x'],
                                                                                          '0.4x')
    assert [r.index(x) for x in (19.9, 20.0, 30.0, 30.1, 43.0, 43.1)] == [None, 0, 0, 1, 2, None]
    saved = r.to_dict()
    assert saved['relative'] and saved['dense_ms'] == 50.0 and saved['min'] == dict(text='0.4x', ms=20.0,
                                                                                    fraction=0.4)
    assert saved['budgets'][1] == dict(text='0.72x', ms=pytest.approx(36.0), fraction=0.72)
    assert json.loads(json.dumps(saved)) == saved
    band = Budgets.from_limits(limits('0.85x'), Limit.parse('0'), band=True).resolve(80.0)  # --min 0 goes with x
    assert band.describe() == 'band [0, 0.85x] of dense 80.00 ms = [0, 68] ms' and band.min == 0.0
    with pytest.raises(ValueError, match='already resolved'):
        band.resolve(80.0)
    ms = Budgets.from_limits(limits('42'), Limit.parse('37'), band=True)
    assert ms.resolve(99.0) is ms and ms.describe() == 'band [37, 42] ms' and ms.fractions is None
    assert ms.to_dict() == dict(relative=False, dense_ms=None, min=dict(text='37', ms=37.0, fraction=None),
                                budgets=[dict(text='42', ms=42.0, fraction=None)])


# ---------------------------------------------------------------------------------------------------- searches
def history_of(searcher, steps):
    searcher.check_band()
    searcher.run(steps)
    return searcher.history


def same_search(a, b, speed):
    """The same steps, configurations, feasibility, budgets and scores; latencies scaled by ``speed``."""
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert {k: v for k, v in x.items() if k != 'latency'} == {k: v for k, v in y.items() if k != 'latency'}
        assert y['latency'] == pytest.approx(speed * x['latency'])


@pytest.mark.parametrize('speed', [1.5, 1 / 1.5])
@pytest.mark.parametrize('strategy, edges, low, steps', [
    ('original', ['0.845x'], '0.725x', 300),  # band ends between the fake latencies (multiples of 0.1 ms):
    ('elitist', ['0.845x'], '0.725x', 200),   # a latency exactly at an end could round either way when scaled
    ('original', ['0.725x', '0.805x', '0.885x', '0.965x'], '0.645x', 400),
])
def test_a_relative_band_searches_the_same_on_a_slower_or_faster_machine(strategy, edges, low, steps, speed):
    def make(clock):
        budgets = Budgets.from_limits(limits(*edges), Limit.parse(low), band=len(edges) == 1)
        cls = EvolutionSearcher if strategy == 'original' else ElitistSearcher
        kw = dict(population=32, parents=8) if len(edges) > 1 else dict(population=16, parents=4)
        return cls(DEPTHS, clock, score, budgets, seed=3, **kw)
    base, scaled = make(Clock(1.0)), make(Clock(speed))
    same_search(history_of(base, steps), history_of(scaled, steps), speed)
    assert scaled.budgets.edges == pytest.approx(tuple(speed * e for e in base.budgets.edges))
    assert sum(r['feasible'] for r in base.history) > steps // 4
    assert base.settings()['relative_budgets'] == dict(budgets=edges, min=low) == scaled.settings()['relative_budgets']
    # the same band in milliseconds, fixed for the first machine, is another search on the second
    ms = Budgets.from_limits(limits(*[f'{e:.6g}' for e in base.budgets.edges]), Limit.parse(f'{base.budgets.min:.6g}'),
                             band=len(edges) == 1)
    cls = type(base)
    kw = dict(population=base.population_size, parents=base.num_parents)
    absolute = cls(DEPTHS, Clock(speed), score, ms, seed=3, **kw)
    try:
        moved = history_of(absolute, steps)
    except InfeasibleBandError:
        return  # the band fell off the search space altogether
    assert [r['feasible'] for r in moved] != [r['feasible'] for r in base.history]


def test_a_resumed_relative_search_resolves_with_the_latencies_it_saw_first():
    budgets = Budgets.from_limits(limits('0.84x'), Limit.parse('0.72x'), band=True)
    first = EvolutionSearcher(DEPTHS, Clock(1.0), score, budgets, population=16, parents=4, seed=1)
    first.check_band()
    first.run(60)
    reference = EvolutionSearcher(DEPTHS, Clock(1.0), score, budgets, population=16, parents=4, seed=1)
    reference.check_band()
    reference.run(120)
    # resumed on a machine now 1.5x slower: the saved dense and sparsest latencies keep the band in milliseconds
    resumed = EvolutionSearcher(DEPTHS, Clock(1.5), score, budgets, population=16, parents=4, seed=1)
    assert resumed.check_band(*first.reference) == (DENSE_MS, pytest.approx(SPARSEST_MS))
    assert resumed.budgets.edges == first.budgets.edges and resumed.settings() == first.settings()
    resumed.resume(json.loads(json.dumps(first.history)))
    resumed.run(120)
    assert [r['config'] for r in resumed.history[:60]] == [r['config'] for r in reference.history[:60]]
    assert resumed.steps == 120


#: sha256 of the histories of searches with absolute bands (milliseconds), recorded before relative bands existed
#: (the original's behaviour must not change): original one band, elitist one band, original four budgets.
RECORDED = {
    'original_band': 'df5e00e542ee1a65f7da1eb6afa741513cc4914f2496e2419bb26fef02269ae2',
    'elitist_band': '07ace0bca9502dcf419bb49823f35d6b65e35ce898ada736c0a422f65fa08bf8',
    'original_budgets': '2e59af112113d59a00953aab1a50870e8c5df0b047247802c8434e5067e3d08e',
}


def absolute_histories():
    band = Budgets([42.0], 37.0)
    budgets = Budgets([36, 40, 44, 48], min_latency=32)
    runs = {
        'original_band': (EvolutionSearcher(DEPTHS, Clock(), score, band, population=16, parents=4, seed=0), 300),
        'elitist_band': (ElitistSearcher(DEPTHS, Clock(), score, band, population=16, parents=4, seed=0), 200),
        'original_budgets': (EvolutionSearcher(DEPTHS, Clock(), score, budgets, population=32, parents=8, seed=2),
                             400),
    }
    out = {}
    for name, (searcher, steps) in runs.items():
        searcher.check_band()
        searcher.run(steps)
        out[name] = hashlib.sha256(json.dumps(searcher.history, sort_keys=True).encode()).hexdigest()
    return out


def test_absolute_bands_search_exactly_as_before():
    assert absolute_histories() == RECORDED


#: sha256 of all that a searcher gives its caller (history, every on_record call, bests, best, turns, settings,
#: state, band, steps outside it) and of a run resumed from the first 40 % of its history, for the original and the
#: elitist strategy, each with one band (``--max/--min``) and with several budgets (``--budgets``), built as
#: tools/search.py builds them (``Budgets.from_limits``), in milliseconds and as fractions of dense; recorded
#: before a band became a search with one budget (the search must not change).
RECORDED_RUNS = {
    'original_band': ['8cc045973ce41a01be1b1af657a4bd259e200c4c3d6555a92da639e47c6d333c',
                      'd3d41856a88780434d896a9d64dbb96472854f4a0cbe1a0d9da186d1042fff85'],
    'elitist_band': ['13383d39141300a6dca4b8d4303c31ce3b5601dd0184c53f296eed66ebfc3ce3',
                     '60ff44c30952ba9be479c2f1359a0127d18f3e27e99c4ce198d5f42935046efb'],
    'original_budgets': ['e2ee7d3cd265cbd0151aae8d968507fd5da18256b203bfe220c8e2ce997e689a',
                         '430a372dc71d43cfcd98354f45c2804a3b0eeb8451c3497d74524d956e056f27'],
    'original_band_relative': ['7732783f7f90bc024c5a0b28c959612db6918d1dd56cde1ccad9277dca373bd9',
                               '97bd3fdf846e3cb49a7b64e85be7d8b9fada1af25f6f1dbaa6beb947e7b2fa54'],
    'elitist_band_relative': ['d6ccd8549da9423f722c9eed72906c94feb5e2ddc5e5ebc2c1e60ebebd4992b1',
                              'b6496b761ee35bb3c0c0ee390b656d8ab18e441bddbfc72925a86b4add9b2e2b'],
    'original_budgets_relative': ['a3449a2a40387f5ef102c1381c2c997a2677013966c60a79690271540f3cd20b',
                                  'edd5065c13cbb581ef82073338a6c64bcc50a40551616e00c8b51847b3e97586'],
    'original_budgets_unreachable': ['96eb28bb40f42ecee4c76a718042ee1ecb98130093aa08ef1c5055dcba90669c',
                                     '70673a0e3a010c2cd89350553bce5cf830bb6d66bc9893672711736864256bb1'],
    'original_one_budget': ['8cc045973ce41a01be1b1af657a4bd259e200c4c3d6555a92da639e47c6d333c',
                            'd3d41856a88780434d896a9d64dbb96472854f4a0cbe1a0d9da186d1042fff85'],
    'pooled_budgets': ['4b424ac5d43d08a665bcafb0bd617928cf9b1e98f541e834d0ace84dbbb3084c',
                       '030070d2075288bc81b4d1e94c5a4ae34a16ae31eeccd04a009326be0053ef0b'],
}

#: name -> (strategy, edges, --min, band, settings, seed, steps)
RUNS = {
    'original_band': ('original', ['42'], '37', True, dict(population=16, parents=4), 0, 300),
    'elitist_band': ('elitist', ['42'], '37', True, dict(population=16, parents=4), 0, 200),
    'original_budgets': ('original', ['36', '40', '44', '48'], '32', False, dict(population=32, parents=8), 2, 400),
    'original_band_relative': ('original', ['0.84x'], '0.72x', True, dict(population=16, parents=4), 1, 300),
    'elitist_band_relative': ('elitist', ['0.84x'], '0.72x', True, dict(population=16, parents=4), 1, 200),
    'original_budgets_relative': ('original', ['0.725x', '0.805x', '0.885x', '0.965x'], '0.645x', False,
                                  dict(population=32, parents=8), 3, 400),
    # the first two budgets lie below the sparsest configuration (31.6 ms): they take no turns
    'original_budgets_unreachable': ('original', ['20', '30', '40', '48'], '0', False, dict(population=32, parents=8),
                                     4, 300),
    'original_one_budget': ('original', ['42'], '37', False, dict(population=16, parents=4), 0, 300),  # --budgets 42
    'pooled_budgets': ('pooled', ['36', '40', '44', '48'], '32', False, dict(population=32, parents=8), 2, 400),
}


def searcher_class(strategy):
    if strategy == 'pooled':
        from sparsevit.search.pooled import PooledSearcher
        return PooledSearcher
    return EvolutionSearcher if strategy == 'original' else ElitistSearcher


def run_outputs(name, resume_from=None):
    """Everything the searcher of ``RUNS[name]`` gives its caller, as JSON (resumed from the first records of
    ``resume_from`` when given)."""
    strategy, edges, low, band, kw, seed, steps = RUNS[name]
    calls = []
    budgets = Budgets.from_limits(limits(*edges), Limit.parse(low), band=band)
    searcher = searcher_class(strategy)(DEPTHS, Clock(), score, budgets, seed=seed, **kw,
                                        on_record=lambda r, replayed, new: calls.append([r['step'], replayed, new]))
    searcher.check_band()
    if resume_from is not None:
        searcher.resume(json.loads(json.dumps(resume_from[:len(resume_from) * 2 // 5])))
    searcher.run(steps)
    best = searcher.best
    return dict(history=searcher.history, calls=calls, best=None if best is None else best['step'],
                bests=[None if b is None else b['step'] for b in searcher.bests], targets=searcher.targets,
                settings=searcher.settings(), state=searcher.state_dict(), band=searcher.budgets.to_dict(),
                describe=searcher.budgets.describe(), labels=[searcher.budgets.label(i) for i in range(len(budgets))],
                reference=list(searcher.reference), outside=list(searcher.outside()))


def sha(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize('name', sorted(RUNS))
def test_bands_and_budgets_search_exactly_as_recorded(name):
    fresh = run_outputs(name)
    resumed = run_outputs(name, resume_from=fresh['history'])
    assert resumed['history'] == fresh['history'] and resumed['calls'][:len(fresh['history']) * 2 // 5] == [
        [step, True, new] for step, _, new in fresh['calls'][:len(fresh['history']) * 2 // 5]]
    assert sum(r['feasible'] for r in fresh['history']) > 10
    assert [sha(fresh), sha(resumed)] == RECORDED_RUNS[name]
    if name in RECORDED:  # the tool's Budgets.from_limits searches as the plain Budgets of the older record
        assert sha(fresh['history']) == RECORDED[name]


def test_the_elitist_strategy_refuses_several_budgets():
    budgets = Budgets.from_limits(limits('36', '40', '44', '48'), Limit.parse('32'))
    with pytest.raises(ValueError, match='the elitist strategy searches one band'):
        ElitistSearcher(DEPTHS, Clock(), score, budgets, population=32, parents=8)


def test_plain_budgets_keep_their_settings_and_labels():
    b = Budgets([33, 36, 39, 42], min_latency=20)
    assert not b.relative and b.resolved and b.label(0) == '[20, 33] ms' and b.label(2) == '(36, 39] ms'
    searcher = EvolutionSearcher(DEPTHS, Clock(), score, b, population=16, parents=8)
    assert 'relative_budgets' not in searcher.settings()


# ---------------------------------------------------------------------------------------------------- errors
def test_no_feasible_step_gives_the_numbers_to_act_on():
    # a band of 40.01-40.09 ms: reachable (dense 50, sparsest 31.6) but almost no configuration lies in it
    searcher = EvolutionSearcher(DEPTHS, Clock(), score, Budgets([40.09], 40.01), population=16, parents=4)
    searcher.check_band()
    searcher.run(30)
    below, above = searcher.outside()
    assert below + above == 30 and below > 0 and above > 0
    with pytest.raises(InfeasibleBandError) as err:
        searcher.require_feasible('table')
    text = str(err.value)
    assert '\n' not in text
    assert text == (f'the search found no configuration inside the latency band [40.01, 40.09] ms in 30 steps: '
                    f'dense 50.00 ms, sparsest 31.60 ms (table); {below} step(s) below the band, {above} above; '
                    f'as fractions of the dense latency: --max 0.802x --min 0.8x; widen the band or run more --iters')
    # relative: no fractions to suggest, the band shows both forms
    rel = EvolutionSearcher(DEPTHS, Clock(2.0), score,
                            Budgets.from_limits(limits('0.8018x'), Limit.parse('0.8002x'), band=True),
                            population=16, parents=4)
    rel.check_band()
    rel.run(30)
    with pytest.raises(InfeasibleBandError, match=r'inside the latency band \[0.8002x, 0.8018x\] of dense 100.00 ms = '
                                                  r'\[80.02, 80.18\] ms in 30 steps: dense 100.00 ms, sparsest 63.20 '
                                                  r'ms \(measured\); \d+ step\(s\) below the band, \d+ above; widen'):
        rel.require_feasible('measured')
    # a band partly above dense, in ms: the fractions say so
    text = infeasible_message(Budgets([60.0], 45.0), 10, 50.0, 31.6, 0, 0, 'table')
    assert '--max 1.2x --min 0.9x (above 1x is slower than dense)' in text
    multi = infeasible_message(Budgets([35.0, 40.0], 33.0), 10, 50.0, 31.6, 4, 6, 'table')
    assert 'budgets [33, 35] ms, (35, 40] ms in 10 steps' in multi and '--budgets 0.7x 0.8x --min 0.66x' in multi


def test_relative_band_below_the_sparsest_suggests_a_fraction():
    budgets = Budgets.from_limits(limits('0.5x'), Limit.parse('0.3x'), band=True)
    with pytest.raises(InfeasibleBandError, match=r'below the sparsest configuration \(31.60 ms\), the fastest one: '
                                                  r'raise --max above 0.632x'):
        EvolutionSearcher(DEPTHS, Clock(), score, budgets, population=16, parents=4).check_band()
    with pytest.raises(InfeasibleBandError, match=r'no budget is reachable: budgets 0.3x 0.5x \(from --min 0\) lie '
                                                  r'outside \[31.60, 50.00\] ms.*\(\[0.632x, 1x\]\)'):
        EvolutionSearcher(DEPTHS, Clock(), score, Budgets.from_limits(limits('0.3x', '0.5x'), Limit.parse('0')),
                          population=16, parents=4).check_band()
