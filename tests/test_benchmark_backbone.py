"""tools/benchmark_backbone.py: a tiny interleaved run (table, ratios, n/a cells, JSON), the rows read from the
configs, and the goal logic (sparsevit.deploy.benchmark)."""
import json
import os.path as osp
from functools import partial

import pytest

from helpers import run_python

from sparsevit.deploy.benchmark import goals, rows

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'benchmark_backbone.py')
TINY = ['--img_size', '64', '--batch-size', '1', '--embed-dims', '16', '--num-warmup', '0', '--num-repeats', '2',
        '--device', 'cpu']
run = partial(run_python, TOOL, timeout=600)  # run(*args): tools/benchmark_backbone.py ARGS


def test_tiny_run_table_json_and_goals(tmp_path):
    out = tmp_path / 'bench.json'
    proc = run(*TINY, '--columns', 'eager-bf16,onnxruntime-fp32', '--rows', 'dense,cfg3', '--stat',
               'trimmed-mean', '--json', str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data['columns'] == ['eager-fp32', 'eager-bf16', 'onnxruntime-fp32']  # the baseline's column first
    assert data['rows'] == ['mmdet dense', 'dense', 'cfg3']
    table = data['table']
    assert table['mmdet dense']['eager-fp32']['ratio'] == 1.0
    for row in data['rows']:
        for col in ('eager-fp32', 'eager-bf16'):
            cell = table[row][col]
            assert cell['ms'] > 0 and cell['ratio'] == pytest.approx(cell['ms'] / table['mmdet dense']
                                                                     ['eager-fp32']['ms'])
            assert len(data['times_ms'][f'{row} / {col}']) == 2
        ort = table[row]['onnxruntime-fp32']
        assert ('ms' in ort) != ('error' in ort)  # measured, or n/a with its reason
    by_goal = {g['goal']: g for g in data['goals']}
    bf16 = by_goal['eager bf16 cfg3 <= 0.60x our eager fp32 cfg3']
    assert bf16['value'] == pytest.approx(table['cfg3']['eager-bf16']['ms'] / table['cfg3']['eager-fp32']['ms'])
    assert bf16['met'] == (bf16['value'] <= 0.60)
    assert by_goal['compiled never slower than eager (same row and precision)']['met'] is None  # no compiled column
    text = proc.stdout
    assert 'ratio to mmdet dense eager-fp32' in text and 'goals:' in text
    assert 'compiled never slower than eager (same row and precision) -> not measured' in text
    if 'error' in table['dense']['onnxruntime-fp32']:
        assert 'n/a cells:' in text and 'onnxruntime-fp32 (all rows): ' in text


def cell(ms):
    return dict(ms=ms)


def test_rows_are_the_searched_configs():
    """cfg1-3 are the ratios of configs/sparsevit/sparsevit_cfg*.py (the original README's configurations)."""
    assert rows(ROOT) == {'dense': 0.0, 'cfg1': [[.3, .3], [0, 0], [.1, .1, .2, .2, .2, .2], [0, 0]],
                          'cfg2': [[.6, .6], [0, 0], [.2, .2, .4, .4, .5, .5], [0, 0]],
                          'cfg3': [[.7, .7], [0, 0], [.2, .2, .4, .4, .5, .5], [0, 0]], 'uniform 0.6': 0.6}


def test_goals_met_and_missed():
    table = {
        'mmdet dense': {'eager-fp32': cell(100.0)},
        'dense': {'eager-fp32': cell(80.0), 'eager-bf16': cell(45.0), 'compiled-fp32': cell(78.0),
                  'compiled-bf16': cell(46.0), 'onnxruntime-fp32': cell(90.0)},
        'cfg3': {'eager-fp32': cell(40.0), 'eager-bf16': cell(20.0), 'compiled-fp32': cell(39.0),
                 'compiled-bf16': cell(19.5), 'onnxruntime-fp32': cell(54.0)},
    }
    found = goals(table)
    assert [g['met'] for g in found] == [True, False, False]
    assert found[0]['value'] == pytest.approx(0.5)
    assert found[1]['value'] == pytest.approx(46 / 45) and 'dense, bf16' in found[1]['detail']
    assert found[2]['value'] == pytest.approx(abs(54 / 90 - 40 / 80))  # 0.6 vs 0.5
    table['cfg3']['onnxruntime-fp32'] = cell(46.0)
    table['dense']['compiled-bf16'] = cell(45.0)
    assert [g['met'] for g in goals(table)] == [True, True, True]
    table['cfg3']['eager-bf16'] = cell(25.0)
    assert goals(table)[0]['met'] is False  # 0.625 > 0.60


@pytest.mark.parametrize('args, message', [
    (['--columns', 'eager-fp16'], 'fp16 needs CUDA'),
    (['--columns', 'eager-int8'], "unknown column ['eager-int8']"),
    (['--rows', 'cfg9'], "unknown row ['cfg9']"),
    (['--embed-dims', '50'], 'does not split into 32-dim heads'),
    (['--num-repeats', '0'], 'must be an integer >= 1, got 0'),
])
def test_bad_arguments(args, message):
    proc = run(*TINY, *args)
    assert proc.returncode == 2 and message in proc.stderr and 'Traceback' not in proc.stderr


def test_deploy_extra_pins_agree_and_keep_numpy_below_2():
    """setup.py's ``deploy`` extra and tools/setup_env.sh install the same pins, with numpy<2 (mmcv 1.x)."""
    import ast
    import re
    with open(osp.join(ROOT, 'setup.py')) as f:
        tree = ast.parse(f.read())
    pins = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                and getattr(node.targets[0], 'id', None) == 'DEPLOY_REQUIRES')
    with open(osp.join(ROOT, 'tools', 'setup_env.sh')) as f:
        script = f.read()
    installed = re.search(r'^DEPLOY=\((.*)\)$', script, re.M).group(1).split()
    assert 'numpy<2' in pins and sorted(installed) == sorted(p for p in pins if p != 'numpy<2')
    assert {'onnx', 'onnxruntime'} <= {p.split('==')[0] for p in installed}
    assert '"${DEPLOY[@]}" "numpy<2"' in script
