"""Reading detector checkpoints with one-line errors, shared by the tools (train, test, search, convert).

mmcv's ``_load_checkpoint`` reads local files, URLs and ``torchvision://``-style names with torch's
weights-only unpickler (torch >= 2.6). What it raises for a bad file (an ``UnpicklingError`` with a page of
advice, a zip-reader ``RuntimeError``, ...) is turned into a ``ValueError`` whose message is one line naming the
file and the reason, which the tools print as their ``error:`` line.
"""
import logging
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


def read_checkpoint(path: str) -> dict:
    """Load a checkpoint on the CPU with mmcv's loader.

    Returns:
        The loaded object (a dict).

    Raises:
        ValueError: one line, when the file cannot be read, is not a checkpoint, or is rejected by torch's
            weights-only loader.
    """
    try:
        ckpt = _load_checkpoint(path, map_location='cpu')
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


def load_weights(model: torch.nn.Module, path: str, logger: Optional[logging.Logger] = None) -> dict:
    """Load a detector checkpoint into ``model``; every weight of the model must be in it.

    Weights of the checkpoint that the model does not have are ignored (with a warning to ``logger`` if given).

    Returns:
        The loaded checkpoint (for its ``meta``).

    Raises:
        ValueError: one line, when the file cannot be read, holds no weights, misses weights of the model or has
            weights of other shapes (results on partly random weights would be meaningless).
    """
    ckpt = read_checkpoint(path)
    state = checkpoint_state_dict(ckpt, path)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        detail = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise ValueError(f"checkpoint {path} does not fit the config's model: {detail}") from err
    if missing:
        raise ValueError(f"checkpoint {path} does not fit the config's model: {len(missing)} weights missing, "
                         f'e.g. {missing[:3]}')
    if unexpected and logger is not None:
        logger.warning(f'checkpoint {path}: {len(unexpected)} weights the model does not have were ignored, '
                       f'e.g. {unexpected[:3]}')
    return ckpt


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
