"""The experiments pipeline's (sparsevit.experiments.pipeline) wiring of the new steps at tiny scale: candidates
from a search history, one interleaved latency run of every backbone (with GMACs), the matched pick, the rows
(random-window seeds, width baselines), and the commands of the test and kept-window steps as tools/test.py and
tools/analyze_windows.py parse them."""
import json
import os
import os.path as osp
import sys

import pytest

from tool_loader import load_tool

from sparsevit.experiments.pipeline import SPARSE_CFG, Pipeline, Row
from sparsevit.experiments.settings import ExperimentError, Settings
from sparsevit.schedule import gene_names

DEPTHS = (2, 2, 6, 2)


def genes(value: float) -> dict:
    return {n: value for n in gene_names(DEPTHS)}


@pytest.fixture
def pipeline(tmp_path):
    st = Settings(dir=str(tmp_path / 'work'), data=str(tmp_path / 'data'), img_size=128, budgets=2, parents=4,
                  match_candidates=2, random_seeds=2, latency_batch=1, latency_warmup=0, latency_repeats=1,
                  latency_rounds=2, window_images=3, guard=0)
    return Pipeline(st, sys.executable)


def write_history(pipeline, texts, records):
    from sparsevit.search.outputs import SearchFiles, budgets_tag
    files = SearchFiles(pipeline.dirs['search'], budgets_tag(texts))
    os.makedirs(files.work_dir, exist_ok=True)
    with open(files.history, 'w') as f:
        f.write(''.join(json.dumps(r) + '\n' for r in records))


def record(step, budget, metric, value, latency):
    return dict(step=step, origin='random', cached=False, feasible=True, budget=budget, latency=latency,
                metric=metric, config=genes(value), extra={})


def test_candidates_latency_match_and_rows(pipeline):
    budgets = [0.8, 0.6]  # the experiments' order (by size); the search got 0.600x 0.800x
    with pytest.raises(ExperimentError, match='wrote no history'):
        pipeline.read_candidates(budgets)
    write_history(pipeline, ['0.600x', '0.800x'], [
        record(0, 1, 0.50, 0.2, 90.0), record(1, 1, 0.55, 0.3, 85.0), record(2, 1, 0.40, 0.1, 95.0),
        record(3, 0, 0.30, 0.6, 50.0)])
    candidates = pipeline.read_candidates(budgets)
    assert [c.name for c in candidates[0]] == ['cand_b1_r0', 'cand_b1_r1']  # the search's budget 1 is our 0
    assert [c.metric for c in candidates[0]] == [0.55, 0.50] and len(candidates[1]) == 1
    sizes = [96, 64]
    latency = pipeline.measure_all(sizes, candidates)  # one interleaved run in a subprocess
    expected = {'dense128', 'dense96', 'dense64', 'width0.75', 'width0.5', 'cand_b1_r0', 'random_b1_r0',
                'cand_b1_r1', 'random_b1_r1', 'cand_b2_r0', 'random_b2_r0'} | {f'uniform{u / 10:g}' for u in range(1, 9)}
    assert set(latency) == expected
    assert all(len(r['runs_ms']) == 2 and r['latency_ms'] > 0 for r in latency.values())
    gmacs = {n: r['gmacs'] for n, r in latency.items()}
    assert gmacs['width0.5'] < gmacs['width0.75'] < gmacs['dense128'] and gmacs['dense64'] < gmacs['dense96']
    assert gmacs['cand_b1_r0'] == gmacs['random_b1_r0'] < gmacs['dense128']  # same windows kept
    assert gmacs['cand_b2_r0'] < gmacs['cand_b1_r0']  # 0.6 everywhere prunes more than 0.3
    assert latency['width0.75']['backbone'] == {'embed_dims': 24}

    # the measured latencies are whatever this machine gives: pick against constructed ones too
    fake = {n: dict(r, latency_ms=100.0) for n, r in latency.items()}
    fake['cand_b1_r0']['latency_ms'], fake['cand_b1_r1']['latency_ms'] = 106.0, 98.0  # rank 1 is 2 % off
    fake['cand_b2_r0']['latency_ms'] = 105.0  # 5 % off: not matched
    matches = pipeline.match(sizes, candidates, fake)
    assert (matches[0]['picked'], matches[0]['rank'], matches[0]['matched']) == ('cand_b1_r1', 1, True)
    assert (matches[1]['picked'], matches[1]['matched']) == ('cand_b2_r0', False)
    assert matches[0]['candidates'][1]['gap'] == pytest.approx(-0.02)
    rows = pipeline.rows(sizes, matches, {0: 0.3, 1: 0.5})
    by_name = {r.name: r for r in rows}
    assert by_name['sparsevit_b1'].latency_key == by_name['nosaa_b1'].latency_key == 'cand_b1_r1'
    assert by_name['sparsevit_b1'].pruning_ratios == candidates[0][1].pruning_ratios
    seeds = [r for r in rows if r.group == 'random_b1']
    assert [r.name for r in seeds] == ['random_b1_s0', 'random_b1_s1'] and seeds[1].seed == 1
    assert seeds[1].latency_key == 'random_b1_r1' and 'model.backbone.selection_seed=1' in seeds[1].options
    width = by_name['width0.5']
    assert (width.method, width.width, width.latency_key, width.budget) == ('width', 0.5, 'width0.5', None)
    assert width.options == ['model.backbone.embed_dims=16', 'model.neck.in_channels=[16,32,64,128]']
    run_names = [r.run_name for r in rows]
    assert set(run_names) <= set(pipeline.runner.order)  # every row's test is a planned run
    assert set(n for n in pipeline.runner.order if n.startswith('test_')) == set(run_names)


def test_candidates_around_the_edges_the_search_resolved(pipeline):
    from sparsevit.search.outputs import SearchFiles, budgets_tag
    budgets = [0.8, 0.6]
    write_history(pipeline, ['0.600x', '0.800x'], [
        record(0, 1, 0.55, 0.3, 70.0), record(1, 1, 0.50, 0.2, 79.0), record(2, 0, 0.30, 0.6, 50.0)])
    files = SearchFiles(pipeline.dirs['search'], budgets_tag(['0.600x', '0.800x']))
    with open(files.summary, 'w') as f:  # the search's band: its budgets in ascending order, resolved to ms
        json.dump(dict(band=dict(budgets=[dict(text='0.600x', ms=60.0), dict(text='0.800x', ms=80.0)])), f)
    candidates = pipeline.read_candidates(budgets)  # match_candidates=2: the best, then the best at the edge
    assert [c.predicted_ms for c in candidates[0]] == [70.0, 79.0]
    assert [c.predicted_ms for c in candidates[1]] == [50.0, 70.0]  # 70 ms: +16.7 % of 60 ms, bin +16 %


def test_guard_budget_is_searched_but_not_compared(pipeline):
    from sparsevit.search.outputs import SearchFiles, budgets_tag
    pipeline.st.guard, pipeline.st.match_candidates = 1.25, 3
    budgets = [0.8, 0.6]
    texts = ['0.600x', '0.800x', '0.950x']  # the guard: 1.25 x 0.8, capped at 0.95
    assert [f'{b:.3f}x' for b in pipeline.searched(budgets)] == ['0.800x', '0.600x', '0.950x']
    write_history(pipeline, texts, [
        record(0, 1, 0.55, 0.3, 70.0), record(1, 1, 0.50, 0.2, 79.0), record(2, 0, 0.30, 0.6, 50.0),
        record(3, 2, 0.60, 0.1, 90.0)])  # the guard budget's best, +12.5 % of budget 0's edge
    files = SearchFiles(pipeline.dirs['search'], budgets_tag(texts))
    with open(files.summary, 'w') as f:
        json.dump(dict(band=dict(budgets=[dict(text=t, ms=m) for t, m in zip(texts, (60.0, 80.0, 95.0))])), f)
    candidates = pipeline.read_candidates(budgets)
    assert sorted(candidates) == [0, 1]  # no rows of the guard budget's own
    assert [c.predicted_ms for c in candidates[0]] == [70.0, 79.0, 90.0]


def test_step_commands_parse(pipeline):
    row = Row('random_b1_s1', 'random', 128, [[0.5, 0.5]] + [[0.0] * d for d in DEPTHS[1:]], SPARSE_CFG,
              'saa.pth', 'SAA', 'random_b1_r0', 0,
              ['model.backbone.window_selection=random', 'model.backbone.selection_seed=1'], group='random_b1',
              seed=1)
    cmd = pipeline.test_command(row)
    args = load_tool('test').parse_args(cmd[2:])
    work = osp.join(pipeline.st.dir, 'eval', 'random_b1_s1')
    assert args.eval == ['bbox', 'segm'] and args.eval_options == {'jsonfile_prefix': osp.join(work, 'results')}
    assert args.cfg_options['model.backbone.selection_seed'] == 1
    assert args.cfg_options['model.backbone.window_selection'] == 'random'
    assert args.cfg_options['data.test.pipeline.1.img_scale'] == (128, 128)
    cmd = pipeline.windows_command('saa', 'saa.pth')
    args = load_tool('analyze_windows').parse_args(cmd[2:])
    assert (args.split, args.ratios, args.num_images, args.random_seeds) == ('val', [0.5, 0.7], 3, 2)
    assert args.json == osp.join(pipeline.st.dir, 'windows_saa.json') and args.checkpoint == 'saa.pth'
    assert args.cfg_options['data.val.pipeline.1.img_scale'] == (128, 128)
