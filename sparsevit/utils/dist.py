"""Process-group set-up, the one initialiser (:func:`init_dist`) for every tool and launcher, and the collectives.

``torchpack dist-run -np N python tools/search.py ...`` starts N processes with ``mpirun`` and exports
``MASTER_HOST``; :func:`init_dist` then calls ``torchpack.distributed.init`` (mpi4py gives rank, size and local
rank; the rendezvous is ``tcp://MASTER_HOST``) with ``nccl`` when CUDA is available and ``gloo`` otherwise. Without
a launcher (plain ``python tools/search.py``) it is a single process and every collective below is a no-op.

mmdet's tools (``tools/train.py``, ``tools/test.py``) name their launcher (``--launcher pytorch|mpi|slurm``):
:func:`init_dist` with that ``launcher`` is mmcv's ``init_dist`` with CUDA, and a ``gloo`` group from the
launcher's environment without (mmcv 1.7 assumes CUDA).

torchpack's own ``allgather`` moves its buffers to CUDA, so the helpers here use torch's object collectives, which
work with both backends.

A rank that dies (``kill -9``, out of memory) would leave the others waiting in a collective for the group's
timeout (hours: a rank may evaluate alone for long). :func:`start_watchdog` starts a heartbeat instead: every rank
bumps a counter in a small store hosted by rank 0 every :data:`HEARTBEAT_S` seconds; a rank whose counter stands
still for :data:`LOST_AFTER_S` seconds, or the store itself becoming unreachable (rank 0 gone), is reported as lost
and the surviving ranks end (the caller decides how: the search flushes nothing more, prints one line and exits).

On a CPU-only machine all ranks share the cores: each rank gets ``cores // local_size`` threads, and
:func:`full_threads` gives one rank every core back while it times something alone.
"""
import contextlib
import os
import socket
import threading
import time
from datetime import timedelta
from typing import Any, Callable, Iterator, List, Optional

import torch
import torch.distributed as tdist

from .cli import ConfigError

#: Waiting for one rank to measure or evaluate alone can take long on CPU; torch's default is 30 minutes.
DEFAULT_TIMEOUT = timedelta(hours=4)
_MPI_ENV = ('OMPI_COMM_WORLD_SIZE', 'PMI_SIZE')
_state = dict(rank=0, size=1, local_rank=0, local_size=1)


def launched_by_mpi() -> bool:
    """True when this process was started by an MPI launcher (``mpirun``, ``torchpack dist-run``)."""
    return any(k in os.environ for k in _MPI_ENV)


def single_process_threads() -> int:
    """CPU threads of a plain single-process run (``OMP_NUM_THREADS``, else torch's default, else every core).

    Under ``mpirun`` torch starts with one thread, so there the usable cores stand in for torch's default: a CPU
    latency is then measured with the same threads whichever way the tool was launched.
    """
    env = os.environ.get('OMP_NUM_THREADS', '')
    if env.isdigit() and int(env) > 0:
        return int(env)
    if not launched_by_mpi():
        return torch.get_num_threads()
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)


_default_threads = single_process_threads()


class DistError(RuntimeError):
    """The processes were launched in a way this module cannot initialise."""


#: The launchers of mmdet's tools (``--launcher``); ``'torchpack'``: ``torchpack dist-run`` or a single process.
MMDET_LAUNCHERS = ('pytorch', 'mpi', 'slurm')


def init_dist(use_cuda: Optional[bool] = None, timeout: timedelta = DEFAULT_TIMEOUT, launcher: str = 'torchpack',
              dist_params: Optional[dict] = None) -> torch.device:
    """Initialise torch.distributed for the launcher that started this process; return this rank's device.

    Args:
        use_cuda: (``'torchpack'``) one GPU per local rank and ``nccl``; False: CPU and ``gloo``. Default: CUDA if
            available.
        timeout: (``'torchpack'``) of the collectives.
        launcher: ``'torchpack'`` (default): through torchpack when MPI-launched, else a single process (no group).
            One of :data:`MMDET_LAUNCHERS`: an mmdet tool's ``--launcher`` (:func:`_init_launcher`).
        dist_params: (mmdet launchers) the config's ``dist_params``.

    Raises:
        DistError: when launched by a bare ``mpirun`` with several processes (no ``MASTER_HOST``).
        ConfigError: when an mmdet launcher's environment variables are missing.
    """
    if launcher != 'torchpack':
        _init_launcher(launcher, dist_params)
        _state.update(rank=tdist.get_rank(), size=tdist.get_world_size(),
                      local_rank=int(os.environ.get('LOCAL_RANK', 0)),
                      local_size=int(os.environ.get('LOCAL_WORLD_SIZE', 1)))
        if torch.cuda.is_available():
            return torch.device('cuda', torch.cuda.current_device())
        return torch.device('cpu')
    use_cuda = torch.cuda.is_available() if use_cuda is None else use_cuda
    if launched_by_mpi() and not tdist.is_initialized():
        if 'MASTER_HOST' not in os.environ:
            if _mpi_size() > 1:
                raise DistError('MASTER_HOST is not set: launch with `torchpack dist-run -np N python ...`')
        else:
            from torchpack import distributed as tp_dist
            tp_dist.init(backend='nccl' if use_cuda else 'gloo', timeout=timeout)
            _state.update(rank=tp_dist.rank(), size=tp_dist.size(), local_rank=tp_dist.local_rank(),
                          local_size=tp_dist.local_size())
    if use_cuda:
        torch.cuda.set_device(_state['local_rank'] % torch.cuda.device_count())
        return torch.device('cuda', torch.cuda.current_device())
    torch.set_num_threads(max(1, _default_threads // _state['local_size']))
    return torch.device('cpu')


def _init_launcher(launcher: str, dist_params: Optional[dict]) -> None:
    """The default process group of an mmdet tool's ``--launcher``.

    With CUDA this is mmcv's ``init_dist``. Without CUDA, ranks come from the launcher's environment
    (``torchrun``: ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``; ``mpirun``: ``OMPI_COMM_WORLD_*``) and
    the backend is ``gloo`` whatever the config's ``dist_params.backend`` says.
    """
    params = dict(dist_params or {})
    if torch.cuda.is_available():
        from mmcv.runner import init_dist as mmcv_init_dist
        mmcv_init_dist(launcher, **params)
        return
    if launcher == 'mpi':
        if 'OMPI_COMM_WORLD_RANK' not in os.environ:
            raise ConfigError('--launcher mpi needs mpirun (Open MPI) to set OMPI_COMM_WORLD_RANK/SIZE')
        os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
        os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
        os.environ['LOCAL_RANK'] = os.environ.get('OMPI_COMM_WORLD_LOCAL_RANK', '0')
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
        os.environ.setdefault('MASTER_PORT', '29500')
    elif launcher != 'pytorch':
        raise ConfigError(f'--launcher {launcher} needs CUDA; on CPU use --launcher pytorch (tools/dist_train.sh) '
                          f'or mpi')
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
    if missing:
        raise ConfigError(f'--launcher {launcher} needs the environment variables {missing} '
                          f'(start it with tools/dist_train.sh or python -m torch.distributed.run)')
    params.pop('backend', None)
    params.pop('port', None)
    tdist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                             world_size=int(os.environ['WORLD_SIZE']), **params)


def group_backend() -> Optional[str]:
    """The default process group's backend (``'nccl'``, ``'gloo'``), None without one."""
    return tdist.get_backend() if tdist.is_available() and tdist.is_initialized() else None


def _mpi_size() -> int:
    for k in _MPI_ENV:
        if k in os.environ:
            return int(os.environ[k])
    return 1


def rank() -> int:
    return _state['rank']


def world_size() -> int:
    return _state['size']


def is_master() -> bool:
    return _state['rank'] == 0


def is_distributed() -> bool:
    return _state['size'] > 1 and tdist.is_initialized()


def barrier() -> None:
    if is_distributed():
        tdist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj if rank() == src else None]
    tdist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: Any) -> List[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not is_distributed():
        return [obj]
    out: List[Any] = [None] * world_size()
    tdist.all_gather_object(out, obj)
    return out


def gather_objects(obj: Any, dst: int = 0) -> Optional[List[Any]]:
    """Every rank's ``obj`` in rank order on rank ``dst``; None elsewhere."""
    if not is_distributed():
        return [obj]
    out: Optional[List[Any]] = [None] * world_size() if rank() == dst else None
    tdist.gather_object(obj, out, dst=dst)
    return out


@contextlib.contextmanager
def full_threads() -> Iterator[None]:
    """Give this process the thread count of a single-process run (CPU timing while the other ranks wait)."""
    current = torch.get_num_threads()
    torch.set_num_threads(_default_threads)
    try:
        yield
    finally:
        torch.set_num_threads(current)


#: Seconds between two heartbeats of a rank, and of silence after which a rank counts as lost.
HEARTBEAT_S = 2.0
LOST_AFTER_S = 20.0


class Watchdog(threading.Thread):
    """The heartbeat of this rank and the watch over the others (a daemon thread; see :func:`start_watchdog`).

    Args:
        store: a ``torch.distributed.Store`` every rank reaches (a ``TCPStore`` hosted by rank 0).
        peers: ``(pid, host)`` of every rank, in rank order (names the lost one).
        on_lost: called once, in this thread, with the one-line description of the lost rank.
    """

    def __init__(self, store, peers: List[tuple], on_lost: Callable[[int, str], None], period: float = HEARTBEAT_S,
                 lost_after: float = LOST_AFTER_S):
        super().__init__(name='sparsevit-watchdog', daemon=True)
        self.store, self.peers, self.on_lost = store, peers, on_lost
        self.period, self.lost_after = period, lost_after
        self.stopped = threading.Event()

    def describe(self, who: int) -> str:
        pid, host = self.peers[who]
        return f'rank {who} (PID {pid} on {host})'

    def run(self) -> None:
        me, size = rank(), len(self.peers)
        seen = {r: (-1, time.monotonic()) for r in range(size) if r != me}
        while not self.stopped.wait(self.period):
            try:
                self.store.add(f'beat/{me}', 1)
                counts = {r: self.store.add(f'beat/{r}', 0) for r in seen}
            except Exception as err:  # noqa: BLE001 - any failure of the store: its host is gone
                if self.stopped.is_set():
                    return
                reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                self.on_lost(0, f'lost {self.describe(0)}: its heartbeat store stopped answering ({reason})')
                return
            now = time.monotonic()
            for r, count in counts.items():
                if count != seen[r][0]:
                    seen[r] = (count, now)
                elif now - seen[r][1] > self.lost_after:
                    if self.stopped.is_set():
                        return
                    self.on_lost(r, f'lost {self.describe(r)}: no heartbeat for {now - seen[r][1]:.0f} s '
                                 '(the process died or hangs)')
                    return

    def stop(self) -> None:
        """End the watch silently (a failure of the store seen after this is not reported)."""
        self.stopped.set()
        if self is not threading.current_thread():
            self.join(timeout=self.period + 1.0)


_watchdog: List[Watchdog] = []


def start_watchdog(on_lost: Callable[[int, str], None], period: float = HEARTBEAT_S,
                   lost_after: float = LOST_AFTER_S) -> Optional[Watchdog]:
    """Start the heartbeat of every rank (collective: call on all ranks after :func:`init_dist`); None with a single
    process.

    ``on_lost(rank, message)`` runs in the watchdog thread of every surviving rank when a rank is lost; it must end
    the process (``os._exit``: the main thread may be blocked in a collective that only the group's timeout ends).
    """
    if not is_distributed():
        return None
    address = os.environ.get('MASTER_HOST', '').rsplit(':', 1)[0] or os.environ.get('MASTER_ADDR', '127.0.0.1')
    timeout = timedelta(seconds=lost_after)
    store = None
    if is_master():
        store = tdist.TCPStore(address, 0, world_size(), is_master=True, timeout=timeout, wait_for_workers=False)
    port = broadcast_object(store.port if store is not None else None)
    if store is None:
        store = tdist.TCPStore(address, port, world_size(), is_master=False, timeout=timeout)
    peers = all_gather_objects((os.getpid(), socket.gethostname()))
    dog = Watchdog(store, peers, on_lost, period, lost_after)
    dog.start()
    _watchdog.append(dog)
    return dog


def stop_watchdog() -> None:
    """Stop this rank's heartbeat (before a normal exit)."""
    while _watchdog:
        _watchdog.pop().stop()


def destroy_dist() -> None:
    """Tear the process group down: a barrier (every rank done), the watchdogs stopped, a barrier (none of them
    watches any more, so rank 0 may take its store down), then the group."""
    if tdist.is_initialized():
        barrier()
        stop_watchdog()
        barrier()
        tdist.destroy_process_group()
