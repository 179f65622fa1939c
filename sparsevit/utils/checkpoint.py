"""Reading detector checkpoints with one-line errors, shared by the tools (train, test, search, convert): reading
(:func:`read_checkpoint`), fitting a model (:func:`load_state`: the architecture must match), conversion.

mmcv's ``_load_checkpoint`` reads local files, URLs and ``torchvision://``-style names with torch's
weights-only unpickler (torch >= 2.6). What it raises for a bad file (an ``UnpicklingError`` with a page of
advice, a zip-reader ``RuntimeError``, ...) is turned into a ``ValueError`` whose message is one line naming the
file and the reason, which the tools print as their ``error:`` line.
"""
import logging
import os.path as osp
import pickle
import re
import zipfile
from typing import Dict, Optional

import torch
from mmcv.runner import _load_checkpoint

WEIGHTS_ONLY_MARK = 'Weights only load failed'


def _truncated_zip(path: str) -> bool:
    """A local file that starts as a zip archive (torch's format) but has no readable central directory."""
    try:
        with open(path, 'rb') as f:
            return f.read(4) == b'PK\x03\x04' and not zipfile.is_zipfile(path)
    except OSError:
        return False


def _reason(err: BaseException, path: str) -> str:
    """Why ``torch.load`` failed, in one line: an object the weights-only unpickler refuses, a file that is not a
    checkpoint, a truncated one, or the error's first line."""
    text = str(err)
    if 'PytorchStreamReader' in text or _truncated_zip(path):
        return 'it is not a complete PyTorch checkpoint (truncated or corrupt zip archive)'
    if WEIGHTS_ONLY_MARK in text:
        found = re.search(r'Unsupported global: GLOBAL ([\w.]+)', text)
        if found:
            return (f"torch's weights-only loader rejects it: it holds a pickled {found.group(1)} (only tensors and "
                    f'plain containers load safely; if you trust the file, re-save its weights alone)')
        return 'it is not a PyTorch checkpoint (torch.load cannot unpickle it)'
    if isinstance(err, (pickle.UnpicklingError, KeyError, EOFError)):
        return f'it is not a PyTorch checkpoint (torch.load: {type(err).__name__} {text})'
    first = next((line.strip() for line in text.splitlines() if line.strip()), '')
    return f'{type(err).__name__}: {first}' if first else type(err).__name__


def read_checkpoint(path: str, logger=None) -> dict:
    """Load a checkpoint on the CPU with mmcv's loader; ``logger``: where it notes ``load checkpoint from ...``
    (None: stdout, as mmdet's tools; ``'silent'``: nowhere).

    Returns:
        The loaded object (a dict).

    Raises:
        ValueError: one line, when the file cannot be read, is not a checkpoint, or is rejected by torch's
            weights-only loader.
    """
    if '://' not in path and not osp.isfile(path):
        raise ValueError(f'checkpoint not found: {path}')
    try:
        ckpt = _load_checkpoint(path, map_location='cpu', logger=logger)
    except Exception as err:  # torch.load raises many types for a bad file
        raise ValueError(f'cannot read checkpoint {path}: {_reason(err, path)}') from err
    if not isinstance(ckpt, dict):
        raise ValueError(f'checkpoint {path} holds a {type(ckpt).__name__}, not a dict of weights')
    return ckpt


def checkpoint_state_dict(ckpt: dict, path: str) -> Dict[str, torch.Tensor]:
    """The weights of a loaded checkpoint: its ``state_dict`` (mmdet), ``model`` (timm/Swin repos) or the dict
    itself when it maps names to tensors; a DDP ``module.`` prefix is removed.

    Raises:
        ValueError: when the checkpoint holds no such mapping.
    """
    state = ckpt.get('state_dict', ckpt.get('model', ckpt))
    if not isinstance(state, dict) or not state or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f'checkpoint {path} holds no state_dict (a mapping of names to tensors)')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def load_state(module: torch.nn.Module, state: Dict[str, torch.Tensor], path: str,
               logger: Optional[logging.Logger] = None, what: str = "the config's model") -> None:
    """Load ``state`` into ``module`` when it fits the architecture; raise otherwise.

    It fits when every weight of ``module`` is in ``state`` with the same shape and no extra weight of ``state``
    lies inside a submodule ``module`` has: a Swin-S checkpoint (18 blocks in stage 2) into a Swin-T config (6)
    misses nothing but has ``backbone.stages.2.blocks.6.*`` to spare, and is another architecture. Extra weights
    of modules ``module`` does not have at all (e.g. an ``auxiliary_head`` the config leaves out) are ignored,
    with a warning to ``logger`` if given.

    Raises:
        ValueError: one line naming ``path`` and the first mismatched keys.
    """
    own = module.state_dict()
    shapes = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if shapes:
        k = shapes[0]
        raise ValueError(f'checkpoint {path} does not fit {what}: {len(shapes)} weights have other shapes, first '
                         f'{k} {tuple(state[k].shape)} (the model has {tuple(own[k].shape)})')
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(f'checkpoint {path} does not fit {what}: {len(missing)} weights missing, first '
                         f'{missing[:3]}')
    children = {name for name, _ in module.named_modules()}
    extra = [k for k in state if k not in own]
    inside = [k for k in extra if _owner(k, children)]
    if inside:
        raise ValueError(f'checkpoint {path} does not fit {what}: {len(inside)} weights the model does not have, '
                         f'first {inside[:3]} (another architecture: compare the depths and widths)')
    module.load_state_dict(state, strict=False)
    if extra and logger is not None:
        logger.warning(f'checkpoint {path}: {len(extra)} weights of modules the model does not have were ignored, '
                       f'e.g. {extra[:3]}')


def _owner(key: str, modules: set) -> bool:
    """Whether a submodule below the root (a name of ``named_modules()`` other than ``''``) contains ``key``."""
    parts = key.split('.')[:-1]
    return any('.'.join(parts[:i]) in modules for i in range(1, len(parts) + 1))


def load_weights(model: torch.nn.Module, path: str, logger: Optional[logging.Logger] = None) -> dict:
    """Load a detector (segmentor) checkpoint into ``model`` when it fits (:func:`load_state`).

    Returns:
        The loaded checkpoint (for its ``meta``).

    Raises:
        ValueError: one line, when the file cannot be read, holds no weights or does not fit the model (results
            on partly random weights would be meaningless).
    """
    ckpt = read_checkpoint(path)
    load_state(model, checkpoint_state_dict(ckpt, path), path, logger)
    return ckpt


def backbone_weights(path: str) -> Dict[str, torch.Tensor]:
    """The ``backbone.*`` weights of a detector (segmentor) checkpoint, prefix removed.

    Raises:
        ValueError: one line, when the file cannot be read or has no backbone weights.
    """
    state = checkpoint_state_dict(read_checkpoint(path, logger='silent'), path)  # stdout stays the tool's
    weights = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    if not weights:
        raise ValueError(f'{path} has no backbone weights (no key starts with "backbone.")')
    return weights


# ---------------------------------------------------------------------------------------------------- conversion
def convert_official_swin_detector(state: Dict[str, torch.Tensor], path: str) -> Dict[str, torch.Tensor]:
    """Weights of a detector of the official Swin-Transformer-Object-Detection repository -> mmdet's layout.

    The backbone (``backbone.layers.{i}.blocks.{j}.attn.*``, ``mlp.fc1/fc2``, ``patch_embed.proj``,
    ``layers.{i}.downsample.reduction/norm`` in the original Swin's patch-merging channel order) goes through
    mmdet's ``swin_converter`` (``stages``, ``attn.w_msa``, ``ffn.layers``, ``projection``, channels reordered).
    The output norms ``backbone.norm{i}`` have the same names in both, and the neck and heads (mmdet 2.x modules
    in both) are copied unchanged.

    Raises:
        ValueError: one line, when ``state`` is not such a detector (already converted, a classification
            checkpoint, or something else).
    """
    from mmdet.models.utils.ckpt_convert import swin_converter
    keys = list(state)
    if any(k.startswith(('backbone.stages.', 'backbone.patch_embed.projection.')) for k in keys):
        raise ValueError(f"{path} is already in mmdet's Swin layout (backbone.stages.*): it needs no conversion")
    if not any(k.startswith('backbone.layers.') for k in keys) or 'backbone.patch_embed.proj.weight' not in state:
        if any(k.startswith('layers.') for k in keys):
            raise ValueError(f'{path} is a Swin backbone/classification checkpoint (layers.*, no backbone. '
                             f'prefix), not a detector: use it as the backbone\'s init_cfg=dict(type=\'Pretrained\', '
                             f'checkpoint=...) with convert_weights=True')
        raise ValueError(f'{path} is not a Swin-Transformer-Object-Detection detector checkpoint: it has no '
                         f'backbone.layers.* and backbone.patch_embed.proj.* weights')
    backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    out = dict(swin_converter(backbone))  # keys 'backbone.'-prefixed again
    out.update((k, v) for k, v in state.items() if not k.startswith('backbone.'))
    return out


def convert_checkpoint(src: str, dst: str) -> str:
    """Convert the Swin-Transformer-Object-Detection detector checkpoint ``src`` into ``dst`` (written atomically:
    a failed write leaves no partial file); returns a one-line summary.

    Raises:
        ValueError: one line, for a missing or foreign ``src``, or ``dst`` equal to it or not writable.
    """
    from .files import check_output, write_atomic
    if not osp.isfile(src):
        raise ValueError(f'checkpoint {src!r} does not exist')
    if osp.abspath(src) == osp.abspath(dst):
        raise ValueError('DST must differ from SRC (the source is kept)')
    check_output(dst, 'DST')
    ckpt = read_checkpoint(src)
    converted = convert_official_swin_detector(checkpoint_state_dict(ckpt, src), src)
    meta = dict(ckpt['meta']) if isinstance(ckpt.get('meta'), dict) else {}
    meta['converted_from'] = 'Swin-Transformer-Object-Detection'
    write_atomic(dst, lambda f: torch.save(dict(state_dict=converted, meta=meta), f))
    num_backbone = sum(k.startswith('backbone.') for k in converted)
    return (f'converted {src}: {num_backbone} backbone weights to mmdet\'s Swin layout, '
            f'{len(converted) - num_backbone} neck/head weights unchanged -> {dst}')
