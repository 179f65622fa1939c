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
    image_key = '4 images, fake'

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
    'band_measured': ['d7de6ad65e0fd6c79c4b779e5a7b969a87127c2dea87244c52ddc8bf8f6f6f2e',
                      '3a7d6fefa134fdceb477877865efb284c608bc86fa74bc52396ab5dbcbf4ab25'],
    'band_relative_measured_elitist': ['4b3f6985a0e7a7a31ceb549d236d8e405fabd0f80d3b4ff7578659feb8428e41',
                                       'e0bfb952369d15b06f2efa4459525b0c8e1d8c6768160fe3fe383f9625899289'],
    'band_relative_table': ['2fe216d3ca259a74a8c485c027daf854437e2dd832bee64c64f5a59188013e06',
                            '5dd97f88263d383e12a95cd69e2315d4c3e9fe4ce04bd756897ddbac1b143710'],
    'band_table_elitist': ['ec01e8b8e2b26cbdd634c0a00ca16483f331149cf2d5086192e35515f2ec918f',
                           '9336042c330ea7d0bb5e6eb8dad428ac4ce16395ae66419deccd0478d7c4d2d6'],
    'budgets_relative_measured_unreachable': ['2ba236734faea0543ba2d9faac108db1ae45e3b24884de6c757f2278d63f8008',
                                              '3c3b2a61f97efc599bef01eec52421436855d5388e0aced46ffa970d7541d769'],
    'budgets_table': ['5d67c12c8968d4083f3b9794a7b95206e8ea8be8c2d6f0edbbcc189c0ac628b7',
                      'e3ccd377db20b0310a52a98ac74dcbfc9647a629681cd8b8730d931b444f0ea7'],
    'one_budget_measured': ['8aeedc28b3553c18b073516615d0df8ce81c12375ff27baba63d302ddbf39f15',
                            '7bc35261d336b1edfdcbaa2141576e54e21046b86f0a4162445dbb88ba7d97d8'],
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
