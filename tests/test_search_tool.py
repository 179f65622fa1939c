"""tools/search.py end to end on CPU: the README's ``torchpack dist-run -np 2`` command on the demo model with a
few steps (one band, and several budgets), plain ``python``, ``--resume`` for both strategies, the latency protocol,
and bad arguments / budgets / infeasible bands failing with one line."""
import dataclasses
import json
import os
import os.path as osp
import re
import sys

import pytest
import torch
from mmcv import Config

from sparsevit.schedule import dense_genes, genes_key, genes_to_ratios, sparsest_genes
from sparsevit.search.latency_table import LatencyTable
from sparsevit.utils.config import apply_sparsevit_cfg

from helpers import mpi_env, run_python, tiny_backbone

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join('tools', 'search.py')
DEMO = osp.join('configs', 'demo', 'mask_rcnn_sparsevit_demo.py')
TORCHPACK = osp.join(osp.dirname(sys.executable), 'torchpack')
FAST = ['--img_size', '112', '--batch-size', '1', '--num-warmup', '0', '--num-repeats', '2', '--population', '6',
        '--parents', '2', '--check-configs', '2', '--no-progress']
TAG = 'max100000_min0'
DEPTHS = (2, 2, 6, 2)
DIST_RUN = (TORCHPACK, 'dist-run', '-np', '2')
TIMEOUT = 240  # seconds a search process may run


def env() -> dict:
    """Environment of the tool processes: repo importable; Open MPI allowed as root and on one host; one CPU
    thread per process (several OpenMP threads per process on a shared 2-core machine slow inference down 10x)."""
    return mpi_env(OMPI_MCA_rmaps_base_oversubscribe='1')


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """In-process runs of the tool use one thread too (as the subprocesses: same latency-table key), restored after."""
    from sparsevit.utils import dist
    threads = torch.get_num_threads()
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    monkeypatch.setattr(dist, '_default_threads', 1)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def demo(search_demo):
    """(cfg-options list, checkpoint path) of the demo model with random weights on the synthetic data."""
    return search_demo


@pytest.fixture(scope='module')
def dist_run(demo, tmp_path_factory):
    """The README's command under ``torchpack dist-run -np 2`` (every candidate feasible): (work dir, result)."""
    options, ckpt = demo
    work = str(tmp_path_factory.mktemp('dist_search'))
    args = [DEMO, ckpt, '--max', '100000', '--min', '0', '--iters', '10', '--work-dir', work,
            '--latency-table', osp.join(work, 'table.json'), '--eval', 'bbox', 'segm', '--num-images', '3', *FAST,
            *options]
    result = run_python(TOOL, *args, launcher=DIST_RUN, env=env(), timeout=TIMEOUT)
    return work, result


def read_jsonl(path: str) -> list:
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_dist_run_writes_log_history_state_and_best_config(dist_run, demo):
    work, result = dist_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert '2 process(es); scoring 3 images; strategy original, 10 steps' in out and 'table check: predicted' in out
    assert 'latency: custom protocol: 0 warm-up + 2 timed forwards' in out
    history = read_jsonl(osp.join(work, f'search_{TAG}_history.jsonl'))
    summary = json.load(open(osp.join(work, f'search_{TAG}_summary.json')))
    state = json.load(open(osp.join(work, f'search_{TAG}_state.json')))
    assert summary['world_size'] == 2 and summary['strategy'] == 'original' and state['finished']
    assert len(history) == summary['steps'] == state['progress']['steps'] == 10, 'one history line per step'
    assert [r['step'] for r in history] == list(range(10))
    assert summary['evaluated'] == len({genes_key(r['config']) for r in history})
    assert summary['cached_steps'] == sum(r['cached'] for r in history) == 10 - summary['evaluated']
    assert all(r['feasible'] and 'segm_mAP' in r['extra'] and 0 <= r['metric'] <= 100 for r in history)
    assert [r['origin'] for r in history[:6]] == ['random'] * 6 and history[6]['origin'] == 'mutation'
    assert summary['latency_protocol'].startswith('custom protocol: 0 warm-up + 2 timed forwards')
    best = summary['best']
    assert best['metric'] == max(r['metric'] for r in history)
    assert best['step'] == max(r['step'] for r in history if r['metric'] == best['metric']), 'ties to the later'
    assert [r['name'] for r in summary['references']] == ['dense', 'uniform 0.5'] == \
        [r['name'] for r in state['references']]
    check = summary['table_check']
    assert len(check['rows']) >= 3 and summary['measured_latency_ms'] > 0 and check['speed_ratio'] > 0
    assert check['rows'][0]['rescaled_error_pct'] == pytest.approx(0.0, abs=1e-9)  # dense: the reference

    log = open(osp.join(work, f'search_{TAG}.txt')).read()
    assert '# reference dense: latency' in log and '# reference uniform 0.5: latency' in log
    assert re.search(r'^step \d+ \| bbox_mAP \d+\.\d\d \| latency', log, re.M)
    assert f"final best: step {best['step']} | bbox_mAP {best['metric']:.2f}" in log
    assert 'backbone.stages.2_3 : ' in log
    assert osp.getsize(osp.join(work, f'search_{TAG}.png')) > 1000
    table = LatencyTable.load(osp.join(work, 'table.json'))
    assert sum(len(s) for s in table.stages) == 192 and len(table.calibration['configs']) == 6

    cfg = apply_sparsevit_cfg(Config.fromfile(osp.join(work, f'sparsevit_{TAG}.py')))
    assert cfg.load_from == demo[1]
    assert cfg.model.backbone.pruning_ratios == genes_to_ratios(best['config'], DEPTHS)
    assert cfg.model.backbone.type in ('SparseViT', 'SparseSwinTransformer')


def test_image_subset_is_seeded_and_checked():
    from sparsevit.search.evaluator import select_images
    assert select_images(5, None) == [0, 1, 2, 3, 4]
    subset = select_images(100, 10, seed=3)
    assert subset == select_images(100, 10, seed=3) == sorted(subset) and len(set(subset)) == 10
    assert subset != select_images(100, 10, seed=4)
    with pytest.raises(ValueError, match=r'--num-images must be in \[1, 5\] \(the test set size\), got 6'):
        select_images(5, 6)


def table_range(work: str):
    """(dense, sparsest) latency of the demo model at the test's size, from the table."""
    table = LatencyTable.load(osp.join(work, 'table.json'))
    return table.predict(dense_genes(DEPTHS)), table.predict(sparsest_genes(DEPTHS))


def band_from_table(work: str):
    """A band holding the middle 45 % of random configurations' predicted latencies (from the 40th to the 85th
    percentile), whatever the machine's load made of the table: about half the random draws fall in, the rest out
    (where all 6 random draws fell in a range-based band on a loaded machine, nothing was left out)."""
    import random
    from sparsevit.schedule import sample_genes
    table = LatencyTable.load(osp.join(work, 'table.json'))
    spread = sorted(table.predict(sample_genes(random.Random(i), DEPTHS)) for i in range(400))
    return spread[160], spread[340]


def test_multi_budget_dist_run_writes_every_output(dist_run, demo, tmp_path):
    """``--budgets`` under ``torchpack dist-run -np 2``: history, log, state, summary, PNG, front.md/json and one
    ready-to-train config per budget."""
    import random
    from sparsevit.schedule import sample_genes
    work, result = dist_run
    assert result.returncode == 0
    options, ckpt = demo
    table = LatencyTable.load(osp.join(work, 'table.json'))
    spread = sorted(table.predict(sample_genes(random.Random(i), DEPTHS)) for i in range(400))
    dense = table.predict(dense_genes(DEPTHS))
    budgets = [f'{spread[120]:.3f}', f'{spread[280]:.3f}', f'{max(dense, spread[-1]) + 1:.3f}']  # ~30 % each
    out = str(tmp_path / 'front')
    run = run_python(TOOL, DEMO, ckpt, '--budgets', *budgets, '--iters', '18', '--work-dir', out, '--latency-table',
                     osp.join(work, 'table.json'), '--num-images', '2', *FAST, '--population', '6', '--parents',
                     '6', *options, launcher=DIST_RUN, env=env(), timeout=TIMEOUT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tag = 'budgets' + '_'.join(budgets)
    history = read_jsonl(osp.join(out, f'search_{tag}_history.jsonl'))
    summary = json.load(open(osp.join(out, f'search_{tag}_summary.json')))
    front = json.load(open(osp.join(out, 'front.json')))
    assert len(history) == summary['steps'] == 18 and summary['world_size'] == 2
    edges = [float(b) for b in budgets]
    for r in history:
        expected = next((i for i, e in enumerate(edges) if r['latency'] <= e), None)
        assert r['budget'] == expected and r['feasible'] == (expected is not None)
    rows = summary['budgets']
    assert [row['budget'] for row in rows] == edges == [row['budget'] for row in front['budgets']]
    for i, row in enumerate(rows):
        in_budget = [r for r in history if r['budget'] == i]
        assert in_budget, f'budget {budgets[i]} got no candidate in 18 steps'
        assert row['metric'] == max(r['metric'] for r in in_budget)
        assert (edges[i - 1] if i else 0) < row['latency'] <= edges[i] and row['measured_ms'] > 0
        cfg = apply_sparsevit_cfg(Config.fromfile(osp.join(out, f'sparsevit_max{budgets[i]}.py')))
        assert cfg.model.backbone.pruning_ratios == genes_to_ratios(row['config'], DEPTHS)
        assert cfg.load_from == ckpt and row['config_file'].endswith(f'sparsevit_max{budgets[i]}.py')
    md = open(osp.join(out, 'front.md')).read()
    assert md.startswith('| budget (ms) | band | latency (ms) |') and len(md.strip().splitlines()) == 2 + 3
    assert f'| {budgets[1]} | ({float(budgets[0]):g}, {float(budgets[1]):g}] ms |' in md
    log = open(osp.join(out, f'search_{tag}.txt')).read()
    assert f'--budgets {" ".join(budgets)}' in log and re.search(r'^step \d+ \| budget \(', log, re.M)
    assert log.count('final budget ') == 3
    assert osp.getsize(osp.join(out, f'search_{tag}.png')) > 1000
    state = json.load(open(osp.join(out, f'search_{tag}_state.json')))
    assert state['settings']['budgets'] == edges and state['finished']
    for name in ('front.md', 'front.json', f'sparsevit_max{budgets[2]}.py'):
        assert f'wrote {osp.join(out, name)}' in run.stdout


@pytest.mark.parametrize('strategy', ['original', 'elitist'])
def test_plain_python_and_resume_after_a_kill_equal_an_uninterrupted_run(strategy, dist_run, demo, tmp_path,
                                                                       monkeypatch, capsys):
    from sparsevit.search import evaluator
    from tools.search import main
    work, result = dist_run
    assert result.returncode == 0
    options, ckpt = demo
    low, high = band_from_table(work)
    high, low = f'{high:.3f}', f'{low:.3f}'  # outputs are named with the band as typed
    common = [DEMO, ckpt, '--max', high, '--min', low, '--latency-table', osp.join(work, 'table.json'), '--iters',
              '16', '--num-images', '2', '--strategy', strategy, *FAST, *options]
    tag = f'max{high}_min{low}'

    fresh = run_python(TOOL, *common, '--work-dir', str(tmp_path / 'fresh'), env=env(), timeout=TIMEOUT)
    assert fresh.returncode == 0, fresh.stdout[-3000:] + fresh.stderr[-3000:]
    assert '1 process(es)' in fresh.stdout
    a = read_jsonl(osp.join(tmp_path, 'fresh', f'search_{tag}_history.jsonl'))
    assert len(a) == 16 and any(not r['feasible'] for r in a)
    assert all(float(low) <= r['latency'] <= float(high) for r in a if r['feasible'])

    scored = [r for r in a if r['feasible'] and not r['cached']]
    assert len(scored) >= 3
    calls, kill_at, real_call = [], 2 + len(scored) // 2 + 1, evaluator.DetectorEvaluator.__call__

    def killed_halfway(self, genes):  # 2 reference points, then half of the search's scores
        calls.append(genes_key(genes))
        if len(calls) == kill_at:
            raise KeyboardInterrupt
        return real_call(self, genes)

    monkeypatch.setattr(evaluator.DetectorEvaluator, '__call__', killed_halfway)
    resumed = str(tmp_path / 'resumed')
    monkeypatch.chdir(ROOT)
    with pytest.raises(KeyboardInterrupt):
        main([*common, '--work-dir', resumed])
    before = set(calls[2:kill_at - 1])
    calls.clear()
    capsys.readouterr()
    assert main([*common, '--work-dir', resumed, '--resume']) == 0
    assert re.search(r'resumed: replaying [1-9]\d* recorded steps', capsys.readouterr().out)
    assert not before & set(calls), 'a configuration was scored twice'
    assert len(calls) == len(scored) - (kill_at - 3), 'only the steps after the kill are scored; no references'

    b = read_jsonl(osp.join(resumed, f'search_{tag}_history.jsonl'))
    assert [(r['config'], r['latency'], r['metric'], r['cached']) for r in a] == \
        [(r['config'], r['latency'], r['metric'], r['cached']) for r in b]
    summary = json.load(open(osp.join(resumed, f'search_{tag}_summary.json')))
    assert summary['steps'] == 16 and float(low) <= summary['best']['latency'] <= float(high)
    assert summary['strategy'] == strategy


def test_measured_latency_uses_the_cpu_protocol_and_reports_it(demo, tmp_path, capsys, monkeypatch):
    from tools.search import main
    options, ckpt = demo
    monkeypatch.chdir(ROOT)
    args = [DEMO, ckpt, '--max', '100000', '--iters', '3', '--num-images', '1', '--work-dir', str(tmp_path),
            *FAST, *options]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert 'latency: custom protocol: 0 warm-up + 2 timed forwards' in out and '(measured)' in out
    summary = json.load(open(tmp_path / f'search_{TAG}_summary.json'))
    assert summary['latency'] == 'measured' and summary['table_check'] is None
    cost = summary['cost_s']
    assert cost['measure_calls'] == 2 + 2 + summary['evaluated']  # band check, references, candidates
    assert cost['measure_many_calls'] == 1  # the best, confirmed at the end


def test_default_latency_protocol_is_the_short_cpu_one():
    from sparsevit.search.settings import SearchSettings
    from sparsevit.search.timing import latency_protocol
    given = SearchSettings(DEMO, 'ckpt.pth')
    settings, text = latency_protocol(given, torch.device('cpu'))
    assert (settings.num_warmup, settings.num_repeats) == (5, 20)
    assert text.startswith('short CPU protocol: 5 warm-up + 20')
    assert settings == dataclasses.replace(given, num_warmup=5, num_repeats=20), 'nothing else changes'
    assert (given.num_warmup, given.num_repeats) == (None, None), 'the given settings are left alone'
    settings, text = latency_protocol(given, torch.device('cuda'))
    assert 'original CUDA protocol: 200 warm-up + 300 timed forwards' in text
    assert (settings.num_warmup, settings.num_repeats) == (200, 300)
    settings, text = latency_protocol(dataclasses.replace(given, num_warmup=3), torch.device('cpu'))
    assert text.startswith('custom protocol: 3 warm-up + 20') and (settings.num_warmup, settings.num_repeats) == (3, 20)


class ScriptedTimes:
    """Stands in for ``time_forwards``: each call returns the next scripted time (ms) and records the ratios."""

    def __init__(self, backbone, times):
        self.backbone, self.times, self.seen = backbone, list(times), []

    def __call__(self, fn, num, device, progress=None):
        assert num == 1
        self.seen.append(self.backbone.pruning_ratios)
        return [self.times.pop(0)]


def measurer_for(device: str, monkeypatch, times, warmup=1, repeats=10):
    from sparsevit.search import timing
    from sparsevit.search.settings import SearchSettings
    backbone = tiny_backbone(seed=None, depths=DEPTHS, device=device)  # the times are scripted: any weights
    scripted = ScriptedTimes(backbone, times)
    monkeypatch.setattr(timing, 'time_forwards', scripted)
    settings = SearchSettings(DEMO, 'ckpt.pth', img_size=64, batch_size=1, num_warmup=warmup, num_repeats=repeats,
                              no_progress=True)
    return timing.Measurer(backbone, settings, torch.device(device)), scripted, backbone


def test_measurements_are_interleaved_and_trimmed(monkeypatch):
    from sparsevit.utils.latency import trimmed_mean
    a, b = dense_genes(DEPTHS), sparsest_genes(DEPTHS)
    samples = [float(v) for v in range(20)]  # rounds alternate a, b: a gets the even values, b the odd ones
    measurer, scripted, backbone = measurer_for('cpu', monkeypatch, samples)
    backbone.set_pruning_ratios(0.3)
    assert measurer.many([a, b]) == [trimmed_mean(samples[0::2]), trimmed_mean(samples[1::2])]
    dense_ratios = tuple(tuple(s) for s in genes_to_ratios(a, DEPTHS))
    assert scripted.seen[0::2] == [dense_ratios] * 10 and scripted.seen[1] != dense_ratios
    assert backbone.pruning_ratios == tuple(tuple([0.3] * d) for d in DEPTHS), 'ratios restored'


def test_table_check_measures_every_configuration_once_interleaved():
    from sparsevit.search.timing import check_configs, check_table
    key = dict(model=dict(depths=list(DEPTHS)))
    stages = [{'0': 10.0, '0.8': 2.0}, {'0': 5.0, '0.8': 1.0},
              {'0,0,0': 6.0, '0,0,0.8': 4.0, '0.8,0.8,0.8': 1.0}, {'0': 3.0, '0.8': 1.0}]
    table = LatencyTable(key, 1.0, stages, calibration=dict(offset_ms=2.0, scale=1.0))
    dense, sparsest = dense_genes(DEPTHS), sparsest_genes(DEPTHS, (0.0, 0.8))
    other = dict(dense, **{'backbone.stages.2_3': 0.8})
    history = [dict(config=c) for c in (other, dense, other)]
    configs = check_configs([dense, sparsest], history, num_random=5, seed=0)
    assert configs == [dense, sparsest, other], 'fixed first, then distinct evaluated ones'
    batches = []

    def measure_many(batch):
        batches.append(list(batch))
        return [1.1 * table.predict(g) for g in batch]  # the machine runs 10 % slower than the table

    check = check_table(table, measure_many, configs + [dense], {genes_key(sparsest): 9.0})
    assert batches == [[dense, other]], 'one interleaved batch; sparsest already measured now'
    assert [r['measured_ms'] for r in check['rows']] == [pytest.approx(1.1 * 27), 9.0, pytest.approx(1.1 * 25)]
    assert check['speed_ratio'] == pytest.approx(1.1)
    assert check['rows'][2]['error_pct'] == pytest.approx(100 * (1 / 1.1 - 1))
    assert check['rows'][2]['rescaled_error_pct'] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_cuda_measurement_runs_the_whole_protocol_and_takes_the_trimmed_mean_of_every_sample(monkeypatch):
    from sparsevit.utils.latency import trimmed_mean
    samples = [1.0] * 3 + [2.0] * 4 + [100.0] * 3
    measurer, scripted, _ = measurer_for('cuda', monkeypatch, samples, warmup=200, repeats=10)
    assert measurer(dense_genes(DEPTHS)) == pytest.approx(trimmed_mean(samples))
    assert len(scripted.seen) == 10, 'this rank timed every repeat (none split between ranks)'


def one_error_line(text: str, *needles: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith('search.py: error:')]
    assert len(errors) == 1, text
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_bad_arguments_fail_with_one_line(demo, capsys):
    from tools.search import main
    options, ckpt = demo
    result = run_python(TOOL, DEMO, ckpt, '--max', '42', '--min', '45', env=env(), timeout=TIMEOUT)
    assert result.returncode != 0
    assert result.stderr.strip().count('\n') == 0
    one_error_line(result.stderr, '--min 45 is above --max 42')
    cases = [
        (['--max', '42', '--parents', '101'],
         '--parents must be in [2, --population] = [2, 100] (crossover needs two parents), got 101'),
        (['--max', '42', '--parents', '1'], '--parents must be in [2, --population] = [2, 100]'),
        (['--max', '42', '--parents', '100', '--strategy', 'elitist'],
         '--parents must be in [1, --population - 1] = [1, 99], got 100'),
        (['--max', '42', '--population', '1'], '--population must be >= 2'),
        (['--max', '-1'], '--max must be a positive latency'),
        (['--max', '42', '--mutation-prob', '2'], '--mutation-prob must be in [0, 1]'),
        (['--max', '42', '--num-images', '0'], '--num-images must be >= 1'),
        (['--max', '42', '--num-repeats', '0'], '--num-repeats must be >= 1'),
        ([], 'give --max (one latency band [--min, --max]) or --budgets (several), not neither'),
        (['--max', '42', '--budgets', '33', '36'], 'not both'),
        (['--budgets', '36', '33'], '--budgets must be strictly ascending, got 36 before 33'),
        (['--budgets', '33', '33'], '--budgets must be strictly ascending, got 33 before 33'),
        (['--budgets', '0', '33'], '--budgets must be positive latencies in ms, got 0'),
        (['--budgets', '-5'], '--budgets must be positive latencies in ms, got -5'),
        (['--budgets', '33', '36', '--min', '33'], '--min 33 is not below the first budget 33'),
        (['--budgets', '33', '36', '--strategy', 'elitist'], '--budgets needs --strategy original'),
        (['--budgets', '33', '36', '39', '42', '--parents', '7'],
         '--parents must give each of the 4 budgets at least 2: >= 8, got 7'),
    ]
    for extra, message in cases:
        assert main([DEMO, ckpt, *extra]) == 1, extra
        one_error_line(capsys.readouterr().err, message)
    assert main([DEMO, 'missing.pth', '--max', '42']) == 1
    one_error_line(capsys.readouterr().err, 'checkpoint not found: missing.pth')
    assert main([DEMO, ckpt, '--max', '42', '--eval', 'proposal']) == 1
    one_error_line(capsys.readouterr().err, '--eval proposal: not a metric the search scores for a detector config '
                   '(detection); allowed: bbox, segm')
    assert main([DEMO, ckpt, '--max', '42', '--metric', 'mIoU']) == 1
    one_error_line(capsys.readouterr().err, '--metric mIoU: not a metric of a detector config')
    with pytest.raises(SystemExit):
        main([DEMO, ckpt, '--budgets', '33', 'fast'])
    one_error_line(capsys.readouterr().err, "argument --budgets: bad latency 'fast': give milliseconds (e.g. 42) or "
                   'a fraction of the dense latency in (0, 1] with a trailing x (e.g. 0.85x)')
    for bad in ('0x', '1.2x', 'abcx'):
        with pytest.raises(SystemExit):
            main([DEMO, ckpt, '--max', bad])
        one_error_line(capsys.readouterr().err, f"argument --max: bad latency '{bad}'")
    for extra, message in [
            (['--max', '0.85x', '--min', '40'], '--max and --min mix fractions of the dense latency (x) with '
                                                'milliseconds'),
            (['--max', '0.5x', '--min', '0.6x'], '--min 0.6x is above --max 0.5x'),
            (['--budgets', '0.7x', '0.6x'], '--budgets must be strictly ascending, got 0.7x before 0.6x')]:
        assert main([DEMO, ckpt, *extra]) == 1, extra
        one_error_line(capsys.readouterr().err, message)


def test_infeasible_band_stale_table_and_bad_checkpoint_fail_with_one_line(dist_run, demo, capsys, tmp_path):
    from tools.search import main
    work, _ = dist_run
    options, ckpt = demo
    table = osp.join(work, 'table.json')
    common = [DEMO, ckpt, '--latency-table', table, '--work-dir', str(tmp_path), *FAST, *options]
    assert main([*common, '--min', '100000', '--max', '200000']) == 1
    one_error_line(capsys.readouterr().err, 'is above the dense model')
    assert main([*common, '--min', '0', '--max', '0.001']) == 1
    one_error_line(capsys.readouterr().err, 'is below the sparsest configuration')
    assert main([*common, '--budgets', '0.001', '0.002', '--parents', '4']) == 1
    one_error_line(capsys.readouterr().err, 'no budget is reachable: budgets 0.001 0.002 ms')
    assert main([*common, '--budgets', '100000', '200000', '--min', '90000', '--parents', '4']) == 1
    one_error_line(capsys.readouterr().err, 'no budget is reachable')
    assert main([*common, '--min', '0', '--max', '1000', '--img_size', '96']) == 1
    one_error_line(capsys.readouterr().err, 'is stale', 'img_size=112 (now 96)')
    assert main([*common, '--min', '0', '--max', '1000', '--resume']) == 1
    one_error_line(capsys.readouterr().err, '--resume: no search state')
    partial = torch.load(ckpt, weights_only=False)
    partial['state_dict'].pop('backbone.norm0.weight')
    torch.save(partial, str(tmp_path.parent / 'partial.pth'))
    assert main([DEMO, str(tmp_path.parent / 'partial.pth'), '--max', '1000', *common[4:]]) == 1
    one_error_line(capsys.readouterr().err, "does not fit the config's model: 1 weights missing",
                   'backbone.norm0.weight')
    assert not os.listdir(tmp_path), 'a failed start must not write outputs'


def test_infeasible_band_under_dist_run_fails_with_one_line(dist_run, demo):
    work, _ = dist_run
    options, ckpt = demo
    result = run_python(TOOL, DEMO, ckpt, '--min', '100000', '--max', '200000', '--latency-table',
                        osp.join(work, 'table.json'), '--work-dir', work, *FAST, *options, launcher=DIST_RUN,
                        env=env(), timeout=TIMEOUT)
    assert result.returncode != 0
    one_error_line(result.stdout + result.stderr, 'is above the dense model')


def test_relative_band_is_resolved_against_the_searchs_own_dense_latency(dist_run, demo, tmp_path, capsys,
                                                                        monkeypatch):
    """``--max 1x --min Fx``: the band is the fractions times the dense latency the table predicts; the outputs are
    named with the fractions as typed and record both forms; ``--resume`` accepts the same fractions."""
    from tools.search import main
    work, _ = dist_run
    options, ckpt = demo
    dense, sparsest = table_range(work)
    low = f'{min(0.95, sparsest / dense + 0.1):.3f}x'
    common = [DEMO, ckpt, '--max', '1x', '--min', low, '--latency-table', osp.join(work, 'table.json'), '--iters',
              '6', '--num-images', '1', '--work-dir', str(tmp_path), *FAST, *options]
    monkeypatch.chdir(ROOT)
    assert main(common) == 0
    out = capsys.readouterr().out
    low_ms = float(low[:-1]) * dense
    band_text = f'band [{low}, 1x] of dense {dense:.2f} ms = [{low_ms:.4g}, {dense:.4g}] ms'
    assert f'[search] {band_text}; dense {dense:.2f} ms' in out
    tag = f'max1x_min{low}'
    history = read_jsonl(osp.join(tmp_path, f'search_{tag}_history.jsonl'))
    assert len(history) == 6
    assert all(low_ms <= r['latency'] <= dense for r in history if r['feasible'])
    summary = json.load(open(osp.join(tmp_path, f'search_{tag}_summary.json')))
    band = summary['band']
    assert band['relative'] and band['dense_ms'] == pytest.approx(dense) and band['sparsest_ms'] == \
        pytest.approx(sparsest)
    assert band['min'] == dict(text=low, fraction=float(low[:-1]), ms=pytest.approx(low_ms))
    assert band['budgets'] == [dict(text='1x', fraction=1.0, ms=pytest.approx(dense))]
    measured_dense = summary['table_check']['rows'][0]['measured_ms']  # checked as fractions of dense measured now
    assert summary['measured_fraction'] == pytest.approx(summary['measured_latency_ms'] / measured_dense)
    assert summary['measured_in_band'] == (float(low[:-1]) <= summary['measured_fraction'] <= 1.0)
    assert f"{summary['measured_fraction']:.3g}x of dense measured now" in out
    state = json.load(open(osp.join(tmp_path, f'search_{tag}_state.json')))
    assert state['settings']['relative_budgets'] == dict(budgets=['1x'], min=low)
    assert state['settings']['budgets'] == [pytest.approx(dense)] and state['band'] == band
    log = open(osp.join(tmp_path, f'search_{tag}.txt')).read()
    assert f'--max 1x --min {low}' in log and f'# {band_text}' in log
    config = open(osp.join(tmp_path, f'sparsevit_{tag}.py')).read()
    assert f'({band_text}, batch 1 at 112x112)' in config
    assert main([*common, '--resume']) == 0
    assert 'resumed: replaying 6 recorded steps' in capsys.readouterr().out
    assert main([*common[:3], '0.98x', *common[4:], '--resume']) == 1  # other fractions: another search
    one_error_line(capsys.readouterr().err, 'no search state')  # named by the fractions: not this one's files


def test_relative_budgets_name_the_configs_and_the_front(dist_run, demo, tmp_path, capsys, monkeypatch):
    from tools.search import main
    work, _ = dist_run
    options, ckpt = demo
    dense, sparsest = table_range(work)
    first = sparsest / dense + 0.5 * (1 - sparsest / dense)
    budgets = [f'{first:.3f}x', '1x']
    monkeypatch.chdir(ROOT)
    assert main([DEMO, ckpt, '--budgets', *budgets, '--latency-table', osp.join(work, 'table.json'), '--iters', '8',
                 '--num-images', '1', '--work-dir', str(tmp_path), *FAST, '--parents', '4', *options]) == 0
    front = json.load(open(tmp_path / 'front.json'))['budgets']
    assert [row['name'] for row in front] == budgets and [row['fraction'] for row in front] == [float(budgets[0][:-1]),
                                                                                               1.0]
    assert [row['budget'] for row in front] == [pytest.approx(float(budgets[0][:-1]) * dense), pytest.approx(dense)]
    md = open(tmp_path / 'front.md').read()
    assert md.startswith('| budget (of dense) | band |')
    assert f'| 1x | ({budgets[0]}, 1x] = (' in md
    for row in front:
        if row['config_file']:
            assert osp.basename(row['config_file']) == f"sparsevit_max{row['name']}.py"
            assert osp.isfile(row['config_file'])
    assert f'search_budgets{budgets[0]}_1x_summary.json' in os.listdir(tmp_path)


#: sparsest / dense backbone latency of the demo model as its search saw it (2-core CPU, 224x224, batch 4), and the
#: demo's input size
DEMO_SPARSEST_FRACTION = 11.96 / 50.54
DEMO_IMG = 224


def demo_fractions():
    """The demo's band (tools/demo.sh): its default fractions, checked to be passed to the search as fractions."""
    script = open(osp.join(ROOT, 'tools', 'demo.sh')).read()
    assert '--max "${MAX_FRAC}x" --min "${MIN_FRAC}x"' in script, 'the demo must search with a relative band'
    high = re.search(r'MAX_FRAC="\$\{DEMO_MAX_FRAC:-([0-9.]+)\}"', script).group(1)
    low = re.search(r'MIN_FRAC="\$\{DEMO_MIN_FRAC:-([0-9.]+)\}"', script).group(1)
    return high, low


@pytest.mark.parametrize('speed', [1.5, 1 / 1.5])
def test_demo_band_and_search_survive_a_change_of_machine_speed(speed, demo, tmp_path, capsys, monkeypatch,
                                                                 cost_clock):
    """The demo's band and search steps on a deterministic cost clock, the machine ``speed`` times slower during the
    search than when the band was chosen: the relative band finds configurations either way. The band measured
    in milliseconds the way the demo did before (the dense backbone timed in another process, then fractions of
    it passed as ms) falls off the search's range on a machine 1.5x faster (the failure of a fresh `make demo`)."""
    import sparsevit.search.runner as runner
    from sparsevit.deploy.build import build_sparse_backbone
    from sparsevit.utils.config import load_config
    from sparsevit.utils.latency import measure_backbone_latency
    from tools.search import main
    options, ckpt = demo
    high, low = demo_fractions()
    clock = cost_clock()
    real_backbone = runner.get_sparse_backbone

    def clocked_backbone(model):  # the search's backbone runs on the cost clock
        backbone = real_backbone(model)
        clock.attach(backbone)
        return backbone

    monkeypatch.setattr(runner, 'get_sparse_backbone', clocked_backbone)
    # step "band" (as the demo did before): the dense SparseViT backbone timed at today's speed
    backbone, _ = build_sparse_backbone(load_config(osp.join(ROOT, DEMO)), ckpt)
    clock.attach(backbone)

    def latency(ratio=0.0):
        backbone.set_pruning_ratios([[ratio] * d for d in backbone.depths])
        return measure_backbone_latency(backbone, DEMO_IMG, 1, 0, 2, 'cpu')['latency_ms']
    # a fixed cost per forward that gives the clock the demo's measured sparsest / dense ratio (11.96 / 50.54 ms on
    # a 2-core CPU: a forward's overhead does not shrink with the windows)
    clock.overhead = 0.0
    dense, sparsest = latency(), latency(0.8)
    clock.overhead = 1e-3 * (sparsest - DEMO_SPARSEST_FRACTION * dense) / (DEMO_SPARSEST_FRACTION - 1)
    dense_then = latency()
    clock.speed = speed  # the machine changes speed between the two steps
    monkeypatch.chdir(ROOT)
    common = [DEMO, ckpt, '--latency-table', '', '--iters', '20', '--num-images', '1', *FAST, '--img_size',
              str(DEMO_IMG), *options]

    def search(name, band):
        work = tmp_path / f'{name}_{speed:.2f}'
        args = list(common)
        args[3] = str(work / 'latency_table.json')
        code = main([*args, *band, '--work-dir', str(work)])
        return code, capsys.readouterr(), work

    code, out, work = search('relative', ['--max', f'{high}x', '--min', f'{low}x'])
    assert code == 0, out.err[-2000:]
    summary = json.load(open(work / f'search_max{high}x_min{low}x_summary.json'))
    dense_now = summary['band']['dense_ms']
    assert dense_now == pytest.approx(speed * dense_then, rel=0.05)  # the table's dense prediction, at search time
    assert summary['band']['budgets'][0]['ms'] == pytest.approx(float(high) * dense_now)
    assert float(low) * dense_now <= summary['best']['latency'] <= float(high) * dense_now
    assert osp.isfile(work / f'sparsevit_max{high}x_min{low}x.py')

    absolute = ['--max', f'{float(high) * dense_then:.3f}', '--min', f'{float(low) * dense_then:.3f}']
    code, out, work = search('absolute', absolute)
    if speed > 1:  # band chosen on a faster machine: the ms band finds configurations the demo did not ask for
        assert code == 0, out.err[-2000:]
        best = json.load(open(work / f'search_max{absolute[1]}_min{absolute[3]}_summary.json'))['best']
        assert best['latency'] < float(low) * dense_now
    else:  # band chosen under load, search on a faster machine: most of the band lies above dense
        assert code == 1
        one_error_line(out.err, 'the search found no configuration inside the latency band', 'above',
                       'as fractions of the dense latency: --max 1.27x --min 0.9x (above 1x is slower than dense)')
