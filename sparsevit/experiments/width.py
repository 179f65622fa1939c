"""The reduced-width baselines: dense Swin detectors whose embedding dims are scaled (x 0.75, x 0.5).

A narrower model is the other classic way to trade accuracy for latency (beside a lower input resolution). Its
stages keep their heads (``num_heads``): each stage ``i`` has ``embed_dims * 2**i`` channels, and they must still
split evenly into ``num_heads[i]`` heads; the FPN's ``in_channels`` follow the stages. Everything else (depths,
window, neck and heads) stays as in the full-width model.
"""
import re
from typing import List, Mapping, Sequence, Tuple


def parse_widths(text: str) -> Tuple[float, ...]:
    """Width factors from a setting: ``'0.75 0.5'`` or ``'0.75,0.5'``; ``''`` or ``'none'``: none.

    Raises:
        ValueError: for a value that is not a number in (0, 1), or a repeated one.
    """
    words = [w for w in re.split(r'[\s,]+', text.strip()) if w]
    if words in ([], ['none']):
        return ()
    factors = []
    for word in words:
        try:
            value = float(word)
        except ValueError:
            raise ValueError(f'width factor {word!r} is not a number (e.g. "0.75 0.5")') from None
        if not 0.0 < value < 1.0:
            raise ValueError(f'width factor {word} must be in (0, 1): a fraction of the full embed dims')
        if value in factors:
            raise ValueError(f'width factor {word} is given twice')
        factors.append(value)
    return tuple(factors)


def width_name(factor: float) -> str:
    """A width baseline's name in runs and tables: ``width0.75``."""
    return f'width{factor:g}'


def width_embed_dims(embed_dims: int, num_heads: Sequence[int], factor: float) -> int:
    """The embed dims of the ``factor``-wide model: ``round(embed_dims * factor)``.

    Raises:
        ValueError: when a stage's channels (``dims * 2**i``) do not split into its ``num_heads[i]`` heads.
    """
    dims = int(round(embed_dims * factor))
    if dims < 1:
        raise ValueError(f'width {factor:g} of {embed_dims} embed dims leaves no channel')
    for i, heads in enumerate(num_heads):
        channels = dims * 2 ** i
        if channels % heads:
            raise ValueError(f'width {factor:g}: stage {i} would have {channels} channels ({dims} x 2^{i}), not '
                             f'divisible by its {heads} heads; choose a factor giving embed dims divisible by '
                             f'{max(h // 2 ** j for j, h in enumerate(num_heads) if h)}')
    return dims


def width_overrides(backbone: Mapping, factor: float) -> dict:
    """The backbone arguments of the ``factor``-wide model (``backbone``: the full model's config dict with
    ``embed_dims`` and ``num_heads``): ``dict(embed_dims=...)``."""
    return dict(embed_dims=width_embed_dims(int(backbone['embed_dims']), backbone['num_heads'], factor))


def width_options(backbone: Mapping, factor: float) -> List[str]:
    """``--cfg-options`` of the ``factor``-wide detector: the backbone's ``embed_dims`` and the FPN's
    ``in_channels`` (one per stage, doubling)."""
    dims = width_overrides(backbone, factor)['embed_dims']
    channels = [dims * 2 ** i for i in range(len(backbone['num_heads']))]
    return [f'model.backbone.embed_dims={dims}', 'model.neck.in_channels=[' + ','.join(map(str, channels)) + ']']
