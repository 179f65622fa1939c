"""The detection tools on a segmentation config (chosen by the config, sparsevit.tasks): tools/train.py,
tools/dist_train.sh (SAA under mmseg's iteration-based runner, 2 processes over gloo), tools/test.py and
tools/dist_test.sh with ``--eval mIoU``, and a metric of the other task as one error line. CPU only, tiny data."""
import glob
import json
import os.path as osp
import sys

import pytest

pytest.importorskip('mmseg')

from sparsevit.datasets.synthetic_seg import synthetic_seg_cfg_options  # noqa: E402

from helpers import free_port, run, venv_env  # noqa: E402

DENSE = 'configs/demo/upernet_swin_demo_seg.py'
SAA = 'configs/demo/upernet_sparsevit_saa_demo_seg.py'
SPARSE = 'configs/demo/upernet_sparsevit_demo_seg.py'
SIZE = dict(train=['data.train.pipeline.2.img_scale=(128,64)', 'data.train.pipeline.5.size=(64,128)'],
            test=[f'data.{k}.pipeline.1.img_scale=(128,64)' for k in ('val', 'test')])


def tool_env() -> dict:
    return venv_env(PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')


def options(data_root: str, iters: int = 4, **extra) -> list:
    """``--cfg-options`` for a tiny run: ``iters`` iterations of batch 2 on the 64x128 data, evaluated at the end."""
    opts = dict(synthetic_seg_cfg_options(data_root), **{
        'runner.max_iters': iters, 'data.samples_per_gpu': 2, 'data.workers_per_gpu': 0, 'log_config.interval': 1,
        'evaluation.interval': iters, 'checkpoint_config.interval': iters, 'lr_config.warmup_iters': 1,
        'load_from': None})
    opts.update(extra)
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()] + SIZE['train'] + SIZE['test']


def json_log(work_dir: str) -> list:
    logs = sorted(glob.glob(osp.join(work_dir, '*.log.json')))
    assert logs, f'no json log in {work_dir}'
    with open(logs[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def text_log(work_dir: str) -> str:
    with open(sorted(glob.glob(osp.join(work_dir, '*.log')))[-1]) as f:
        return f.read()


@pytest.fixture(scope='module')
def dense_seg_checkpoint(synthetic_seg, tmp_path_factory) -> str:
    """tools/train.py on the dense demo segmentor: 4 iterations, then mIoU on the val split."""
    work_dir = str(tmp_path_factory.mktemp('train_dense_seg'))
    proc = run([sys.executable, 'tools/train.py', DENSE, '--work-dir', work_dir, '--seed', '0',
                *options(synthetic_seg)], env=tool_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = json_log(work_dir)
    assert [r['iter'] for r in records if r.get('mode') == 'train'] == [1, 2, 3, 4]
    assert any('mIoU' in r for r in records if r.get('mode') == 'val')
    log = text_log(work_dir)
    assert 'Task: segmentation (mmseg segmentor)' in log and 'Distributed training: False' in log
    ckpt = osp.join(work_dir, 'iter_4.pth')
    assert osp.isfile(ckpt)
    return ckpt


def test_dist_train_saa_segmentor_two_cpu_processes(synthetic_seg, dense_seg_checkpoint, tmp_path):
    """bash tools/dist_train.sh SEG_CONFIG 2: SAA from the dense checkpoint under mmseg's iteration-based runner,
    one sampled configuration per iteration (logged), then DistEvalHook's mIoU at the fixed evaluation ratios."""
    work_dir = str(tmp_path / 'saa')
    proc = run(['bash', 'tools/dist_train.sh', SAA, '2', '--work-dir', work_dir, '--seed', '3',
                *options(synthetic_seg, iters=3, load_from=dense_seg_checkpoint)], env=tool_env())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    records = json_log(work_dir)
    train = [r for r in records if r.get('mode') == 'train']
    assert [r['iter'] for r in train] == [1, 2, 3] and all('saa_ratio' in r for r in train)
    assert any('mIoU' in r for r in records if r.get('mode') == 'val')
    log = text_log(work_dir)
    assert 'Distributed training: True (backend gloo)' in log and 'load checkpoint from local path' in log
    assert log.count('SAA iter') == 3 and 'SparsityAwareAdaptationHook: seed 3' in log
    # the sampled configurations are the seeded ones of (seed, iteration): what an uninterrupted run draws
    from sparsevit.hooks import saa_rng
    from sparsevit.schedule import DEFAULT_CHOICES, format_genes, sample_genes
    for it in range(3):
        expected = format_genes(sample_genes(saa_rng(3, it), (2, 2, 6, 2), DEFAULT_CHOICES)).replace('\n', ', ')
        assert f'SAA iter {it + 1} sampled: {expected}' in log


def test_test_tool_evaluates_miou(synthetic_seg, dense_seg_checkpoint, tmp_path):
    ratios = '[[0.5,0.5],[0.3,0.3],[0.2,0.2,0.2,0.2,0.2,0.2],[0,0]]'
    proc = run([sys.executable, 'tools/test.py', SPARSE, dense_seg_checkpoint, '--eval', 'mIoU', 'mDice',
                '--work-dir', str(tmp_path), *options(synthetic_seg), f'pruning_ratios={ratios}'], env=tool_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'mIoU' in proc.stdout and 'mDice' in proc.stdout
    found = glob.glob(str(tmp_path / 'eval_*.json'))
    assert len(found) == 1
    with open(found[0]) as f:
        metric = json.load(f)['metric']
    assert 0.0 <= metric['mIoU'] <= 1.0 and 'IoU.background' in metric


def test_dist_test_segmentor_two_cpu_processes(synthetic_seg, dense_seg_checkpoint, tmp_path):
    proc = run(['bash', 'tools/dist_test.sh', SPARSE, dense_seg_checkpoint, '2', '--eval', 'mIoU',
                '--work-dir', str(tmp_path), *options(synthetic_seg)], env=tool_env())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert 'mIoU' in proc.stdout and len(glob.glob(str(tmp_path / 'eval_*.json'))) == 1


@pytest.mark.parametrize('config,metric,kind', [(SPARSE, 'bbox', 'segmentor'),
                                                ('configs/demo/mask_rcnn_sparsevit_demo.py', 'mIoU', 'detector')])
def test_a_metric_of_the_other_task_is_one_error_line(config, metric, kind):
    proc = run([sys.executable, 'tools/test.py', config, config, '--eval', metric], env=tool_env())  # any file
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f'test.py: error: --eval {metric}: not a metric of a {kind} config')
    assert 'Traceback' not in proc.stderr
