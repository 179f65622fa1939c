"""Checks on a CUDA GPU (marker ``cuda``: skipped without one; ``make gpu-check`` runs them with ``pytest -m cuda``).

* the backbone on CUDA equals the backbone on CPU in fp32, dense and sparse, at a padded size (TF32 off);
* fp16 / bf16 autocast runs and, on the same stage input, keeps exactly the windows fp32 keeps;
* the latency and benchmark tools run on CUDA with ``--dtype fp16``, ``--compile`` and ``--scope detector``;
* one short training run under mmdet's fp16 (``fp16 = dict(loss_scale=512.)``: ``Fp16OptimizerHook`` and
  ``wrap_fp16_model``, as ``tools/train.py`` uses them) with the Sparsity-Aware Adaptation hook;
* a 1-process ``nccl`` process group through ``torchpack dist-run``, as :mod:`sparsevit.utils.dist` sets it up (the
  same script over ``gloo`` runs on CPU too, so the harness itself is checked on every machine).

Models are tiny (embed 16) and randomised (non-default LN and bias-table values).
"""
import copy
import glob
import json
import os.path as osp
import sys

import pytest
import torch

from sparsevit.datasets.synthetic import synthetic_cfg_options
from sparsevit.utils.latency import first_line
from sparsevit.utils.precision import autocast_context

from helpers import build_sparse, images, mpi_env, run, venv_env

TORCHPACK = osp.join(osp.dirname(sys.executable), 'torchpack')
SAA_DEMO = 'configs/demo/mask_rcnn_sparsevit_saa_demo.py'
SPARSE_DEMO = 'configs/demo/mask_rcnn_sparsevit_demo.py'
CFG1 = [[0.3, 0.3], [0, 0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0, 0]]
MIXED = [[0.5, 0.5], [0.2, 0.4], [0.1, 0.1, 0.3, 0.3, 0.5, 0.5], [0, 0.5]]
CONFIGS = dict(dense=0.0, cfg1=CFG1, mixed=MIXED)
SIZE = (200, 312)  # stage maps 50x78, 25x39, ...: padded in every stage
TIMEOUT = 600  # seconds a tool process may run


@pytest.fixture
def no_tf32():
    """Full fp32 matmuls and convolutions on CUDA (TF32 would differ from the CPU by ~1e-3), restored after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope='module')
def mmcv_cuda_ops():
    """mmcv-full's CUDA ops (RoIAlign, NMS) are needed by the detector and training checks: fail in one line when
    ``.venv`` was set up without ``nvcc`` (tools/setup_env.sh then builds mmcv-full for CPU only)."""
    from mmcv.ops import nms
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0]], device='cuda')
    try:
        nms(boxes, torch.tensor([0.9, 0.8], device='cuda'), 0.5)
    except (RuntimeError, NotImplementedError) as err:
        pytest.fail(f'mmcv-full has no CUDA ops ({first_line(err)}): install the CUDA toolkit (nvcc) and rerun '
                    f'`make env`, which rebuilds mmcv-full with them', pytrace=False)


def kept(selection) -> list:
    """Per stage, per pruned block: the kept window ids of every image, sorted (None for dense blocks)."""
    return [[None if rec is None else rec.keep.sort(dim=1).values.tolist() for rec in stage]
            for stage in selection]


def forward_recorded(model, img):
    model.record_selection = True
    with torch.no_grad():
        outs = model(img)
    return [o.float().cpu() for o in outs], kept(model.last_selection)


@pytest.mark.cuda
@pytest.mark.parametrize('name', list(CONFIGS))
def test_cuda_forward_equals_cpu_fp32(name, no_tf32):
    cpu = build_sparse(CONFIGS[name], seed=3)
    gpu = copy.deepcopy(cpu).cuda()
    img = images(2, *SIZE, seed=4)
    outs_cpu, kept_cpu = forward_recorded(cpu, img)
    outs_gpu, kept_gpu = forward_recorded(gpu, img.cuda())
    assert kept_gpu == kept_cpu
    for a, b in zip(outs_gpu, outs_cpu):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def stage_inputs(model, img) -> list:
    """The fp32 input (NHWC) of every stage of ``model`` on ``img``."""
    with torch.no_grad():
        x, hw = model.patch_embed(img)  # [B, H*W, C]
        x = model.drop_after_pos(x).view(x.shape[0], hw[0], hw[1], -1)  # [B, H, W, C]
        inputs = []
        for i in range(len(model.stages)):
            inputs.append(x.clone())
            x, _ = model.forward_stage(i, x)
    return inputs


def stage_kept(model, i: int, x, dtype: str) -> list:
    """Kept windows of stage ``i`` run on (a copy of) ``x`` at ``dtype``."""
    previous, model.last_selection = model.last_selection, []
    try:
        with torch.no_grad(), autocast_context(dtype, x.device):
            model.forward_stage(i, x.clone())
        return kept(model.last_selection)[0]
    finally:
        model.last_selection = previous


@pytest.mark.cuda
@pytest.mark.parametrize('dtype', ['fp16', 'bf16'])
@pytest.mark.parametrize('name', ['cfg1', 'mixed'])
def test_autocast_keeps_the_fp32_windows_on_cuda(name, dtype, no_tf32):
    model = build_sparse(CONFIGS[name], seed=5).cuda()
    img = images(2, *SIZE, seed=6).cuda()
    for i, x in enumerate(stage_inputs(model, img)):
        assert stage_kept(model, i, x, dtype) == stage_kept(model, i, x, 'fp32'), f'stage {i}'
    ref, _ = forward_recorded(model, img)
    with autocast_context(dtype, 'cuda'):
        half, _ = forward_recorded(model, img)
    for a, b in zip(half, ref):
        assert a.shape == b.shape and torch.isfinite(a).all()
    dense = build_sparse(0.0, seed=5).cuda()
    ref, _ = forward_recorded(dense, img)
    with autocast_context(dtype, 'cuda'):
        half, _ = forward_recorded(dense, img)
    for a, b in zip(half, ref):
        rel = ((a - b).norm() / b.norm()).item()
        assert rel < 0.05, f'{dtype} dense output deviates {rel:.3f} from fp32'


@pytest.mark.cuda
@pytest.mark.parametrize('extra', [
    ['--dtype', 'fp16'],
    ['--dtype', 'bf16', '--compile'],
    ['--dtype', 'fp16', '--scope', 'detector'],
    ['--dtype', 'bf16', '--scope', 'detector', '--compile'],
])
def test_measure_latency_tool_on_cuda(extra, tmp_path, mmcv_cuda_ops):
    out = tmp_path / 'latency.json'
    proc = run([sys.executable, 'tools/measure_latency.py', SPARSE_DEMO, '--device', 'cuda', '--img_size', '224',
                '--batch-size', '2', '--num-warmup', '2', '--num-repeats', '4', '--no-progress',
                '--pruning-ratios', json.dumps(CFG1), '--json', str(out), *extra], env=venv_env(), timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data['device'].startswith('cuda') and data['dtype'] == extra[1] and data['latency_ms'] > 0
    assert data['compiled'] == ('--compile' in extra)
    if '--scope' in extra:
        assert 0 < data['backbone_share'] < 1 and data['detections_per_image'] > 0


@pytest.mark.cuda
def test_benchmark_backbone_on_cuda(tmp_path):
    out = tmp_path / 'bench.json'
    proc = run([sys.executable, 'tools/benchmark_backbone.py', '--device', 'cuda', '--img_size', '224',
                '--batch-size', '1', '--embed-dims', '32', '--num-warmup', '1', '--num-repeats', '3',
                '--columns', 'eager-fp32,eager-fp16,compiled-fp16', '--rows', 'dense,cfg3', '--json', str(out)],
               env=venv_env(), timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = json.loads(out.read_text())['table']
    for row in ('mmdet dense', 'dense', 'cfg3'):
        for col in ('eager-fp32', 'eager-fp16', 'compiled-fp16'):
            assert table[row][col].get('ms', 0) > 0, (row, col, table[row][col])


# ----------------------------------------------------------------------------------------------------------------
# Training under mmdet's fp16 with SAA
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.cuda
def test_fp16_training_step_with_saa(synthetic_coco, tmp_path, mmcv_cuda_ops):
    """tools/train.py with ``fp16 = dict(loss_scale=512.)`` and the SAA hook: 4 iterations on one GPU."""
    work_dir = str(tmp_path / 'saa_fp16')
    opts = dict(synthetic_cfg_options(synthetic_coco), **{
        'runner.max_epochs': 1, 'data.samples_per_gpu': 2, 'data.workers_per_gpu': 0, 'log_config.interval': 1,
        'checkpoint_config.interval': 1, 'load_from': None, 'fp16.loss_scale': 512.0})
    proc = run([sys.executable, 'tools/train.py', SAA_DEMO, '--work-dir', work_dir, '--seed', '0', '--no-validate',
                '--cfg-options', *[f'{k}={v}' for k, v in opts.items()]], env=venv_env(), timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(sorted(glob.glob(osp.join(work_dir, '*.log')))[-1]) as f:
        log = f.read()
    assert 'Fp16OptimizerHook' in log and 'dropping fp16' not in log
    assert 'SparsityAwareAdaptationHook' in log and log.count('SAA iter') == 4
    with open(sorted(glob.glob(osp.join(work_dir, '*.log.json')))[-1]) as f:
        train = [r for r in map(json.loads, filter(str.strip, f)) if r.get('mode') == 'train']
    assert [r['iter'] for r in train] == [1, 2, 3, 4]  # 8 images, 2 per batch
    assert all('saa_ratio' in r and r['loss'] == r['loss'] and abs(r['loss']) < 1e4 for r in train)
    ckpt = torch.load(osp.join(work_dir, 'epoch_1.pth'), map_location='cpu', weights_only=False)
    scaler = ckpt['meta']['fp16']['loss_scaler']  # written by Fp16OptimizerHook after each step
    assert scaler['scale'] > 0
    weights = ckpt['state_dict']
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert all(v.dtype == torch.float32 for k, v in weights.items() if v.is_floating_point())  # fp32 master


# ----------------------------------------------------------------------------------------------------------------
# nccl through torchpack
# ----------------------------------------------------------------------------------------------------------------
DIST_SCRIPT = '''
import sys
import torch
import torch.distributed as tdist
from sparsevit.utils import dist

backend = sys.argv[1]
device = dist.init_dist(use_cuda=backend == 'nccl')
assert tdist.is_initialized() and tdist.get_backend() == backend, tdist.get_backend()
assert (dist.rank(), dist.world_size()) == (0, 1)
assert device.type == ('cuda' if backend == 'nccl' else 'cpu'), device
value = torch.arange(3.0, device=device)
tdist.all_reduce(value)
tdist.broadcast(value, src=0)
assert value.tolist() == [0.0, 1.0, 2.0], value
gathered = [None]
tdist.all_gather_object(gathered, {'rank': dist.rank()})
assert gathered == [{'rank': 0}], gathered
dist.destroy_dist()
print(f'process group ok: {backend} on {device}')
'''


@pytest.mark.parametrize('backend', [pytest.param('nccl', marks=pytest.mark.cuda), 'gloo'])
def test_one_process_group_through_torchpack(backend, tmp_path):
    script = tmp_path / 'init_dist.py'
    script.write_text(DIST_SCRIPT)
    proc = run([TORCHPACK, 'dist-run', '-np', '1', sys.executable, str(script), backend], env=venv_env(mpi_env()),
               timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f'process group ok: {backend} on {"cuda" if backend == "nccl" else "cpu"}' in proc.stdout
