"""Helpers that several test modules call with arguments (fixtures live in ``conftest.py``; no test module imports
another one, they import from here).

Backbones and inputs:

* ``tiny_backbone(**kwargs)``: a small seeded :class:`SparseSwinTransformer` (``TINY``, any backbone argument
  overridden), optionally with random LayerNorms, a zero patch-embedding bias or every parameter randomised;
* ``build_sparse(pruning_ratios, seed, **kwargs)``: the backbone tests' model, ``SMALL`` with every parameter
  randomised (``randomize_``), in eval mode;
* ``randomize_`` / ``randomize_layer_norms``: well-spread random values where default init leaves zeros and ones;
* ``images(batch, h, w, seed)``: a seeded ``[B, 3, H, W]`` batch;
* ``selection_record(keep, grid, ...)``: a hand-made ``SelectionRecord`` (what ``last_selection`` holds).

Tool processes: ``run(cmd)`` (in the repository root, output captured as text), ``run_python(*args)`` (``python
ARGS`` with this interpreter), ``venv_env`` (this interpreter's directory first on ``PATH``), ``mpi_env`` (Open MPI
as ``torchpack dist-run`` needs it here), ``free_port``.

``SMALL_TEST_CFG``: cfg-options that keep the demo detector's inference fast on CPU.

torch and sparsevit are imported where they are used: modules that only run tools stay light to import.
"""
import math
import os
import os.path as osp
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

if TYPE_CHECKING:
    import torch

    from sparsevit.models import SparseSwinTransformer
    from sparsevit.ops.selection import SelectionRecord

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TIMEOUT = 300  # seconds a tool process may run by default

TINY = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=7)
SMALL = dict(embed_dims=16, num_heads=(1, 2, 4, 8), depths=(2, 2, 6, 2), window_size=7, drop_path_rate=0.)
SMALL_TEST_CFG = {'model.test_cfg.rpn.max_per_img': 100, 'model.test_cfg.rcnn.max_per_img': 20}  # fast on CPU


# ----------------------------------------------------------------------------------------------------------------
# Backbones and inputs
# ----------------------------------------------------------------------------------------------------------------
def randomize_(model: 'torch.nn.Module', seed: int) -> 'torch.nn.Module':
    """Give every parameter a well-spread random value (default init leaves biases/tables at zero)."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if 'relative_position_bias_table' in name or 'absolute_pos_embed' in name:
                p.copy_(0.5 * noise)
            elif p.dim() >= 2:
                p.copy_(noise / math.sqrt(p[0].numel()))
            elif name.endswith('weight'):  # norm scales
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)
    return model


def randomize_layer_norms(module: 'torch.nn.Module', seed: int) -> None:
    """Non-default LayerNorm weights (0.5-1.5) and biases (N(0, 0.3)) everywhere in ``module``."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.3)


def tiny_backbone(*, seed: Optional[int] = 0, ln_seed: Optional[int] = None, zero_patch_bias: bool = False,
                  randomize_seed: Optional[int] = None, device: str = 'cpu', train: bool = False,
                  **kwargs) -> 'SparseSwinTransformer':
    """A small ``SparseSwinTransformer``: ``TINY`` with ``kwargs`` (any argument of the backbone) on top; keyword
    arguments only.

    Args:
        seed: ``torch.manual_seed(seed)`` before it is built; None: built from the global generator as it is.
        ln_seed: given, every LayerNorm gets random weights and biases (:func:`randomize_layer_norms`).
        zero_patch_bias: the patch embedding's bias set to zero (a zero input region then has zero stage-0
            importance when ``patch_norm`` is off).
        randomize_seed: given, every parameter gets a well-spread random value (:func:`randomize_`).
        device: where the model is moved.
        train: leave it in training mode (as built) instead of eval mode.
    """
    import torch
    from sparsevit.models import SparseSwinTransformer
    if seed is not None:
        torch.manual_seed(seed)
    model = SparseSwinTransformer(**dict(TINY, **kwargs))
    if ln_seed is not None:
        randomize_layer_norms(model, ln_seed)
    if zero_patch_bias:
        with torch.no_grad():
            model.patch_embed.projection.bias.zero_()
    if randomize_seed is not None:
        randomize_(model, randomize_seed)
    return model.to(device).train(train)


def build_sparse(pruning_ratios=None, seed: int = 0, **kwargs) -> 'SparseSwinTransformer':
    """A tiny randomised ``SparseSwinTransformer`` (``SMALL`` with ``kwargs``, ``randomize_(model, seed)``) in eval
    mode; the global generator is left alone."""
    return tiny_backbone(seed=None, randomize_seed=seed, pruning_ratios=pruning_ratios, **dict(SMALL, **kwargs))


def images(batch: int, h: int, w: int, seed: int = 1) -> 'torch.Tensor':
    import torch
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


def selection_record(keep, grid: Sequence[int], shift: int = 0, hw: Optional[Sequence[int]] = None, stride: int = 4,
                     scores=None, window_size: int = 7) -> 'SelectionRecord':
    """A ``SelectionRecord`` by hand: ``keep [B, k]`` window ids (nested lists or a tensor) of the ``grid`` (nWh,
    nWw) window grid; ``hw`` defaults to the whole grid (no padding), ``scores [B, nW]`` to zeros."""
    import torch
    from sparsevit.ops.selection import SelectionRecord
    keep = torch.as_tensor(keep)
    hw = (grid[0] * window_size, grid[1] * window_size) if hw is None else hw
    scores = torch.zeros(keep.shape[0], grid[0] * grid[1]) if scores is None else torch.as_tensor(scores)
    return SelectionRecord(keep=keep, grid=tuple(grid), shift=shift, hw=tuple(hw), stride=stride, scores=scores)


# ----------------------------------------------------------------------------------------------------------------
# Tool processes
# ----------------------------------------------------------------------------------------------------------------
def run(cmd: Sequence[str], env: Optional[Mapping[str, str]] = None,
        timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """``cmd`` run in the repository root, stdout and stderr captured as text; ``env`` None: this process's."""
    return subprocess.run(list(cmd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def run_python(*args: str, launcher: Sequence[str] = (), env: Optional[Mapping[str, str]] = None,
               timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """``[*launcher] python ARGS`` with this interpreter, through :func:`run`."""
    return run([*launcher, sys.executable, *args], env=env, timeout=timeout)


def venv_env(base: Optional[Mapping[str, str]] = None, **variables: str) -> dict:
    """``base`` (default: this process's environment) with ``variables`` set and this interpreter's directory first
    on ``PATH`` (the shell scripts' ``python`` and ``torchpack`` are the checkout's)."""
    env = dict(os.environ if base is None else base)
    env.update(variables)
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    return env


def mpi_env(**variables: str) -> dict:
    """This process's environment for ``torchpack dist-run``: the repository importable, Open MPI allowed as root
    and without shared-memory single copy, one OpenMP thread per process; ``variables`` on top."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMPI_ALLOW_RUN_AS_ROOT='1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM='1',
               OMPI_MCA_btl_vader_single_copy_mechanism='none', OMP_NUM_THREADS='1')
    env.update(variables)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
