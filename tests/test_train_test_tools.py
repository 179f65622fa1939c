"""tools/train.py, tools/test.py, tools/dist_train.sh and tools/dist_test.sh on the synthetic data, CPU only."""
import argparse
import glob
import json
import os.path as osp
import pickle
import sys

import numpy as np
import pytest
import torch

from sparsevit.datasets.synthetic import synthetic_cfg_options

from helpers import SMALL_TEST_CFG, free_port, randomize_, run, venv_env
from tool_loader import load_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DENSE_DEMO = 'configs/demo/mask_rcnn_swin_demo.py'
SAA_DEMO = 'configs/demo/mask_rcnn_sparsevit_saa_demo.py'
SPARSE_DEMO = 'configs/demo/mask_rcnn_sparsevit_demo.py'


def tool_env() -> dict:
    """Environment of the tool processes: the dist scripts' ``PYTHON`` and a fresh ``PORT`` (per call), one OpenMP
    thread, this interpreter's directory first on ``PATH``."""
    return venv_env(PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')


def options(data_root: str, **extra) -> list:
    """``--cfg-options`` for a tiny run on the synthetic data (one epoch, batch 2, no loader workers)."""
    opts = dict(synthetic_cfg_options(data_root), **{
        'runner.max_epochs': 1, 'data.samples_per_gpu': 2, 'data.workers_per_gpu': 0, 'log_config.interval': 1,
        'evaluation.interval': 1, 'checkpoint_config.interval': 1, 'load_from': None})
    opts.update(extra)
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


def last_json_log(work_dir: str) -> list:
    logs = sorted(glob.glob(osp.join(work_dir, '*.log.json')))
    assert logs, f'no json log in {work_dir}'
    with open(logs[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope='module')
def dense_checkpoint(synthetic_coco, tmp_path_factory) -> str:
    """tools/train.py: a few iterations of the dense demo model (also the SAA/test starting point).

    The config asks for fp16, which needs CUDA: on CPU it is dropped with a warning.
    """
    work_dir = str(tmp_path_factory.mktemp('train_dense'))
    proc = run([sys.executable, 'tools/train.py', DENSE_DEMO, '--work-dir', work_dir, '--seed', '0',
                '--no-validate', *options(synthetic_coco, **{'fp16.loss_scale': 512.0})], env=tool_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(ckpt) and osp.isfile(osp.join(work_dir, 'latest.pth'))
    train_lines = [r for r in last_json_log(work_dir) if r.get('mode') == 'train']
    assert [r['iter'] for r in train_lines] == [1, 2, 3, 4]  # 8 images, 2 per batch
    assert osp.isfile(osp.join(work_dir, osp.basename(DENSE_DEMO)))  # the dumped config
    with open(glob.glob(osp.join(work_dir, '*.log'))[-1]) as f:
        log = f.read()
    assert 'Distributed training: False' in log
    if not torch.cuda.is_available():
        assert 'fp16 training needs CUDA; the device is cpu: dropping fp16' in log
    return ckpt


def test_train_tool_runs_a_few_iterations(dense_checkpoint):
    assert osp.getsize(dense_checkpoint) > 0


def test_test_tool_evaluates_bbox_and_segm(synthetic_coco, dense_checkpoint, tmp_path):
    out = tmp_path / 'results.pkl'
    fp16 = {'fp16.loss_scale': 512.0}
    proc = run([sys.executable, 'tools/test.py', DENSE_DEMO, dense_checkpoint, '--eval', 'bbox', 'segm',
                '--out', str(out), '--work-dir', str(tmp_path), *options(synthetic_coco, **fp16)], env=tool_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if not torch.cuda.is_available():
        assert 'fp16 needs CUDA; the device is cpu: testing in fp32' in proc.stderr
    assert out.is_file()
    evals = glob.glob(str(tmp_path / 'eval_*.json'))
    assert len(evals) == 1
    with open(evals[0]) as f:
        metric = json.load(f)['metric']
    for key in ('bbox_mAP', 'bbox_mAP_50', 'segm_mAP', 'segm_mAP_50'):
        assert 0.0 <= metric[key] <= 1.0


def test_test_tool_with_top_level_pruning_ratios(synthetic_coco, dense_checkpoint, tmp_path, monkeypatch):
    """tools/test.py evaluates the sparse demo with top-level ``pruning_ratios`` given in ``--cfg-options``, and the
    model it builds from these arguments (its own ``load_config`` and ``build_model``, as ``main`` calls them) runs
    the backbone at those ratios, not at the config file's (dense) ones."""
    from mmdet.utils import get_device
    ratios = '[[0.5,0.5],[0.2,0.2],[0.2,0.2,0.4,0.4,0.5,0.5],[0,0]]'
    common = [SPARSE_DEMO, dense_checkpoint, '--eval', 'bbox', '--work-dir', str(tmp_path)]
    argv = [*common, *options(synthetic_coco, pruning_ratios=ratios)]
    proc = run([sys.executable, 'tools/test.py', *argv], env=tool_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'bbox_mAP' in proc.stdout

    test_tool = load_tool('test')
    monkeypatch.setenv('LOCAL_RANK', '0')  # parse_args sets it when absent: not for the rest of the session
    args = test_tool.parse_args(argv)
    cfg, task = test_tool.load_config(args)
    assert task.name == 'detection'
    cfg.device = get_device()  # as main() sets it
    model, _ = test_tool.build_model(task, cfg, args.checkpoint, args.fuse_conv_bn, args.dtype)
    expected = tuple(tuple(float(r) for r in stage) for stage in json.loads(ratios))
    assert model.backbone.pruning_ratios == expected
    file_cfg, _ = test_tool.load_config(test_tool.parse_args([*common, *options(synthetic_coco)]))
    assert all(r == 0 for stage in file_cfg.model.backbone.pruning_ratios for r in stage)  # the option set them


def test_dist_train_saa_two_cpu_processes(synthetic_coco, dense_checkpoint, tmp_path):
    """bash tools/dist_train.sh CONFIG 2 over gloo: SAA from the dense checkpoint, 2 iterations, then evaluation."""
    work_dir = str(tmp_path / 'saa')
    proc = run(['bash', 'tools/dist_train.sh', SAA_DEMO, '2', '--work-dir', work_dir,
                *options(synthetic_coco, load_from=dense_checkpoint)], env=tool_env())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    records = last_json_log(work_dir)
    train = [r for r in records if r.get('mode') == 'train']
    assert [r['iter'] for r in train] == [1, 2]  # 8 images / (2 ranks x 2 per batch)
    assert all('saa_ratio' in r for r in train)
    assert any('bbox_mAP' in r for r in records if r.get('mode') == 'val')
    with open(glob.glob(osp.join(work_dir, '*.log'))[-1]) as f:
        log = f.read()
    assert 'Distributed training: True (backend gloo)' in log
    assert 'load checkpoint from local path' in log
    assert log.count('SAA iter') == 2
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))


def test_dist_test_two_cpu_processes(synthetic_coco, dense_checkpoint, tmp_path):
    proc = run(['bash', 'tools/dist_test.sh', DENSE_DEMO, dense_checkpoint, '2', '--eval', 'bbox', 'segm',
                '--work-dir', str(tmp_path), *options(synthetic_coco)], env=tool_env())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert 'bbox_mAP' in proc.stdout and 'segm_mAP' in proc.stdout
    assert len(glob.glob(str(tmp_path / 'eval_*.json'))) == 1


@pytest.mark.parametrize('cmd,message', [
    (['bash', 'tools/dist_train.sh', DENSE_DEMO, 'two'], 'GPUS must be a positive integer'),
    (['bash', 'tools/dist_test.sh', DENSE_DEMO], 'usage: bash tools/dist_test.sh'),
    ([sys.executable, 'tools/train.py', 'configs/no_such_config.py'], 'does not exist'),
    ([sys.executable, 'tools/test.py', DENSE_DEMO, 'no_such.pth', '--eval', 'bbox'], "checkpoint 'no_such.pth'"),
])
def test_bad_arguments_give_one_error_line(cmd, message):
    proc = run(cmd, env=tool_env())
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if 'error:' in line]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert 'Traceback' not in proc.stderr


@pytest.fixture(scope='module')
def bad_checkpoints(tmp_path_factory) -> dict:
    """Files the tools must refuse in one line: not a checkpoint, one with a pickled object torch's weights-only
    loader rejects, a truncated one, and a real checkpoint that lacks the model's weights."""
    tmp = tmp_path_factory.mktemp('bad_ckpt')
    paths = {name: str(tmp / f'{name}.pth') for name in ('text', 'pickled_object', 'truncated', 'partial')}
    with open(paths['text'], 'w') as f:
        f.write('not a checkpoint\n')
    weights = {'neck.lateral_convs.0.conv.weight': torch.zeros(64, 32, 1, 1)}
    torch.save(dict(state_dict=weights, meta=dict(args=argparse.Namespace(lr=0.1))), paths['pickled_object'])
    torch.save(dict(state_dict=weights), paths['partial'])
    with open(paths['partial'], 'rb') as f:
        data = f.read()
    with open(paths['truncated'], 'wb') as f:
        f.write(data[:len(data) // 2])
    return paths


BAD_CHECKPOINT_REASONS = {
    'text': 'it is not a PyTorch checkpoint',
    'pickled_object': "torch's weights-only loader rejects it: it holds a pickled argparse.Namespace",
    'truncated': 'it is not a complete PyTorch checkpoint',
}


def one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if 'error:' in line]
    assert len(errors) == 1 and errors[0].startswith(f'{prog}: error: '), err
    assert 'Traceback' not in err
    return errors[0]


@pytest.mark.parametrize('name', sorted(BAD_CHECKPOINT_REASONS) + ['partial'])
def test_test_tool_names_a_bad_checkpoint_in_one_line(bad_checkpoints, name, capsys, tmp_path):
    test_tool = load_tool('test')
    with pytest.raises(SystemExit) as exc:
        test_tool.main([DENSE_DEMO, bad_checkpoints[name], '--eval', 'bbox', '--work-dir', str(tmp_path / 'work')])
    assert exc.value.code == 2
    line = one_error_line(capsys, 'test.py')
    assert not (tmp_path / 'work').exists()
    assert bad_checkpoints[name] in line
    if name == 'partial':
        assert "does not fit the config's model" in line and 'weights missing' in line
    else:
        assert f'cannot read checkpoint {bad_checkpoints[name]}: {BAD_CHECKPOINT_REASONS[name]}' in line


@pytest.mark.parametrize('option', ['load_from', '--resume-from'])
@pytest.mark.parametrize('name', sorted(BAD_CHECKPOINT_REASONS))
def test_train_tool_names_a_bad_checkpoint_before_training(bad_checkpoints, name, option, capsys, tmp_path):
    train_tool = load_tool('train')
    path, work_dir = bad_checkpoints[name], tmp_path / 'work'
    given = ['--cfg-options', f'load_from={path}'] if option == 'load_from' else ['--resume-from', path]
    with pytest.raises(SystemExit) as exc:
        train_tool.main([DENSE_DEMO, '--work-dir', str(work_dir), *given])
    assert exc.value.code == 2
    line = one_error_line(capsys, 'train.py')
    assert f'cannot read checkpoint {path}: {BAD_CHECKPOINT_REASONS[name]}' in line
    assert not work_dir.exists()


# ---------------------------------------------------------------------------------------------------- --dtype


def tiny_detector(config: str = SPARSE_DEMO):
    from mmcv import Config
    from mmdet.models import build_detector
    from sparsevit.utils.config import apply_sparsevit_cfg
    cfg = Config.fromfile(osp.join(ROOT, config))
    ratios = [[0.3, 0.3], [0, 0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0, 0]]
    cfg.merge_from_dict({**SMALL_TEST_CFG, 'pruning_ratios': ratios})
    apply_sparsevit_cfg(cfg)
    return build_detector(cfg.model, test_cfg=cfg.get('test_cfg')).eval()


def test_resolve_dtype_allows_fp16_on_cuda_only_and_bf16_on_cpu_and_cuda():
    from sparsevit.utils.precision import resolve_dtype
    assert resolve_dtype('fp32', 'cpu') is None and resolve_dtype('fp32', 'mps') is None
    assert resolve_dtype('bf16', 'cpu') == torch.bfloat16 and resolve_dtype('bf16', 'cuda') == torch.bfloat16
    assert resolve_dtype('fp16', 'cuda') == torch.float16
    with pytest.raises(ValueError, match=r'--dtype fp16 needs CUDA; the device is cpu \(use bf16 or fp32\)'):
        resolve_dtype('fp16', 'cpu')
    with pytest.raises(ValueError, match=r'--dtype bf16 needs CPU or CUDA; the device is mps \(use fp32\)'):
        resolve_dtype('bf16', 'mps')
    with pytest.raises(ValueError, match='allowed values are fp32, fp16, bf16'):
        resolve_dtype('fp8', 'cpu')


def test_autocast_inference_keeps_mmdets_fp32_steps_in_fp32():
    """Under bf16 autocast the convolutions and linears compute in bf16; mmdet's @force_fp32 steps (RPN and bbox
    decoding + NMS, RoI extraction) receive fp32 tensors (mmcv's NMS/RoIAlign would fail on bf16); the features
    are those of fp32 within bf16's precision."""
    from sparsevit.utils.precision import autocast_inference, fp32_methods
    model = randomize_(tiny_detector(), seed=1)
    found = {(type(m).__name__, name) for m, name in fp32_methods(model)}
    assert {('RPNHead', 'get_bboxes'), ('SingleRoIExtractor', 'forward'), ('Shared2FCBBoxHead', 'get_bboxes')} <= found
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen[name] = (args[0].dtype, output.dtype)
        return hook

    model.neck.fpn_convs[0].register_forward_hook(record('fpn_conv'))
    model.roi_head.bbox_roi_extractor.roi_layers[0].register_forward_hook(record('roi_align'))  # mmcv's RoIAlign
    model.roi_head.bbox_head.shared_fcs[0].register_forward_hook(record('bbox_fc'))
    img = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    meta = [dict(img_shape=(224, 224, 3), ori_shape=(224, 224, 3), pad_shape=(224, 224, 3),
                 scale_factor=np.ones(4, dtype=np.float32), flip=False)]
    with torch.no_grad():
        want = model.extract_feat(img)
        with autocast_inference(model, torch.bfloat16, 'cpu'):
            got = model.extract_feat(img)
            dets = model.simple_test(img, meta, rescale=True)[0][0]
    assert seen['fpn_conv'][1] == torch.bfloat16 and seen['bbox_fc'][1] == torch.bfloat16
    assert seen['roi_align'] == (torch.float32, torch.float32)
    assert not any(name in vars(m) for m, name in fp32_methods(model))  # the patches are gone
    for a, b in zip(got, want):  # bf16 has 8 mantissa bits: about 1 % relative error after a whole backbone
        error = ((a.float() - b).norm() / b.norm()).item()
        assert 0 < error < 0.03, error
    dets = np.concatenate(dets)
    assert dets.dtype == np.float32 and len(dets) > 0


def test_test_tool_dtype_bf16(synthetic_coco, dense_checkpoint, tmp_path, capsys):
    """tools/test.py --dtype bf16 evaluates under autocast and records the precision in the eval json."""
    test_tool = load_tool('test')
    results = {}
    for dtype in ('fp32', 'bf16'):
        work_dir = tmp_path / dtype
        test_tool.main([SPARSE_DEMO, dense_checkpoint, '--eval', 'bbox', 'segm', '--dtype', dtype,
                        '--out', str(work_dir / 'results.pkl'), '--work-dir', str(work_dir),
                        *options(synthetic_coco, **SMALL_TEST_CFG)])
        with open(glob.glob(str(work_dir / 'eval_*.json'))[0]) as f:
            record = json.load(f)
        assert record['dtype'] == dtype and 0.0 <= record['metric']['segm_mAP'] <= 1.0
        with open(work_dir / 'results.pkl', 'rb') as f:
            results[dtype] = pickle.load(f)
    capsys.readouterr()
    assert len(results['bf16']) == len(results['fp32']) == 4
    boxes = {k: np.concatenate([np.concatenate(r[0]) for r in v]) for k, v in results.items()}
    assert boxes['bf16'].dtype == np.float32 and not np.array_equal(boxes['bf16'], boxes['fp32'])


@pytest.mark.skipif(torch.cuda.is_available(), reason='fp16 runs on CUDA')
def test_test_tool_dtype_fp16_without_cuda_is_one_error_line(capsys):
    test_tool = load_tool('test')
    with pytest.raises(SystemExit) as exc:
        test_tool.main([DENSE_DEMO, osp.join(ROOT, DENSE_DEMO), '--eval', 'bbox', '--dtype', 'fp16'])  # any file
    assert exc.value.code == 2
    assert 'test.py: error: --dtype fp16 needs CUDA; the device is cpu' in one_error_line(capsys, 'test.py')
