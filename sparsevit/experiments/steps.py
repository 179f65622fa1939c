"""How ``make experiments`` runs its steps: one log per step, a reuse marker per finished step, one progress line
per run with the time left (:class:`Runner`), and the subprocess of a step with its log (:func:`run_logged`).

Independent trainings and tests run ``jobs`` at a time (:meth:`Runner.parallel`), each process on
``threads_per_job`` threads: on a 2-core CPU two one-thread processes do more work than one two-thread process
(the model's two-thread speed-ups are 1.5 for training and 1.2 for testing). Latency measurements and the search
always run alone.

A run is reused when it succeeded before with the same command (a marker under ``DIR/done/``);
``EXPERIMENTS_FORCE=1`` (``--force``) redoes everything, and once one run is redone every later one is too.
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Callable, List, Optional, Sequence, Tuple

from .files import read_json, write_json
from .plan import minutes
from .settings import ExperimentError, Settings

#: The checkout of this package: the steps' default working directory (their commands name ``tools/*.py`` and
#: configs relative to it); ``tools/experiments.py`` passes its own.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class Runner:
    """Runs the pipeline's steps with a log each, reuses finished ones, prints one progress line per run.

    A step is reused when ``DIR/done/NAME.json`` records the same ``key`` (its command) and no earlier step ran in
    this invocation (a redone step invalidates everything after it) and ``--force`` is off.
    """

    def __init__(self, st: Settings, estimates: Sequence[Tuple[str, float]], python: str, root: str = ROOT):
        self.st, self.python, self.root = st, python, root
        self.estimates = dict(estimates)
        self.order = [name for name, _ in estimates]
        self.cascade = st.force
        self.start = time.time()
        self.spent = {}  # name -> (estimated, actual) of the runs executed now
        self.reused = 0
        os.makedirs(self.path('logs'), exist_ok=True)
        os.makedirs(self.path('done'), exist_ok=True)

    def path(self, *parts: str) -> str:
        return osp.join(self.st.dir, *parts)

    def drop(self, name: str) -> None:
        """Remove a planned run that will not happen (e.g. a budget without a configuration)."""
        if name in self.estimates:
            del self.estimates[name]
            self.order.remove(name)

    def log(self, message: str) -> None:
        print(f"[experiments {time.strftime('%H:%M:%S')}] {message}", flush=True)

    def remaining(self, after: str) -> float:
        """Estimated seconds of the runs after ``after``, rescaled by this machine's measured/estimated ratio."""
        rest = sum(self.estimates[n] for n in self.order[self.order.index(after) + 1:])
        done_est = sum(e for e, _ in self.spent.values())
        ratio = sum(a for _, a in self.spent.values()) / done_est if done_est > 30 else 1.0
        return rest * ratio

    def step(self, name: str, title: str, key, action: Callable[[str], None]) -> bool:
        """Run ``action(log_path)`` as step ``name`` unless reusable; True when it ran."""
        index = self.order.index(name) + 1
        marker = self.path('done', f'{name}.json')
        key = json.loads(json.dumps(key))  # as it is stored (tuples become lists)
        prefix = f'{index}/{len(self.order)} {title}'
        if not self.cascade and osp.isfile(marker) and read_json(marker).get('key') == key:
            self.reused += 1
            self.log(f'{prefix}: reused (EXPERIMENTS_FORCE=1 redoes it)')
            return False
        self.cascade = True
        if osp.isfile(marker):
            os.remove(marker)
        self.log(f'{prefix} (about {minutes(self.estimates[name])}) ...')
        t0 = time.time()
        action(self.path('logs', f'{name}.log'))
        seconds = time.time() - t0
        self.spent[name] = (self.estimates[name], seconds)
        write_json(marker, dict(key=key, seconds=round(seconds, 1), finished=time.strftime('%Y-%m-%d %H:%M:%S')))
        self.log(f'{prefix}: done in {minutes(seconds)}; {minutes(time.time() - self.start)} so far, about '
                 f'{minutes(self.remaining(name))} left')
        return True

    def command(self, name: str, title: str, cmd: List[str], watch: Optional[str] = None) -> bool:
        """Step ``name`` running ``cmd`` (its output in the step's log; lines matching ``watch`` echoed)."""
        return self.step(name, title, cmd, lambda log: run_logged(cmd, log, watch, self.root))

    def parallel(self, steps: Sequence[Tuple[str, str, List[str]]], jobs: int, threads: int) -> None:
        """Run the command steps ``(name, title, cmd)`` (independent of each other), ``jobs`` at a time with
        ``threads`` threads each (``OMP_NUM_THREADS``), in order; reuse as :meth:`step` (a redone step makes every
        later one run). ``jobs`` 1: one by one, as :meth:`command` with the threads the machine gives. In the time
        left, a finished step counts a ``jobs``-th of its duration (the others ran beside it)."""
        todo = []
        for name, title, cmd in steps:
            marker = self.path('done', f'{name}.json')
            key = json.loads(json.dumps(cmd))
            prefix = f'{self.order.index(name) + 1}/{len(self.order)} {title}'
            if not self.cascade and osp.isfile(marker) and read_json(marker).get('key') == key:
                self.reused += 1
                self.log(f'{prefix}: reused (EXPERIMENTS_FORCE=1 redoes it)')
                continue
            self.cascade = True
            if osp.isfile(marker):
                os.remove(marker)
            todo.append((name, prefix, key, cmd))
        if jobs <= 1:
            titles = dict((name, title) for name, title, _ in steps)
            for name, _, _, cmd in todo:
                self.command(name, titles[name], cmd)
            return
        if not todo:
            return
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        running, waiting = {}, list(todo)
        while waiting or running:
            while waiting and len(running) < jobs:
                name, prefix, key, cmd = waiting.pop(0)
                self.log(f'{prefix} (about {minutes(self.estimates[name])} of wall time; {len(running) + 1} of '
                         f'{jobs} at once, {threads} thread{"s" if threads > 1 else ""} each) ...')
                running[name] = (start_logged(cmd, self.path('logs', f'{name}.log'), self.root, env), prefix, key,
                                 cmd, time.time())
            time.sleep(1)
            for name in [n for n, r in running.items() if r[0].poll() is not None]:
                proc, prefix, key, cmd, started = running.pop(name)
                if proc.returncode != 0:
                    for other in running.values():
                        other[0].terminate()
                    fail_logged(cmd, self.path('logs', f'{name}.log'), proc.returncode)
                seconds = time.time() - started
                self.spent[name] = (self.estimates[name], seconds / jobs)
                write_json(self.path('done', f'{name}.json'),
                           dict(key=key, seconds=round(seconds, 1), jobs=jobs, threads=threads,
                                finished=time.strftime('%Y-%m-%d %H:%M:%S')))
                self.log(f'{prefix}: done in {minutes(seconds)}; {minutes(time.time() - self.start)} so far, about '
                         f'{minutes(self.remaining(name))} left')


def start_logged(cmd: List[str], log_path: str, cwd: str = ROOT, env: Optional[dict] = None) -> subprocess.Popen:
    """Start ``cmd`` in ``cwd`` with stdout and stderr to ``log_path`` (its first line: the command)."""
    with open(log_path, 'w') as log:
        log.write('$ ' + ' '.join(cmd) + '\n')
        log.flush()
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env)


def fail_logged(cmd: List[str], log_path: str, status: int) -> None:
    """Show the tail of a failed step's log and raise ExperimentError naming the tool."""
    with open(log_path, errors='replace') as f:
        tail = f.read().splitlines()[-20:]
    sys.stderr.write(f'---- last lines of {log_path} ----\n' + '\n'.join(tail) + '\n')
    tool = next((c for c in cmd if c.endswith('.py')), cmd[0])
    raise ExperimentError(f'{tool} failed (exit {status}); log: {log_path}', status=1)


def run_logged(cmd: List[str], log_path: str, watch: Optional[str] = None, cwd: str = ROOT) -> None:
    """Run ``cmd`` in ``cwd`` with stdout and stderr to ``log_path``; echo new lines matching ``watch``
    (indented); ExperimentError with the log's tail when it fails."""
    pattern = re.compile(watch) if watch else None
    proc = start_logged(cmd, log_path, cwd)
    seen = 0
    while True:
        status = proc.poll()
        if pattern is not None:
            with open(log_path, 'rb') as f:
                f.seek(seen)
                chunk = f.read()
            complete = chunk[:chunk.rfind(b'\n') + 1]  # whole lines only
            seen += len(complete)
            for line in complete.decode(errors='replace').splitlines():
                if pattern.search(line):
                    line = re.sub(r'^.* - mmdet - [A-Z]+ - ', '', line.strip())  # the logger's time stamp
                    print(f'    {line[:150]}', flush=True)
        if status is not None:
            break
        time.sleep(2)
    if status != 0:
        fail_logged(cmd, log_path, status)
