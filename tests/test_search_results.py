"""tools/search.py's ``main`` on a fake objective: the model, the latency measurement, the latency table and the
COCO score are replaced by deterministic fakes (no model is built, nothing is timed), so the whole search runs in a
fraction of a second and everything it writes and prints can be compared with a record: the log, history, state,
summary, ready-to-train configs and front of one band and of several budgets (milliseconds and fractions of dense,
measured and from a table, both strategies, an unreachable budget, one ``--budgets`` value), a ``--resume`` that
replays them, and the one-line errors of bad arguments and unreachable bands.

The record was taken before a band became a search with one budget: the outputs users see must not change."""
import hashlib
import json
import os
import os.path as osp
import re
import types
import zlib

import pytest
import torch

from sparsevit.schedule import gene_names, genes_key
from sparsevit.search import runner
from sparsevit.tasks.detection import DETECTION
from sparsevit.utils import dist

DEPTHS = (2, 2, 6, 2)
NAMES = gene_names(DEPTHS)
#: stage 0 is the most expensive (high resolution), as in Swin: pruning it saves the most
WEIGHTS = dict(zip(NAMES, (9.0, 4.0, 3.0, 3.0, 3.0, 1.0)))
SLOWER = 1.02  # the machine measures 2 % slower than the table predicts (a speed change since the table's build)


def table_ms(genes) -> float:
    """The fake table's latency: dense 50 ms, sparsest 31.6 ms."""
    return 50.0 - sum(WEIGHTS[n] * v for n, v in genes.items())


def measured_ms(genes) -> float:
    return SLOWER * table_ms(genes) + 0.01 * (zlib.crc32(genes_key(genes).encode()) % 5)


class FakeMeasurer:
    """Stands in for :class:`sparsevit.search.timing.Measurer` (same arguments): deterministic milliseconds."""

    def __init__(self, backbone, settings, device):
        self.calls = 0

    def __call__(self, genes) -> float:
        return self.many([genes])[0]

    def many(self, configs):
        return [measured_ms(g) for g in configs]


class FakeTable:
    key = dict(model=dict(depths=list(DEPTHS)), img_size=224)
    calibration = dict(offset_ms=0.5, scale=1.0, configs=[])

    def predict(self, genes) -> float:
        return table_ms(genes)


class FakeEvaluator:
    """The score: prefers pruning the cheap late genes over the sensitive early ones; a deterministic tie-breaker."""
    num_images = 4

    def __call__(self, genes):
        penalty = sum((2.0 - i * 0.3) * v * v for i, v in enumerate(genes.values()))
        metric = 45.0 - 5.0 * penalty + 1e-2 * (zlib.crc32(genes_key(genes).encode()) % 7)
        return metric, {'segm_mAP': metric - 3.0}


@pytest.fixture
def fake_search(monkeypatch, tmp_path):
    """``main(argv)`` of tools/search.py with the fakes in place; the config and checkpoint exist (empty files)."""
    from tools.search import main
    threads = torch.get_num_threads()
    monkeypatch.setattr(dist, '_default_threads', threads)
    monkeypatch.setattr(runner, 'load_config', lambda *a, **k: (None, DETECTION))
    monkeypatch.setattr(runner, 'build_model', lambda *a, **k: (None, None))
    monkeypatch.setattr(runner, 'get_sparse_backbone', lambda model: types.SimpleNamespace(depths=DEPTHS))
    monkeypatch.setattr(runner, 'Measurer', FakeMeasurer)
    monkeypatch.setattr(runner, 'load_or_build_table', lambda *a, **k: FakeTable())
    monkeypatch.setattr(runner, 'build_evaluator', lambda *a, **k: FakeEvaluator())
    for name in ('base.py', 'ckpt.pth'):
        open(tmp_path / name, 'w').close()
    yield main, [str(tmp_path / 'base.py'), str(tmp_path / 'ckpt.pth')]
    torch.set_num_threads(threads)


COMMON = ['--device', 'cpu', '--population', '16', '--parents', '8', '--iters', '120', '--seed', '1', '--img_size',
          '224', '--batch-size', '2', '--num-warmup', '1', '--num-repeats', '3', '--check-configs', '3',
          '--no-progress']
TABLE = ['--latency-table', '{tmp}/table.json']

#: name -> the arguments of the search
CASES = {
    'band_measured': ['--max', '42', '--min', '37'],
    'band_table_elitist': ['--max', '42', '--min', '37', '--strategy', 'elitist', *TABLE],
    'band_relative_table': ['--max', '0.84x', '--min', '0.72x', *TABLE],
    'band_relative_measured_elitist': ['--max', '0.84x', '--min', '0.72x', '--strategy', 'elitist'],
    'budgets_table': ['--budgets', '36', '40', '44', '48', '--min', '32', *TABLE],
    'budgets_relative_measured_unreachable': ['--budgets', '0.5x', '0.8x', '0.9x', '--min', '0.3x', '--parents',
                                              '6'],
    'one_budget_measured': ['--budgets', '42', '--min', '37'],
}

#: sha256 of (fresh, resumed) outputs: printed lines and files, timings and the temporary directory taken out
RECORDED = {
    'band_measured': ['485ac4abda28d83ad808919c2c464d887a14628c2357e73ff63c1c99269e10ea',
                      'c66ca73d0de63211712bca137a4904bff8369f314f17a72e1465b4c792e9aa32'],
    'band_relative_measured_elitist': ['8c25005e587bf165091dcaefeff9f9e00089148f89f11e2ec59ba314d88dd325',
                                       '0d174d9e1f9d95592cbd75f44eb89c6cb01988148a50c607f5168f74c41710d4'],
    'band_relative_table': ['c1b23b5131f818d2338e1f8e51c2ebbe8c2254d47fad5c26973907aecff377d3',
                            '2239d46166c052c5777e48a4a0de0d529e1b9bb871415a46d9b3a3ab0b708261'],
    'band_table_elitist': ['1d97f6c069762d22e67c657537fab00b6f3092a16173ce8a11619f20c00bba4e',
                           '216c36da87b89c917e094e16405001e473305b7c204fd0ca3969de10c9498ec6'],
    'budgets_relative_measured_unreachable': ['1d1a3e62b6169882ea6329ce4ebe5ed9cc06706584fa154160043d9353a69a59',
                                              'da652bc6149f99732f2839e679d1a69169ebab45fea03b4caf263dc13be467d6'],
    'budgets_table': ['47012c78ab7de9ba0b842e6b414f28384f7c9fd30fec751b55feb33356974dca',
                      'ca906734128016d5a9d9cdee1b9cabe2a47b57d8a99030f95386e1f94aa5f45e'],
    'one_budget_measured': ['05c1be867ceb9e1e7b021b4f2a446c8a40847a01eb84a6c1e6d20dc462e49ed9',
                            '85a213641f4b639a66968eef9abd28e9d158b9aae5b196a8f6ed8b91a332581d'],
}


def outputs(tmp_path, printed: str) -> dict:
    """What a search wrote under ``tmp_path/work`` and printed, with the temporary directory and the timings (wall
    time of the fakes) taken out; the PNG by its presence."""
    work = tmp_path / 'work'
    out = dict(printed=_no_timing(printed.replace(str(tmp_path), '<tmp>')), files={})
    for name in sorted(os.listdir(work)):
        if name.endswith('.png'):
            assert osp.getsize(work / name) > 1000
            out['files'][name] = 'png'
            continue
        text = open(work / name).read().replace(str(tmp_path), '<tmp>')
        if name.endswith('_summary.json'):
            summary = json.loads(text)
            summary['cost_s'] = {k: v for k, v in summary['cost_s'].items() if not k.endswith('_per_call')}
            text = json.dumps(summary, indent=1)  # in its key order
        out['files'][name] = text
    return out


def _no_timing(text: str) -> str:
    return re.sub(r'(latency|measurement|score) (\d+\.\d{3} ms|-)', r'\1 T', text)


def sha(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize('name', sorted(CASES))
def test_search_writes_and_prints_as_recorded(name, fake_search, tmp_path, capsys):
    main, files = fake_search
    argv = [*files, *[a.format(tmp=tmp_path) for a in CASES[name]], *COMMON, '--work-dir', str(tmp_path / 'work')]
    assert main(argv) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert captured.err == ''
    fresh = outputs(tmp_path, captured.out)
    assert main([*argv, '--resume']) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    resumed = outputs(tmp_path, captured.out)
    assert re.search(r'resumed: replaying 1[0-9]{2} recorded steps', resumed['printed'])
    assert {k: v for k, v in resumed['files'].items() if '_history' in k} == \
        {k: v for k, v in fresh['files'].items() if '_history' in k}
    assert [sha(fresh), sha(resumed)] == RECORDED[name], (name, [sha(fresh), sha(resumed)])


TABLE_EXISTS = 'the table exists'


def one_error_line(text: str, message: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines == [f'search.py: error: {message}'], text


@pytest.mark.parametrize('extra, message', [
    (['--max', '42', '--min', '45'], '--min 45 is above --max 42; the band needs min <= max'),
    (['--max', '42', '--parents', '101'],
     '--parents must be in [2, --population] = [2, 100] (crossover needs two parents), got 101'),
    (['--max', '42', '--parents', '1'],
     '--parents must be in [2, --population] = [2, 100] (crossover needs two parents), got 1'),
    (['--max', '42', '--parents', '100', '--strategy', 'elitist'],
     '--parents must be in [1, --population - 1] = [1, 99], got 100'),
    (['--max', '42', '--population', '1'], '--population must be >= 2, got 1'),
    (['--max', '42', '--population', '1', '--parents', '1'], '--population must be >= 2, got 1'),
    (['--budgets', '33', '36', '--population', '1'], '--population must be >= 2, got 1'),
    (['--max', '42', '--population', '1', '--strategy', 'elitist'], '--population must be >= 2, got 1'),
    (['--max', '-1'], '--max must be a positive latency in ms, got -1'),
    (['--max', '42', '--mutation-prob', '2'], '--mutation-prob must be in [0, 1], got 2'),
    (['--max', '42', '--iters', '-1', '--mutation-prob', '2'], '--iters must be >= 0, got -1'),
    (['--max', '42', '--num-images', '0'], '--num-images must be >= 1, got 0'),
    (['--max', '42', '--num-repeats', '0'], '--num-repeats must be >= 1, got 0'),
    (['--max', '42', '--max-retries', '0'], '--max-retries must be >= 1, got 0'),
    (['--max', '42', '--table-rounds', '0'], '--table-rounds must be >= 1, got 0'),
    ([], 'give --max (one latency band [--min, --max]) or --budgets (several), not neither'),
    (['--max', '42', '--budgets', '33', '36'],
     'give --max (one latency band [--min, --max]) or --budgets (several), not both'),
    (['--budgets', '36', '33'], '--budgets must be strictly ascending, got 36 before 33'),
    (['--budgets', '0', '33'], '--budgets must be positive latencies in ms, got 0'),
    (['--budgets', '33', '36', '--min', '33'],
     '--min 33 is not below the first budget 33; the first budget accepts [--min, 33] ms'),
    (['--budgets', '33', '36', '--strategy', 'elitist'],
     '--budgets needs --strategy original (the elitist strategy searches one band)'),
    (['--budgets', '42', '--strategy', 'elitist'],
     '--budgets needs --strategy original (the elitist strategy searches one band)'),
    (['--budgets', '33', '36', '--strategy', 'elitist', '--population', '1'],
     '--budgets needs --strategy original (the elitist strategy searches one band)'),
    (['--budgets', '33', '36', '39', '42', '--parents', '7'],
     '--parents must give each of the 4 budgets at least 2: >= 8, got 7'),
    (['--budgets', '33', '36', '39', '42', '--parents', '8', '--population', '7'],
     '--population must give each of the 4 budgets at least its 2 parents: >= 8, got 7'),
    (['--max', '0.85x', '--min', '40'], '--max and --min mix fractions of the dense latency (x) with milliseconds '
                                        '(0.85x, --min 40): give all in one form'),
    # the band checked before a table is built: by measurements (2 % slower than the table)
    (['--min', '100000', '--max', '200000'], 'latency band [100000, 200000] ms is above the dense model (51.01 ms), '
                                             'the slowest configuration: lower --min below 51.01'),
    (['--min', '0', '--max', '0.001'], 'latency band [0, 0.001] ms is below the sparsest configuration (32.27 ms), '
                                       'the fastest one: raise --max above 32.27'),
    (['--max', '0.5x', '--min', '0.3x'], 'latency band [0.3x, 0.5x] of dense 51.01 ms = [15.3, 25.5] ms is below the '
                                         'sparsest configuration (32.27 ms), the fastest one: raise --max above '
                                         '0.633x'),
    (['--budgets', '0.001', '0.002', '--parents', '4'], 'no budget is reachable: budgets 0.001 0.002 ms (from --min '
                                                        '0) lie outside [32.27, 51.01] ms, the sparsest and dense '
                                                        'latencies'),
    (['--budgets', '0.3x', '0.5x', '--parents', '4'], 'no budget is reachable: budgets 0.3x 0.5x (from --min 0) lie '
                                                      'outside [32.27, 51.01] ms, the sparsest and dense latencies '
                                                      '([0.633x, 1x])'),
    # the table exists: the search's own check, with the table's latencies
    (['--min', '100000', '--max', '200000', TABLE_EXISTS],
     'latency band [100000, 200000] ms is above the dense model (50.00 ms), the slowest configuration: lower --min '
     'below 50.00'),
    (['--max', '0.5x', '--min', '0.3x', TABLE_EXISTS],
     'latency band [0.3x, 0.5x] of dense 50.00 ms = [15, 25] ms is below the sparsest configuration (31.60 ms), the '
     'fastest one: raise --max above 0.632x'),
    (['--budgets', '0.3x', '0.5x', '--parents', '4', TABLE_EXISTS],
     'no budget is reachable: budgets 0.3x 0.5x (from --min 0) lie outside [31.60, 50.00] ms, the sparsest and dense '
     'latencies ([0.632x, 1x])'),
    (['--budgets', '20', '30', '--min', '10', '--parents', '4', TABLE_EXISTS],
     'no budget is reachable: budgets 20 30 ms (from --min 10) lie outside [31.60, 50.00] ms, the sparsest and dense '
     'latencies'),
    (['--min', '40.01', '--max', '40.09', '--iters', '30', TABLE_EXISTS], None),  # nothing feasible: the numbers
])
def test_bad_arguments_and_unreachable_bands_fail_with_one_line(extra, message, fake_search, tmp_path, capsys):
    main, files = fake_search
    if TABLE_EXISTS in extra:
        extra = [a for a in extra if a != TABLE_EXISTS]
        open(tmp_path / 'table.json', 'w').close()  # loaded by the fake
    assert main([*files, *extra, '--device', 'cpu', '--no-progress', '--latency-table', str(tmp_path / 'table.json'),
                 '--work-dir', str(tmp_path / 'work')]) == 1
    err = capsys.readouterr().err
    if message is None:
        message = re.match(r'search.py: error: (the search found no configuration inside the latency band \[40.01, '
                           r'40.09\] ms in 30 steps: dense 50.00 ms, sparsest 31.60 ms \(table\); \d+ step\(s\) below '
                           r'the band, \d+ above; as fractions of the dense latency: --max 0.802x --min 0.8x; widen '
                           r'the band or run more --iters)$', err.strip()).group(1)
    one_error_line(err, message)
    assert not osp.exists(tmp_path / 'work') or message.startswith('the search found no')
