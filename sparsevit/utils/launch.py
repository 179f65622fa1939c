"""Helpers shared by the mmdet tools (``tools/train.py``, ``tools/test.py``): distributed training/testing that
also runs on CPU (gloo), where mmcv 1.7 assumes CUDA. Their one-line errors are :mod:`sparsevit.utils.cli`'s."""
import contextlib
import os

import torch
import torch.distributed as dist
from mmcv.parallel import MMDistributedDataParallel
from mmcv.parallel.scatter_gather import scatter_kwargs
from mmcv.runner import init_dist
from mmdet.utils import build_ddp as mmdet_build_ddp

from .cli import ConfigError


class MMDistributedDataParallelAnyDevice(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also runs on CPU (``device_ids=None``, gloo) and with torch >= 2.

    mmcv 1.7's wrapper unpacks ``DataContainer`` inputs only when ``device_ids`` is set (CUDA), and its
    ``_run_ddp_forward`` reads attributes torch 2 removed. Without ``device_ids`` this wrapper scatters to CPU
    (``[-1]``) exactly as ``MMDataParallel`` does on CPU; with them it defers to mmcv.
    """

    def _scatter_cpu(self, inputs: tuple, kwargs: dict):
        inputs, kwargs = scatter_kwargs(inputs, kwargs, [-1], dim=self.dim)
        return inputs[0], kwargs[0]

    def train_step(self, *inputs, **kwargs):
        if not self.device_ids:
            inputs, kwargs = self._scatter_cpu(inputs, kwargs)
        return super().train_step(*inputs, **kwargs)

    def val_step(self, *inputs, **kwargs):
        if not self.device_ids:
            inputs, kwargs = self._scatter_cpu(inputs, kwargs)
        return super().val_step(*inputs, **kwargs)

    def _run_ddp_forward(self, *inputs, **kwargs):
        if self.device_ids:
            inputs, kwargs = self.to_kwargs(inputs, kwargs, self.device_ids[0])
            inputs, kwargs = inputs[0], kwargs[0]
        else:
            inputs, kwargs = self._scatter_cpu(inputs, kwargs)
        inside = getattr(self, '_inside_ddp_forward', contextlib.nullcontext)
        with inside():
            return self.module(*inputs, **kwargs)


def build_ddp(model: torch.nn.Module, device: str = 'cuda', *args, **kwargs) -> torch.nn.Module:
    """mmdet's ``build_ddp`` plus ``device='cpu'`` (gloo), using :class:`MMDistributedDataParallelAnyDevice`."""
    if device == 'cpu':
        kwargs.pop('device_ids', None)
        kwargs.pop('output_device', None)
        return MMDistributedDataParallelAnyDevice(model, *args, device_ids=None, **kwargs)
    if device == 'cuda':
        return MMDistributedDataParallelAnyDevice(model.cuda(), *args, **kwargs)
    return mmdet_build_ddp(model, device, *args, **kwargs)


def init_distributed(launcher: str, dist_params: dict) -> str:
    """Initialise the default process group; returns the backend used.

    With CUDA this is mmcv's ``init_dist``. Without CUDA, ranks come from the launcher's environment
    (``torchrun``: ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``; ``mpirun``: ``OMPI_COMM_WORLD_*``) and
    the backend is ``gloo`` whatever the config's ``dist_params.backend`` says.

    Raises:
        ConfigError: when the launcher's environment variables are missing.
    """
    params = dict(dist_params or {})
    if torch.cuda.is_available():
        init_dist(launcher, **params)
        return params.get('backend', 'nccl')
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
    dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                            world_size=int(os.environ['WORLD_SIZE']), **params)
    return 'gloo'
