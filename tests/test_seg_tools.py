"""The detection tools on a segmentation config (chosen by the config, sparsevit.tasks): tools/train.py,
tools/dist_train.sh (SAA under mmseg's iteration-based runner, 2 processes over gloo), tools/test.py and
tools/dist_test.sh with ``--eval mIoU``, and a metric of the other task as one error line. CPU only, tiny data."""
import glob
import json
import os.path as osp
import re
import shlex
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


def sampled(log: str) -> dict:
    """The SAA hook's logged draws: iteration -> configuration text."""
    found = re.findall(r'SAA iter (\d+) sampled: (.*)', log)
    return {int(it): genes for it, genes in found}


def test_resumed_saa_samples_what_an_uninterrupted_run_samples(synthetic_seg, dense_seg_checkpoint, tmp_path):
    """Issue 17, case 5: SAA for 4 iterations (checkpoints at 2 and 4), then ``--resume-from iter_2.pth`` without
    ``--seed`` (the resumed run's own seed is random) on 1 and on 2 processes: each iteration draws the
    configuration the uninterrupted run drew at it."""
    full = str(tmp_path / 'full')
    opts = options(synthetic_seg, load_from=dense_seg_checkpoint,
                   **{'checkpoint_config.interval': 2, 'checkpoint_config.max_keep_ckpts': 2})
    proc = run([sys.executable, 'tools/train.py', SAA, '--work-dir', full, '--seed', '7', *opts], env=tool_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    expected = sampled(text_log(full))
    assert sorted(expected) == [1, 2, 3, 4] and len(set(expected.values())) > 1
    for launcher in ([sys.executable, 'tools/train.py'], ['bash', 'tools/dist_train.sh']):
        work = str(tmp_path / f'resumed_{len(launcher)}')
        cmd = [*launcher, SAA, *(['2'] if launcher[0] == 'bash' else []), '--work-dir', work, '--resume-from',
               osp.join(full, 'iter_2.pth'), *opts]
        proc = run(cmd, env=tool_env())
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        log = text_log(work)
        assert 'SparsityAwareAdaptationHook: seed 7' in log, log[-2000:]
        got = sampled(log)  # mmcv's iter_2.pth records iter 1: IterBasedRunner repeats iteration 2 on resume
        assert sorted(got) == [2, 3, 4] and got == {i: expected[i] for i in got}, launcher


def test_a_diverging_saa_run_stops_with_one_line(synthetic_seg, dense_seg_checkpoint, tmp_path):
    """Issue 17, case 7: a loss that becomes NaN or infinite (here: a learning rate of 1e12) stops the run at that
    iteration with one line naming it and the sampled sparsity; the log file has the same line."""
    work = str(tmp_path / 'nan')
    proc = run([sys.executable, 'tools/train.py', SAA, '--work-dir', work, '--seed', '1',
                *options(synthetic_seg, iters=6, load_from=dense_seg_checkpoint, **{'optimizer.lr': 1e12})],
               env=tool_env())
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    found = re.match(r'train\.py: error: SAA iteration (\d+): the loss is (nan|inf|-inf)', line)
    assert found and 'backbone.stages.0 : ' in line, proc.stderr[-2000:]
    assert int(found.group(1)) < 6 and line[len('train.py: error: '):] in text_log(work)


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


def test_search_scores_miou_under_torchpack_two_processes(synthetic_seg, dense_seg_checkpoint, tmp_path):
    """torchpack dist-run -np 2 python tools/search.py SEG_CONFIG CKPT --max .. --min ..: the score is mIoU x100 by
    default (a segmentor), sharded over 2 ranks; the latency input is the data's 64x128 (``--img_size H W``); the
    found configuration's config is written."""
    from helpers import mpi_env, run_python
    torchpack = osp.join(osp.dirname(sys.executable), 'torchpack')
    work = str(tmp_path / 'search')
    opts = options(synthetic_seg)
    args = [SPARSE, dense_seg_checkpoint, '--max', '100000', '--min', '0', '--iters', '4', '--work-dir', work,
            '--img_size', '64', '128', '--batch-size', '1', '--num-warmup', '0', '--num-repeats', '2', '--population', '4',
            '--parents', '2', '--check-configs', '1', '--no-progress', *opts]
    # torchpack runs the command through a second shell: quote once more (img_scale=(128,64))
    proc = run_python('tools/search.py', *map(shlex.quote, args), launcher=(torchpack, 'dist-run', '-np', '2'),
                      env=mpi_env(OMPI_MCA_rmaps_base_oversubscribe='1', OMP_NUM_THREADS='1'), timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert 'mIoU' in proc.stdout and 'bbox' not in proc.stdout
    with open(osp.join(work, 'search_max100000_min0_summary.json')) as f:
        summary = json.load(f)
    assert summary['metric'] == 'mIoU' and summary['world_size'] == 2
    dense = next(r for r in summary['references'] if r['name'] == 'dense')
    assert 0 <= dense['metric'] <= 100 and 'mAcc' in dense['extra'] and 'aAcc' in dense['extra']
    with open(osp.join(work, 'sparsevit_max100000_min0.py')) as f:
        assert 'batch 1 at 64x128).' in f.readline()  # a non-square latency input (--img_size H W)


def test_search_metric_of_the_other_task_is_one_error_line(synthetic_seg, dense_seg_checkpoint, tmp_path):
    proc = run([sys.executable, 'tools/search.py', SPARSE, dense_seg_checkpoint, '--max', '0.9x', '--metric', 'bbox',
                '--work-dir', str(tmp_path), '--device', 'cpu', *options(synthetic_seg)], env=tool_env())
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(
        'search.py: error: --metric bbox: not a metric of a segmentor config')


def test_measure_latency_of_a_segmentor_non_square(tmp_path):
    """--scope segmentor: the whole encode_decode at a non-square size, the backbone's share in the same runs."""
    out = str(tmp_path / 'lat.json')
    fast = ['--batch-size', '1', '--num-warmup', '1', '--num-repeats', '3', '--device', 'cpu', '--no-progress']
    proc = run([sys.executable, 'tools/measure_latency.py', SPARSE, '--img_size', '64', '128', '--scope',
                'segmentor', '--pruning-ratios', '0.5', '--json', out, *fast], env=tool_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        result = json.load(f)
    assert result['img_size'] == [64, 128] and result['input_shape'] == [1, 3, 64, 128]
    assert result['scope'] == 'segmentor' and result['segmentor'] == 'EncoderDecoder'
    assert 0 < result['backbone_ms'] < result['latency_ms'] and 0 < result['backbone_share'] < 1
    assert result['head_ms'] == pytest.approx(result['latency_ms'] - result['backbone_ms'])
    assert result['pruning_ratios'][0] == [0.5, 0.5]
    lines = proc.stdout.strip().splitlines()
    assert '% of the segmentor' in lines[-2] and 'UPerHead and resize' in lines[-2]
    assert lines[-1].startswith('latency of EncoderDecoder (SparseViT, UPerHead) (64x128, batch 1, cpu, fp32)')
    proc = run([sys.executable, 'tools/measure_latency.py', SPARSE, '--img_size', '64', '128', *fast],
               env=tool_env())  # the backbone alone, non-square
    assert proc.returncode == 0 and '(64x128, batch 1' in proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize('args,message', [
    (['--scope', 'detector'], '--scope detector needs a detector config; EncoderDecoder is a segmentor'),
    (['--img_size', '64', '128', '32'], '--img_size takes one value (square) or two (H W), got 3'),
    (['--img_size', '64', '0'], '--img_size'),
])
def test_measure_latency_bad_segmentor_input_is_one_line(args, message):
    proc = run([sys.executable, 'tools/measure_latency.py', SPARSE, '--device', 'cpu', *args], env=tool_env())
    assert proc.returncode == 2
    assert message in proc.stderr.strip().splitlines()[-1] and 'Traceback' not in proc.stderr


# ----------------------------------------------------------------------------------------------------------------
# The deployment paths take a segmentation config too (the backbone is the same)
# ----------------------------------------------------------------------------------------------------------------
def test_export_onnx_of_a_segmentation_config(dense_seg_checkpoint, tmp_path):
    pytest.importorskip('onnxruntime')
    out = str(tmp_path / 'seg_backbone.onnx')
    proc = run([sys.executable, 'tools/export_onnx.py', SPARSE, dense_seg_checkpoint, '--out', out, '--img_size',
                '64', '--batch-size', '1', '--pruning-ratios', '0.5', '--no-latency'], env=tool_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert osp.isfile(out)


def test_test_tool_bf16_on_a_segmentor(synthetic_seg, dense_seg_checkpoint, tmp_path):
    proc = run([sys.executable, 'tools/test.py', SPARSE, dense_seg_checkpoint, '--eval', 'mIoU', '--dtype', 'bf16',
                '--work-dir', str(tmp_path), *options(synthetic_seg)], env=tool_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(glob.glob(str(tmp_path / 'eval_*.json'))[0]) as f:
        result = json.load(f)
    assert result['dtype'] == 'bf16' and 0.0 <= result['metric']['mIoU'] <= 1.0


def test_measure_latency_compiled_backbone_of_a_segmentation_config():
    proc = run([sys.executable, 'tools/measure_latency.py', SPARSE, '--img_size', '64', '96', '--compile',
                '--pruning-ratios', '0.5', '--batch-size', '1', '--num-warmup', '1', '--num-repeats', '2', '--device',
                'cpu', '--no-progress'], env=tool_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'fp32, compiled): ' in proc.stdout.strip().splitlines()[-1]
