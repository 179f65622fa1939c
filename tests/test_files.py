"""sparsevit.utils.files: atomic writes survive a writer killed between writing and renaming, and the run lock
admits one run per directory, names its holder, and is taken over when its process is gone."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from sparsevit.utils.files import LockedError, RunLock, write_atomic, write_json

from helpers import ROOT


def killed_writer(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` (with ``os.replace`` patched to SIGKILL the process: the temporary file is complete, the rename
    never happens) in a fresh interpreter."""
    prelude = textwrap.dedent('''
        import os, signal, sys
        sys.path.insert(0, %r)
        os.replace = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    ''' % ROOT)
    return subprocess.run([sys.executable, '-c', prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60)


def test_a_writer_killed_before_the_rename_leaves_the_old_file(tmp_path):
    path = tmp_path / 'state.json'
    write_json(str(path), dict(step=1))
    result = killed_writer(f'''
        from sparsevit.utils.files import write_json
        write_json({str(path)!r}, dict(step=2, big='x' * 100000))
    ''')
    assert result.returncode == -signal.SIGKILL
    assert json.loads(path.read_text()) == dict(step=1)
    # the search's own writers go through it: state, summary, best config, front
    result = killed_writer(f'''
        from sparsevit.search.outputs import SearchFiles
        files = SearchFiles({str(tmp_path)!r}, 'max1_min0')
        files.state = {str(path)!r}
        files.write_state(dict(step=3))
    ''')
    assert result.returncode == -signal.SIGKILL
    assert json.loads(path.read_text()) == dict(step=1)


def test_a_writer_that_fails_midway_leaves_no_temporary_file(tmp_path):
    path = tmp_path / 'front.md'
    write_atomic(str(path), 'old\n')

    def half(f):
        f.write(b'half')
        raise RuntimeError('disk full')

    with pytest.raises(RuntimeError):
        write_atomic(str(path), half)
    assert path.read_text() == 'old\n' and sorted(os.listdir(tmp_path)) == ['front.md']
    write_atomic(str(tmp_path / 'sub' / 'b.bin'), b'\x00\x01')  # directories created, bytes written
    assert (tmp_path / 'sub' / 'b.bin').read_bytes() == b'\x00\x01'


def holder(path: str) -> subprocess.Popen:
    """Another process holding the lock at ``path`` until killed (started once it holds it)."""
    proc = subprocess.Popen([sys.executable, '-c', textwrap.dedent(f'''
        import sys, time
        sys.path.insert(0, {ROOT!r})
        from sparsevit.utils.files import RunLock
        RunLock({path!r}, 'search').acquire()
        print('held', flush=True)
        time.sleep(120)
    ''')], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'held'
    return proc


def test_lock_admits_one_run_and_names_its_holder(tmp_path):
    path = str(tmp_path / '.search.lock')
    proc = holder(path)
    try:
        with pytest.raises(LockedError) as err:
            RunLock(path, 'search').acquire()
        message = str(err.value)
        assert '\n' not in message and f'PID {proc.pid} on {socket.gethostname()}' in message
        assert message.startswith('another search runs in this directory') and 'another --work-dir' in message
    finally:
        proc.kill()
        proc.wait()
    # its process is gone: the lock is stale and taken over
    lock = RunLock(path, 'search').acquire()
    assert lock.took_over['pid'] == proc.pid and json.load(open(path))['pid'] == os.getpid()
    lock.release()
    assert not os.path.exists(path)


def test_stale_locks_pid_reuse_other_hosts_and_release(tmp_path):
    path = str(tmp_path / 'x.lock')
    me = dict(pid=os.getpid(), host=socket.gethostname(), start='1', started=0, command='search.py')
    with open(path, 'w') as f:  # my PID, but a process started at another time: the PID was reused
        json.dump(me, f)
    with RunLock(path) as lock:
        assert lock.took_over == me
        assert RunLock(path).owner()['start'] != '1'
    assert not os.path.exists(path)
    with open(path, 'w') as f:  # a live process of another host cannot be checked: held
        json.dump(dict(me, host='elsewhere.example', start=None), f)
    with pytest.raises(LockedError, match='held by PID .* on elsewhere.example'):
        RunLock(path).acquire()
    other = RunLock(path)
    other.held = True
    other.release()  # not this process's lock: left in place
    assert os.path.exists(path)
    with open(path, 'w') as f:  # unreadable (not written by RunLock) and old: stale
        f.write('{"pid": ')
    os.utime(path, (0, 0))
    with RunLock(path):
        pass
    with open(path, 'w') as f:  # unreadable but fresh: another run may be writing it
        f.write('')
    with pytest.raises(LockedError, match='an unreadable lock'):
        RunLock(path).acquire()
