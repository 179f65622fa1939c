"""``DEMO_TASK=seg bash tools/demo.sh`` (``make demo-seg``) end to end at tiny scale (64x128 images, 3 dense
iterations, a 4-step search under ``torchpack dist-run -np 2``, one latency round): every step runs, the steps that
do not apply to segmentation are skipped with a note, and the report has the segmentation columns. About 2-3
minutes on 2 CPU cores. A wrong ``DEMO_TASK`` is one error line."""
import json
import os.path as osp
import shutil
import sys

import pytest

pytest.importorskip('mmseg')

from helpers import mpi_env, run  # noqa: E402

TINY = dict(DEMO_TASK='seg', DEMO_SEG_SIZE='64 128', DEMO_NUM_TRAIN='8', DEMO_NUM_VAL='4', DEMO_SEG_ITERS='3',
            DEMO_SEARCH_ITERS='4', DEMO_SEARCH_IMAGES='4', DEMO_LATENCY_ROUNDS='1', DEMO_MAX_FRAC='0.9',
            DEMO_MIN_FRAC='0.05')


def demo_env(tmp_path, **variables) -> dict:
    env = mpi_env(PYTHON=sys.executable, DEMO_DIR=str(tmp_path / 'demo_seg'), DEMO_DATA=str(tmp_path / 'data'),
                  **TINY)
    env['PATH'] = osp.dirname(sys.executable) + ':' + env['PATH']  # torchpack/mpirun start `python`
    env.update(variables)
    return env


@pytest.mark.skipif(shutil.which('mpirun') is None, reason='needs Open MPI (torchpack dist-run)')
def test_demo_seg_end_to_end_tiny(tmp_path):
    out = tmp_path / 'demo_seg'
    proc = run(['bash', 'tools/demo.sh'], env=demo_env(tmp_path), timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    log = proc.stdout
    assert 'step 11/11: results' in log and 'done in' in log
    assert '(seg: skipped: tools/analyze_windows.py' in log and '(seg: skipped: tools/check_precision.py' in log
    assert '[search] band [0.05x, 0.9x] of dense' in log and '2 process(es)' in log
    found = out / 'search' / 'sparsevit_max0.9x_min0.05x.py'
    assert found.is_file() and (out / 'sparsevit_max0.9x_min0.05x' / 'latest.pth').exists()
    for name in ('swin_dense', 'sparsevit_dense', 'sparsevit_max0.9x_min0.05x'):
        backbone = json.loads((out / 'latency' / f'{name}_r1.json').read_text())
        segmentor = json.loads((out / 'latency' / f'{name}_segmentor_r1.json').read_text())
        assert backbone['scope'] == 'backbone' and backbone['batch_size'] == 4 and backbone['img_size'] == [64, 128]
        assert segmentor['scope'] == 'segmentor' and segmentor['batch_size'] == 1
    md = (out / 'results.md').read_text()
    assert ('| model | config | sparsity configuration (genes per stage) | resolution | backbone latency (ms) | vs '
            'dense Swin (mmseg) | vs SparseViT SAA, dense | segmentor latency (ms) | segmentor vs dense Swin (mmseg) | '
            'backbone share | mIoU | mAcc |') in md
    assert '| SparseViT searched + finetuned | bf16 (autocast) |' in md and 'mAP' not in md
    results = json.loads((out / 'results.json').read_text())
    assert results['task'] == 'segmentation' and results['checks'] == [] and results['wall_time_s'] > 0
    assert [r['name'] for r in results['rows']] == ['dense Swin (mmseg)', 'SparseViT SAA, dense',
                                                    'SparseViT searched + finetuned']
    assert all(0 <= r['mIoU'] <= 1 and r['whole']['scope'] == 'segmentor' for r in results['rows'])
    assert results['rows'][2]['sparsity'] != 'dense' and (out / 'sparsity.png').is_file()
    dense_log = (out / 'logs' / 'train_dense.log').read_text()
    assert 'max: 3 iters' in dense_log and 'Saving checkpoint at 3 iterations' in dense_log  # DEMO_SEG_ITERS
    saa_log = (out / 'logs' / 'train_saa.log').read_text()
    assert 'max: 1 iters' in saa_log  # a third, at least one


def test_demo_rejects_an_unknown_task(tmp_path):
    proc = run(['bash', 'tools/demo.sh'], env=demo_env(tmp_path, DEMO_TASK='cls'), timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["[demo] error: DEMO_TASK must be det or seg, got 'cls'"]
    assert not (tmp_path / 'demo_seg').exists()
