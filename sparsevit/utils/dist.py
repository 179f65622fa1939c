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

On a CPU-only machine all ranks share the cores: each rank gets ``cores // local_size`` threads, and
:func:`full_threads` gives one rank every core back while it times something alone.
"""
import contextlib
import os
from datetime import timedelta
from typing import Any, Iterator, List, Optional

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


def destroy_dist() -> None:
    """Tear the process group down (after a final barrier)."""
    if tdist.is_initialized():
        barrier()
        tdist.destroy_process_group()
