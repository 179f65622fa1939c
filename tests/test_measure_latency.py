"""tools/measure_latency.py: runs on CPU with tiny repeats, writes --json, and bad arguments fail on one line.

Also the latency protocols, ``--dtype`` / ``autocast_context``, ``--compile`` and ``--scope detector``."""
import json
import os.path as osp
import re
from functools import partial

import pytest
import torch

from helpers import run_python
from tool_loader import load_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'measure_latency.py')
SPARSE_CFG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_sparsevit_demo.py')
DENSE_CFG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_swin_demo.py')
FAST = ['--img_size', '64', '--batch-size', '1', '--num-warmup', '1', '--num-repeats', '4', '--device', 'cpu']
run = partial(run_python, TOOL, timeout=180)  # run(*args, timeout=180): tools/measure_latency.py ARGS


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
    assert data['protocol'] == 'custom protocol: 1 warm-up + 4 timed forwards, trimmed mean (25 % each side)'
    assert (data['scope'], data['dtype'], data['compiled']) == ('backbone', 'fp32', False)
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


@pytest.mark.parametrize('args, expect', [
    (['--img_size', '0'], '--img_size'),
    (['--img_size', 'big'], '--img_size'),
    (['--batch-size', '-1'], '--batch-size'),
    (['--num-repeats', '0'], '--num-repeats'),
    (['--num-warmup', '-2'], '--num-warmup'),
    (['--device', 'tpu'], '--device'),
    (['--dtype', 'int8'], '--dtype'),
    (['--dtype', 'fp16'], '--dtype fp16 needs CUDA; the device is cpu (use bf16 or fp32)'),
    (['--scope', 'neck'], '--scope'),
    (['--pruning-ratios', '1.5'], 'allowed range is [0, 1)'),
    (['--pruning-ratios', '[0.1, 0.2]'], 'has 2 stages'),
    (['--pruning-ratios', '[[0.5, 0.1], 0, 0, 0]'], 'non-decreasing'),
    (['--pruning-ratios', 'lots'], 'neither JSON nor a Python literal'),
    (['--pruning-ratios', '{"backbone.stages.9": 0.1}'], 'does not match depths'),
    (['--cfg-options', 'model.backbone.depths=[2,2,2]'], 'stages'),
    (['--cfg-options', 'model.backbone.type=ResNet', '--pruning-ratios', '0.1'], 'pruning_ratios is set'),
])
def test_bad_arguments_one_error_line(capsys, args, expect):
    tool = load_tool('measure_latency')
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


# ----------------------------------------------------------------------------------------------------------------
# Protocols (issue 7): the original's on CUDA, a short one on CPU; flags override both; output and JSON say which
# ----------------------------------------------------------------------------------------------------------------
def test_default_protocols():
    from sparsevit.utils.latency import default_protocol
    warm, reps, text = default_protocol('measure_latency', torch.device('cuda'))
    assert (warm, reps) == (500, 500) and text.startswith('original CUDA protocol: 500 warm-up + 500 timed')
    warm, reps, text = default_protocol('measure_latency', torch.device('cpu'))
    assert (warm, reps) == (5, 20) and text.startswith('short CPU protocol: 5 warm-up + 20 timed')
    assert default_protocol('search', 'cuda')[:2] == (200, 300)
    warm, reps, text = default_protocol('measure_latency', 'cuda', num_repeats=30)
    assert (warm, reps) == (500, 30) and text.startswith('custom protocol')
    with pytest.raises(ValueError, match='unknown latency protocol'):
        default_protocol('train', 'cpu')


def test_interleave_orders_warmup_and_rounds():
    """The one interleaved timer (experiments: alternate; benchmark: rotate; a fixed order: same)."""
    from sparsevit.utils.latency import interleave
    for order, expected in (('alternate', 'abccbaabc'), ('rotate', 'abcbcacab'), ('same', 'abcabcabc')):
        calls, rounds = [], []
        times = interleave('abc', 2, lambda k: calls.append(k) or float(len(calls)), warmup=1, order=order,
                           on_round=rounds.append)
        assert ''.join(calls) == expected and rounds == [0, 1, 2]
        assert times == {k: [float(i + 1) for i, c in enumerate(calls) if c == k][1:] for k in 'abc'}  # no warm-up
    with pytest.raises(ValueError, match='order must be one of'):
        interleave('ab', 1, len, order='random')


def test_cpu_default_is_the_short_protocol_with_progress_and_eta(tmp_path):
    out = tmp_path / 'short.json'
    proc = run(SPARSE_CFG, '--img_size', '32', '--batch-size', '1', '--device', 'cpu', '--json', str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert (data['num_warmup'], data['num_repeats'], len(data['times_ms'])) == (5, 20, 20)
    assert data['protocol'].startswith('short CPU protocol: 5 warm-up + 20 timed forwards')
    assert f"protocol: {data['protocol']}" in proc.stdout
    assert '25/25' in proc.stderr and 'ETA' in proc.stderr  # one bar over warm-up and timed forwards
    assert (data['scope'], data['dtype'], data['compiled']) == ('backbone', 'fp32', False)


def test_parser_defaults_are_the_originals():
    args = load_tool('measure_latency').parse_args([SPARSE_CFG])
    assert (args.img_size, args.batch_size, args.scope, args.dtype, args.compile) == (672, 4, 'backbone', 'fp32',
                                                                                     False)
    assert args.num_warmup is None and args.num_repeats is None  # -> the device's protocol


# ----------------------------------------------------------------------------------------------------------------
# Precision, compile, detector scope (issue 9)
# ----------------------------------------------------------------------------------------------------------------
def test_autocast_context():
    from sparsevit.utils.precision import autocast_context
    with autocast_context('fp32', 'cpu'):
        assert not torch.is_autocast_enabled('cpu')
    with autocast_context('bf16', torch.device('cpu')):
        assert torch.is_autocast_enabled('cpu') and torch.get_autocast_dtype('cpu') == torch.bfloat16
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled('cpu')
    with pytest.raises(ValueError, match='fp16 needs CUDA'):
        autocast_context('fp16', 'cpu')
    with pytest.raises(ValueError, match='int8: allowed values are fp32, fp16, bf16'):
        autocast_context('int8', 'cpu')


def demo_detector():
    from mmcv import Config
    from mmdet.models import build_detector
    cfg = Config.fromfile(SPARSE_CFG)
    torch.manual_seed(0)
    return build_detector(cfg.model).eval()


def test_autocast_context_keeps_mmdets_fp32_parts_in_fp32_and_restores_them():
    from mmdet.models.roi_heads.roi_extractors import BaseRoIExtractor
    from sparsevit.utils.precision import autocast_context
    model = demo_detector()
    extractors = [m for m in model.modules() if isinstance(m, BaseRoIExtractor)]
    assert len(extractors) == 2
    seen = []
    hook = extractors[0].roi_layers[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    feats = [torch.randn(1, 64, 16, 16, dtype=torch.bfloat16)]
    rois = torch.tensor([[0.0, 1.0, 1.0, 40.0, 40.0]])
    with torch.no_grad(), autocast_context('bf16', 'cpu', model):
        assert 'forward' in vars(extractors[0]) and 'get_bboxes' in vars(model.rpn_head)
        assert 'get_bboxes' in vars(model.roi_head.bbox_head)
        out = extractors[0](feats, rois)  # mmcv's RoIAlign has no bf16 kernel: it gets fp32
    hook.remove()
    assert seen == [torch.float32] and out.dtype == torch.float32
    for m in (extractors[0], model.rpn_head, model.roi_head.bbox_head, model.roi_head.mask_head):
        assert not {'forward', 'get_bboxes', 'get_seg_masks'} & set(vars(m))
    with torch.no_grad(), pytest.raises(RuntimeError):
        extractors[0](feats, rois)  # outside the context: bf16 reaches RoIAlign


def test_compile_error_is_one_line():
    from sparsevit.utils.latency import CompileError, compile_module

    class Breaky(torch.nn.Module):
        def forward(self, x):
            if x.sum().item() > 0:  # data-dependent branch: a graph break
                return x * 2
            return x

    with pytest.raises(CompileError) as info:
        compile_module(Breaky(), torch.ones(2))
    message = str(info.value)
    assert message.startswith('torch.compile(fullgraph=True) of Breaky failed: ') and '\n' not in message


def test_compile_failure_exits_1_with_one_line(monkeypatch, capsys):
    import sparsevit.utils.latency as latency

    def fail(module, example, dtype='fp32'):
        raise latency.CompileError('torch.compile(fullgraph=True) of SparseViT failed: Unsupported: graph break')

    monkeypatch.setattr(latency, 'compile_module', fail)
    code = load_tool('measure_latency').main([SPARSE_CFG, '--compile', '--device', 'cpu', '--img_size', '32', '--batch-size', '1',
                             '--num-warmup', '0', '--num-repeats', '1', '--no-progress'])
    err = capsys.readouterr().err
    assert code == 1 and error_lines_of(err) == [
        'measure_latency.py: error: torch.compile(fullgraph=True) of SparseViT failed: Unsupported: graph break']


def error_lines_of(text: str) -> list:
    return [line for line in text.splitlines() if 'error' in line.lower()]


def test_bf16_and_compiled_backbone(monkeypatch, tmp_path, capsys):
    """``--compile --dtype bf16``: fullgraph torch.compile under bf16 autocast. Dynamo traces the whole forward
    (a graph break would fail); the ``eager`` backend skips inductor's C++ build (minutes on 2 cores; the real
    compiler runs in tests/test_cuda.py and the benchmark)."""
    calls, real_compile = [], torch.compile

    def compile_eager(model, **kwargs):
        calls.append(kwargs)
        return real_compile(model, backend='eager', **kwargs)

    monkeypatch.setattr(torch, 'compile', compile_eager)
    out = tmp_path / 'bf16.json'
    ratios = '[[0.5, 0.5], [0, 0], [.1, .1, .2, .2, .2, .2], [0, 0]]'
    code = load_tool('measure_latency').main([SPARSE_CFG, *FAST, '--dtype', 'bf16', '--compile', '--pruning-ratios', ratios,
                             '--json', str(out), '--no-progress'])
    stdout = capsys.readouterr().out
    assert code == 0 and calls == [dict(fullgraph=True)]
    data = json.loads(out.read_text())
    assert (data['dtype'], data['compiled'], data['scope']) == ('bf16', True, 'backbone')
    assert len(data['times_ms']) == 4 and data['latency_ms'] > 0
    assert stdout.strip().splitlines()[-1].startswith('latency of SparseViT (64x64, batch 1, cpu, bf16, compiled): ')


@pytest.mark.parametrize('dtype', ['fp32', 'bf16'])
def test_detector_scope(tmp_path, dtype):
    out = tmp_path / 'detector.json'
    proc = run(SPARSE_CFG, '--scope', 'detector', '--img_size', '72', '--batch-size', '2', '--num-warmup', '1',
               '--num-repeats', '2', '--device', 'cpu', '--dtype', dtype, '--pruning-ratios', '0.3', '--json',
               str(out), '--no-progress')
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert (data['scope'], data['detector'], data['backbone'], data['dtype']) == ('detector', 'MaskRCNN',
                                                                                  'SparseViT', dtype)
    assert data['input_shape'] == [2, 3, 96, 96]  # 72 padded to a multiple of 32, as the test pipeline
    assert 0 < data['backbone_ms'] < data['latency_ms'] and 0 < data['neck_ms'] < data['latency_ms']
    assert data['backbone_share'] == pytest.approx(data['backbone_ms'] / data['latency_ms'])
    assert 50 <= data['detections_per_image'] <= 100  # up to max_per_img; fewer proposals at this tiny size
    assert data['pruning_ratios'][0] == [0.3, 0.3]
    lines = proc.stdout.strip().splitlines()
    assert re.match(r'backbone [0-9.]+ ms \([0-9.]+ % of the detector\), neck', lines[-2])
    assert lines[-1].startswith(f'latency of MaskRCNN (SparseViT) (72x72, batch 2, cpu, {dtype}): ')


def test_detector_scope_coco_config_detects_with_random_weights(tmp_path):
    """80 classes: without the favoured class no random-weight box would pass score_thr 0.05."""
    out = tmp_path / 'coco.json'
    proc = run(osp.join(ROOT, 'configs', 'swin', 'mask_rcnn_swin-t-p4-w7_fpn_fp16_ms-crop-3x_coco.py'),
               '--scope', 'detector', '--img_size', '64', '--batch-size', '1', '--num-warmup', '0',
               '--num-repeats', '1', '--device', 'cpu', '--json', str(out), '--no-progress')
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data['backbone'] == 'SwinTransformer' and data['detections_per_image'] > 0
    assert 'Initialization' not in proc.stdout + proc.stderr and len(proc.stdout.splitlines()) == 3
    assert 'No pre-trained weights' not in proc.stderr  # random weights are the point: no warning about them
