"""tools/search.py when things go wrong: a rank killed under ``torchpack dist-run -np 2``, SIGINT / SIGTERM, a
corrupt or foreign state, two searches on one work dir. Each ends with one line and a non-zero exit, leaves the
state and history intact, and ``--resume`` then reaches exactly the result of an uninterrupted run."""
import glob
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, mpi_env, run_python

TOOL = osp.join('tools', 'search.py')
DEMO = osp.join('configs', 'demo', 'mask_rcnn_sparsevit_demo.py')
TORCHPACK = osp.join(osp.dirname(sys.executable), 'torchpack')
DIST_RUN = (TORCHPACK, 'dist-run', '-np', '2')
#: every candidate feasible (the measured latency only decides feasibility): the sequence of configurations and
#: metrics is deterministic, so a resumed run can be compared with an uninterrupted one record by record
FAST = ['--max', '100000', '--min', '0', '--img_size', '112', '--batch-size', '1', '--num-warmup', '0',
        '--num-repeats', '1', '--population', '6', '--parents', '2', '--num-images', '2', '--no-progress']
TAG = 'max100000_min0'
ITERS = 12
TIMEOUT = 240


def env() -> dict:
    return mpi_env(OMPI_MCA_rmaps_base_oversubscribe='1')


def common(demo, work: str, iters: int = ITERS) -> list:
    options, ckpt = demo
    return [DEMO, ckpt, '--iters', str(iters), '--work-dir', work, *FAST, *options]


def history(work: str) -> list:
    path = osp.join(work, f'search_{TAG}_history.jsonl')
    if not osp.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f.read().splitlines() if line.strip()]


def essentials(records: list) -> list:
    return [(r['step'], r['config'], r['metric'], r['cached'], r['feasible']) for r in records]


def error_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith('search.py:')]


def start(args: list, launcher=()) -> subprocess.Popen:
    return subprocess.Popen([*launcher, sys.executable, TOOL, *args], cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_records(work: str, proc: subprocess.Popen, count: int, timeout: float = TIMEOUT) -> None:
    end = time.time() + timeout
    while len(history(work)) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < end, 'the search made no progress'
        time.sleep(0.2)


@pytest.fixture(scope='module')
def uninterrupted(search_demo, tmp_path_factory):
    """The records of an uninterrupted plain-python search (the reference of every resumed run)."""
    work = str(tmp_path_factory.mktemp('uninterrupted'))
    result = run_python(TOOL, *common(search_demo, work), env=env(), timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    records = history(work)
    assert len(records) == ITERS and len({json.dumps(r['config']) for r in records}) > 3
    return work, records


@pytest.mark.parametrize('sig,code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_save_the_state_and_resume_exactly(sig, code, search_demo, uninterrupted, tmp_path):
    work = str(tmp_path / 'work')
    proc = start(common(search_demo, work))
    wait_for_records(work, proc, 4)
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-3000:]
    lines = error_lines(err)
    assert len(lines) == 1 and 'Traceback' not in err, err[-3000:]
    name = signal.Signals(sig).name
    assert lines[0].startswith(f'search.py: interrupted by {name} after ') and '--resume' in lines[0], lines
    state = json.load(open(osp.join(work, f'search_{TAG}_state.json')))
    assert state['interrupted'] == name and not state['finished']
    assert state['progress']['steps'] >= 4
    assert not osp.exists(osp.join(work, '.search.lock')), 'the lock is released'
    done = history(work)
    resumed = run_python(TOOL, *common(search_demo, work), '--resume', env=env(), timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert essentials(history(work)) == essentials(uninterrupted[1])
    assert essentials(history(work)[:len(done)]) == essentials(done)


def test_a_killed_rank_ends_the_job_in_bounded_time_and_resume_is_exact(search_demo, uninterrupted, tmp_path):
    """SIGKILL to rank 1 under ``torchpack dist-run -np 2``: the job ends within a minute with one line naming
    rank 1; the state and history are intact, and a resumed ``-np 2`` run equals an uninterrupted one."""
    work = str(tmp_path / 'work')
    proc = start(common(search_demo, work), launcher=DIST_RUN)
    wait_for_records(work, proc, 4)
    ranks = {}
    for pid in os.listdir('/proc'):
        try:
            with open(f'/proc/{pid}/cmdline') as f:
                cmd = f.read().split('\0')
            with open(f'/proc/{pid}/environ') as f:
                environ = dict(v.split('=', 1) for v in f.read().split('\0') if '=' in v)
        except OSError:
            continue
        if TOOL in cmd and work in cmd and 'OMPI_COMM_WORLD_RANK' in environ:
            ranks[int(environ['OMPI_COMM_WORLD_RANK'])] = int(pid)
    assert sorted(ranks) == [0, 1], ranks
    before = len(history(work))
    killed = time.time()
    os.kill(ranks[1], signal.SIGKILL)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    elapsed = time.time() - killed
    assert proc.returncode != 0 and elapsed < 60, (elapsed, err[-3000:])
    lines = error_lines(out + err)  # mpirun passes the ranks' stderr on through its stdout
    assert len(lines) == 1 and 'Traceback' not in out + err, (elapsed, out[-3000:], err[-3000:])
    assert 'lost rank 1 (PID' in lines[0] and '--resume' in lines[0], lines
    records = history(work)
    assert len(records) >= before
    assert essentials(records) == essentials(uninterrupted[1][:len(records)])
    resumed = run_python(TOOL, *common(search_demo, work), '--resume', launcher=DIST_RUN, env=env(),
                         timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert essentials(history(work)) == essentials(uninterrupted[1])


def copy_of(work: str, tmp_path) -> str:
    dst = str(tmp_path / 'copy')
    shutil.copytree(work, dst)
    return dst


def snapshot(work: str) -> dict:
    return {p: open(p, 'rb').read() for p in glob.glob(osp.join(work, '*')) if osp.isfile(p)}


@pytest.mark.parametrize('damage,needle', [
    ('truncate_state', 'cannot be read'),
    ('foreign_state', 'is not a search state'),
    ('bad_history_line', 'line 3 is not valid JSON'),
    ('edited_record', 'line 2 is not a search record'),
    ('edited_config', 'the saved history does not match this search'),
    ('other_seed', 'seed 0 (now 1)'),  # (after image_set: the seed also draws the scored images)
    ('other_images', 'other settings: num_images 2 (now 1)'),
    ('other_metric', "other settings: eval ['bbox'] (now ['segm'])"),
])
def test_corrupt_or_foreign_state_fails_with_one_line_and_changes_nothing(damage, needle, search_demo,
                                                                          uninterrupted, tmp_path, capsys):
    from tools.search import main
    work = copy_of(uninterrupted[0], tmp_path)
    state, hist = osp.join(work, f'search_{TAG}_state.json'), osp.join(work, f'search_{TAG}_history.jsonl')
    args = common(search_demo, work)
    if damage == 'truncate_state':
        text = open(state).read()
        open(state, 'w').write(text[:len(text) // 2])
    elif damage == 'foreign_state':
        json.dump(dict(key='a latency table'), open(state, 'w'))
    elif damage in ('bad_history_line', 'edited_record', 'edited_config'):
        lines = open(hist).read().splitlines()
        if damage == 'bad_history_line':
            lines[2] = lines[2][:10]
        elif damage == 'edited_record':
            record = json.loads(lines[1])
            del record['latency']
            lines[1] = json.dumps(record)
        else:
            record = json.loads(lines[5])
            record['config'] = {k: 0.8 for k in record['config']}
            lines[5] = json.dumps(record)
        open(hist, 'w').write('\n'.join(lines) + '\n')
    elif damage == 'other_seed':
        args += ['--seed', '1']
    elif damage == 'other_images':
        args[args.index('--num-images') + 1] = '1'
    elif damage == 'other_metric':
        args += ['--eval', 'segm']
    before = snapshot(work)
    os.chdir(ROOT)
    assert main([*args, '--resume']) == 1
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert len(lines) == 1 and needle in lines[0], err
    if damage.startswith('other_'):
        assert 'was written by a search with other settings' in lines[0] and osp.basename(state) in lines[0]
    if damage in ('truncate_state', 'foreign_state') or damage.startswith('other_'):
        assert osp.basename(state) in lines[0]
    else:
        assert osp.basename(hist) in lines[0]
    assert snapshot(work) == before, 'a failed --resume changed a file'
    assert not osp.exists(osp.join(work, '.search.lock'))


def test_two_searches_on_one_work_dir(search_demo, uninterrupted, tmp_path, capsys):
    """A live holder: the second search fails at once naming it; a dead holder's lock is taken over."""
    from tools.search import main
    work = copy_of(uninterrupted[0], tmp_path)
    holder = subprocess.Popen([sys.executable, '-c', (
        'import sys, time\n'
        f'sys.path.insert(0, {ROOT!r})\n'
        'from sparsevit.utils.files import RunLock\n'
        f'RunLock({osp.join(work, ".search.lock")!r}, "search").acquire()\n'
        'print("held", flush=True)\n'
        'time.sleep(120)\n')], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == 'held'
    before = snapshot(work)
    os.chdir(ROOT)
    try:
        began = time.time()
        assert main([*common(search_demo, work), '--resume']) == 1
        assert time.time() - began < 30, 'it fails at once, before building the model'
    finally:
        holder.kill()
        holder.wait()
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and f'held by PID {holder.pid}' in lines[0], lines
    assert snapshot(work) == before
    # the holder is dead: its lock is stale, the search takes it over (and resumes a finished search)
    assert main([*common(search_demo, work), '--resume']) == 0
    assert not osp.exists(osp.join(work, '.search.lock'))
