"""The DDP wrapper of the mmdet tools (``tools/train.py``, ``tools/test.py``) that also runs on CPU (gloo), where
mmcv 1.7 assumes CUDA. Their process group is :func:`sparsevit.utils.dist.init_dist` (``launcher=``)."""
import contextlib

import torch
from mmcv.parallel import MMDistributedDataParallel
from mmcv.parallel.scatter_gather import scatter_kwargs
from mmdet.utils import build_ddp as mmdet_build_ddp


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
