"""tools/measure_latency.py: runs on CPU with tiny repeats, writes --json, and bad arguments fail on one line."""
import importlib.util
import json
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'measure_latency.py')
SPARSE_CFG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_sparsevit_demo.py')
DENSE_CFG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_swin_demo.py')
FAST = ['--img_size', '64', '--batch-size', '1', '--num-warmup', '1', '--num-repeats', '4', '--device', 'cpu']


def run(*args, timeout=180):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def error_lines(proc) -> list:
    return [line for line in proc.stderr.splitlines() if 'error' in line.lower()]


def test_measures_with_json_and_override(tmp_path):
    out = tmp_path / 'sub' / 'latency.json'
    ratios = '[[0.5, 0.5], [0, 0], [.1, .1, .2, .2, .2, .2], [0, 0]]'  # a Python literal (.1), not JSON
    proc = run(SPARSE_CFG, *FAST, '--pruning-ratios', ratios, '--json', str(out))
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    latency = float(re.search(r'([0-9.]+) ms$', last).group(1))
    data = json.loads(out.read_text())
    assert data['latency_ms'] == pytest.approx(latency, abs=0.006) and latency > 0
    assert len(data['times_ms']) == 4 and all(t > 0 for t in data['times_ms'])
    assert (data['img_size'], data['batch_size'], data['device'], data['num_warmup']) == (64, 1, 'cpu', 1)
    assert data['pruning_ratios'] == [[0.5, 0.5], [0.0, 0.0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0.0, 0.0]]
    assert data['backbone'] == 'SparseViT'
    ordered = sorted(data['times_ms'])
    assert data['latency_ms'] == pytest.approx(sum(ordered[1:3]) / 2)  # 25 % dropped on each side


def test_top_level_ratios_gene_dict_and_dense_swin(tmp_path):
    out = tmp_path / 'a.json'
    genes = '{"backbone.stages.0": 0.3, "backbone.stages.1": 0, "backbone.stages.2_1": 0.1, ' \
            '"backbone.stages.2_2": 0.2, "backbone.stages.2_3": 0.2, "backbone.stages.3": 0}'
    proc = run(DENSE_CFG, *FAST, '--pruning-ratios', genes, '--json', str(out), '--no-progress')
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())  # the dense Swin config became a sparse one with these ratios
    assert data['backbone'] == 'SparseSwinTransformer'
    assert data['pruning_ratios'] == [[0.3, 0.3], [0.0, 0.0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0.0, 0.0]]
    proc = run(SPARSE_CFG, *FAST, '--json', str(out), '--cfg-options',
               'pruning_ratios=[[0.2,0.2],[0,0],[0,0,0,0,0,0],[0,0]]')  # the original's top-level key
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())['pruning_ratios'][0] == [0.2, 0.2]


def load_tool():
    spec = importlib.util.spec_from_file_location('measure_latency_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('args, expect', [
    (['--img_size', '0'], '--img_size'),
    (['--img_size', 'big'], '--img_size'),
    (['--batch-size', '-1'], '--batch-size'),
    (['--num-repeats', '0'], '--num-repeats'),
    (['--num-warmup', '-2'], '--num-warmup'),
    (['--device', 'tpu'], '--device'),
    (['--pruning-ratios', '1.5'], 'allowed range is [0, 1)'),
    (['--pruning-ratios', '[0.1, 0.2]'], 'has 2 stages'),
    (['--pruning-ratios', '[[0.5, 0.1], 0, 0, 0]'], 'non-decreasing'),
    (['--pruning-ratios', 'lots'], 'neither JSON nor a Python literal'),
    (['--pruning-ratios', '{"backbone.stages.9": 0.1}'], 'does not match depths'),
    (['--cfg-options', 'model.backbone.depths=[2,2,2]'], 'stages'),
    (['--cfg-options', 'model.backbone.type=ResNet', '--pruning-ratios', '0.1'], 'pruning_ratios is set'),
])
def test_bad_arguments_one_error_line(capsys, args, expect):
    tool = load_tool()
    argv = [SPARSE_CFG, '--num-repeats', '1', '--num-warmup', '0', '--img_size', '32', '--device', 'cpu', *args]
    try:
        code = tool.main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if 'error' in line.lower()]
    assert len(errors) == 1, err
    assert expect in errors[0]


def test_bad_config_and_device_in_subprocess(tmp_path):
    proc = run(osp.join(ROOT, 'configs', 'missing.py'), '--device', 'cpu')
    assert proc.returncode == 2 and error_lines(proc) == [
        f"measure_latency.py: error: config file not found: {osp.join(ROOT, 'configs', 'missing.py')}"]
    assert 'Traceback' not in proc.stderr
    proc = run(SPARSE_CFG, '--json', str(tmp_path), '--device', 'cpu')  # a directory
    assert proc.returncode == 2 and len(error_lines(proc)) == 1 and 'is a directory' in proc.stderr
    if not torch.cuda.is_available():
        proc = run(SPARSE_CFG, '--device', 'cuda', '--num-repeats', '1')
        assert proc.returncode == 2 and len(error_lines(proc)) == 1 and 'no CUDA GPU' in proc.stderr
