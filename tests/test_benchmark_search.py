"""tools/benchmark_search.py and sparsevit.search.benchmark at tiny settings on a synthetic latency table (no build,
no timing): it runs, its fake objective is deterministic, and its bookkeeping of bests and scored configurations is
right."""
import hashlib
import itertools
import json
import os.path as osp
import re

from sparsevit.schedule import DEFAULT_CHOICES, gene_names
from sparsevit.search import benchmark
from sparsevit.search.latency_table import LatencyTable, entry_name
from tools import benchmark_search as bench

DEPTHS = (2, 2, 6, 2)


def synthetic_table(path: str) -> None:
    """Stage costs that shrink with the kept fraction, as the smoothed demo table."""
    stages = []
    for i, n in enumerate((1, 1, 3, 1)):
        entries = {}
        for combo in itertools.combinations_with_replacement(DEFAULT_CHOICES, n):
            kept = sum(benchmark.kept_fraction(i, v) for v in combo) / n
            entries[entry_name(combo)] = (4 - i) * (2.0 + 10.0 * kept)
        stages.append(entries)
    key = dict(img_size=224, batch_size=4, device='cpu', model=dict(depths=list(DEPTHS)),
               choices=list(DEFAULT_CHOICES))
    LatencyTable(key, 5.0, stages).save(path)


def test_fake_score_is_fixed_and_prefers_dense():
    dense = dict.fromkeys(gene_names(DEPTHS), 0.0)
    pruned = dict(dense, **{'backbone.stages.0': 0.5})
    assert benchmark.fake_score(dense) == benchmark.fake_score(dict(dense))
    assert benchmark.fake_score(dense) > benchmark.fake_score(pruned)
    assert abs(benchmark.fake_score(dense) - benchmark.DENSE_SCORE) < 5 * benchmark.NOISE


def test_best_bookkeeping():
    cfg = [dict.fromkeys(gene_names(DEPTHS), v) for v in (0.0, 0.1, 0.2)]
    history = [dict(feasible=False, cached=False, budget=None, metric=None, config=cfg[0]),
               dict(feasible=True, cached=False, budget=0, metric=1.0, config=cfg[1]),
               dict(feasible=True, cached=True, budget=0, metric=1.0, config=cfg[1]),
               dict(feasible=True, cached=False, budget=1, metric=3.0, config=cfg[2])]
    assert benchmark.best_after(history, [1, 2, 4]) == [dict(steps=1, best=None, scored=0),
                                                        dict(steps=2, best=1.0, scored=1),
                                                        dict(steps=4, best=3.0, scored=2)]
    assert benchmark.best_after(history, [4], budget=0)[0]['best'] == 1.0
    assert benchmark.best_by_scored(history, [1, 2, 3]) == [1.0, 3.0, None]


#: sha256 of the printed tables (the table's path and the run time taken out) and of the JSON results at the tiny
#: settings below, recorded before the strategy, the enumeration and the analysis moved into the package
RECORDED = dict(printed='6349a3e73ea63b32ddce2fbf3c1f5ce3b36d76b00473ad3dee9288c9641cfa63',
                json='c966183375280e63c4a4d1b50f35f49ecf3b2fd543bdd56af523a202156ef38d')


def test_runs_at_tiny_settings(tmp_path, capsys):
    table = str(tmp_path / 'table.json')
    synthetic_table(table)
    out = str(tmp_path / 'results.json')
    assert bench.main(['--table', table, '--seeds', '2', '--steps', '50', '200', '--evaluations', '10', '20',
                       '--multi-steps', '200', '--population', '16', '--parents', '8', '--json', out]) == 0
    text = capsys.readouterr().out
    assert '| steps | original: best' in text and '| 200 | mean regret |' in text
    results = json.load(open(out))
    assert [r['steps'] for r in results['strategies']['by_steps']] == [50, 200]
    row = results['budgets']['rows'][0]
    assert set(row['mean_regret']) == {'multi-budget', '4 single-band', 'multi, pooled parents'}
    assert all(regret >= 0 for regret in row['mean_regret'].values()), 'nothing beats the enumerated optimum'
    printed = re.sub(r'^\(\d+ s\)$', '(T s)', text.replace(osp.relpath(table, bench.ROOT), '<table>'), flags=re.M)
    assert '(T s)' in printed and '<table>' in printed
    recorded = dict(printed=hashlib.sha256(printed.encode()).hexdigest(),
                    json=hashlib.sha256(open(out, 'rb').read()).hexdigest())
    assert recorded == RECORDED, recorded
