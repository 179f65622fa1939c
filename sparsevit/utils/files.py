"""Files that survive a killed writer and a second writer: atomic writes and the work directory's lock.

* :func:`write_atomic` / :func:`write_json` — the new content goes to a temporary file in the same directory, is
  flushed to disk, then renamed over the path (``os.replace``): a reader, or a run resumed after a ``kill -9``,
  sees the old file or the new one, never half of one.
* :func:`make_dir` / :func:`check_output` — an output directory or file that cannot be made fails with one line
  before the work, not after it.
* :class:`RunLock` — one run per work directory: a lock file naming the PID, host and command of its holder,
  created atomically (``os.link`` of a complete temporary file, which fails if the lock exists). A second run fails
  at once with one line naming the holder; a lock whose process is gone (same host: no such PID, or the PID now
  belongs to a process started later) is stale and taken over, so a killed run never leaves the directory locked.
"""
import json
import os
import os.path as osp
import socket
import sys
import tempfile
import time
from typing import Callable, Optional, Union


def write_atomic(path: str, content: Union[str, bytes, Callable]) -> str:
    """Write ``content`` (text, bytes, or a callable given the open binary file) to ``path`` atomically; the
    directory is created. Returns ``path``."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path: str, data, indent: Optional[int] = 1, default: Optional[Callable] = None) -> str:
    """``data`` as JSON at ``path``, atomically (:func:`write_atomic`); ``default``: as ``json.dumps``'s (e.g.
    ``str`` for values JSON has no type for)."""
    return write_atomic(path, json.dumps(data, indent=indent, default=default))


def make_dir(path: str, what: str) -> str:
    """Create the directory ``path`` (and its parents) if needed and check that files can be made in it; ``what``
    names it in the message (e.g. ``'--work-dir'``). Returns ``path``.

    Raises:
        ValueError: one line, when it cannot be created (a regular file in the way, a read-only file system, no
            permission) or written.
    """
    blocker = _file_in_the_way(path)
    if blocker is not None:
        raise ValueError(f'{what} {path}: cannot create the directory: {blocker} is a file')
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise ValueError(f'{what} {path}: cannot create the directory ({err.strerror or err})') from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f'{what} {path}: the directory cannot be written (no permission)')
    return path


def _file_in_the_way(path: str) -> Optional[str]:
    """The nearest existing ``path`` or ancestor of it, when that is not a directory (None when it is one)."""
    path = osp.abspath(path)
    while not osp.lexists(path) and osp.dirname(path) != path:
        path = osp.dirname(path)
    return None if osp.isdir(path) else path


def check_output(path: str, what: str) -> str:
    """Before a long run: that the file ``path`` can be written at its end (its directory is created,
    :func:`make_dir`) and is not a directory. Returns ``path``.

    Raises:
        ValueError: one line naming ``what`` (e.g. ``'--json'``) and the path.
    """
    if osp.isdir(path):
        raise ValueError(f'{what} {path} is a directory; give a file path')
    blocker = _file_in_the_way(osp.dirname(osp.abspath(path)))
    if blocker is not None:
        raise ValueError(f'{what} {path}: cannot create its directory: {blocker} is a file')
    make_dir(osp.dirname(osp.abspath(path)), what)
    return path


class LockedError(RuntimeError):
    """Another live run holds the work directory's lock (one line: who, and what to do)."""


def _start_time(pid: int) -> Optional[str]:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), None where unknown."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class RunLock:
    """The lock of one run on ``path`` (e.g. ``work_dir/.search.lock``).

    Args:
        path: the lock file.
        what: names the run in messages (``'search'``).
        directory_name: names the lock's directory in the message when it cannot be created (``'--work-dir'``).

    Use as a context manager, or :meth:`acquire` / :meth:`release`. The file is JSON: ``pid``, ``host``,
    ``start`` (the process's start time, against PID reuse), ``started`` (wall clock) and ``command``.
    """

    def __init__(self, path: str, what: str = 'run', directory_name: str = 'the directory'):
        self.path, self.what, self.directory_name = path, what, directory_name
        self.held = False
        self.took_over: Optional[dict] = None  # the stale lock replaced, if any
        self.made_dir = False  # acquire() created the lock's directory: release() removes it if left empty

    def owner(self) -> Optional[dict]:
        """The holder recorded in the lock file (None: no lock; ``{}``: unreadable)."""
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def is_stale(self, owner: dict) -> bool:
        """Whether the recorded holder is certainly gone: on this host, its PID is not running or belongs to a
        process started at another time. A lock of another host is never stale (it cannot be checked)."""
        if not owner or owner.get('host') != socket.gethostname():
            return not owner and self._unreadable_for_long()
        pid = owner.get('pid')
        if not isinstance(pid, int) or not _alive(pid):
            return True
        start = _start_time(pid)
        return start is not None and owner.get('start') is not None and start != owner['start']

    def _unreadable_for_long(self, seconds: float = 60.0) -> bool:
        """An unreadable lock file (not written by this class, which links complete files) older than a minute."""
        try:
            return time.time() - os.stat(self.path).st_mtime > seconds
        except OSError:
            return True

    def acquire(self) -> 'RunLock':
        """Take the lock, replacing a stale one.

        Raises:
            LockedError: another live run holds it.
            ValueError: one line, when the directory cannot be created (:func:`make_dir`).
        """
        directory = osp.dirname(osp.abspath(self.path))
        self.made_dir = not osp.isdir(directory)
        make_dir(directory, self.directory_name)
        me = dict(pid=os.getpid(), host=socket.gethostname(), start=_start_time(os.getpid()), started=time.time(),
                  command=' '.join(osp.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)))
        fd, tmp = tempfile.mkstemp(prefix='.lock.', dir=osp.dirname(osp.abspath(self.path)))
        with os.fdopen(fd, 'w') as f:
            json.dump(me, f)
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)  # atomic; fails if the lock exists
                    self.held = True
                    return self
                except FileExistsError:
                    owner = self.owner()
                    if owner is None:
                        continue  # released meanwhile
                    if not self.is_stale(owner):
                        raise LockedError(self.describe(owner)) from None
                    self.took_over = owner
                    try:
                        os.unlink(self.path)
                    except FileNotFoundError:
                        pass
            raise LockedError(f'could not take the lock {self.path} (it keeps changing): another {self.what} is '
                              f'starting in this directory')
        finally:
            os.unlink(tmp)

    def describe(self, owner: dict) -> str:
        """The one line of a held lock."""
        if not owner:
            who = 'an unreadable lock'
        else:
            started = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(owner.get('started', 0)))
            who = f"PID {owner.get('pid')} on {owner.get('host')} (since {started}: {owner.get('command', '?')})"
        return (f'another {self.what} runs in this directory: {self.path} is held by {who}; wait for it, use '
                f'another --work-dir, or delete the lock if that process is gone')

    def release(self) -> None:
        """Remove the lock if this process holds it, and the directory :meth:`acquire` created if nothing else
        was written in it (a run that failed at its start leaves nothing behind)."""
        if self.held:
            owner = self.owner()
            if owner and owner.get('pid') == os.getpid() and owner.get('host') == socket.gethostname():
                os.unlink(self.path)
            self.held = False
            directory = osp.dirname(osp.abspath(self.path))
            if self.made_dir and osp.isdir(directory) and not os.listdir(directory):
                os.rmdir(directory)

    def __enter__(self) -> 'RunLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
