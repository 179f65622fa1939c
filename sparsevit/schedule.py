"""Per-block pruning schedules and the layer-wise sparsity search space.

Plain Python (no torch): shared by the backbone, the Sparsity-Aware Adaptation hook, the evolutionary search and
the configs, so the space is defined in exactly one place.

Vocabulary:
    prune_ratio / pruning_ratios: the fraction of windows *removed* (the original's config key).
    gene: one searchable ratio, shared by a (W-MSA, SW-MSA) block pair of one stage. Genes are named as in the
        original's search log: ``backbone.stages.{i}`` when a stage has one pair, ``backbone.stages.{i}_{j}``
        (j from 1) otherwise. A configuration is an ordered ``dict`` gene name -> ratio (JSON-serialisable).
"""
import math
import random
from typing import Dict, List, Optional, Sequence, Union

Ratios = Union[None, float, Sequence[float], Sequence[Sequence[float]]]
Genes = Dict[str, float]

#: The original's choice set: {0, 0.1, ..., 0.8}.
DEFAULT_CHOICES = tuple(round(0.1 * i, 1) for i in range(9))


def _check_ratio(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'pruning_ratios: {where} is {value!r}; expected a number in [0, 1)')
    value = float(value)
    if not (0.0 <= value < 1.0) or math.isnan(value):
        raise ValueError(f'pruning_ratios: {where} is {value}; allowed range is [0, 1)')
    return value


def normalize_pruning_ratios(ratios: Ratios, depths: Sequence[int]) -> List[List[float]]:
    """Normalise any accepted form of ``pruning_ratios`` to one list of ratios per stage, one ratio per block.

    Accepted forms (like ToMe's schedule parser: scalar, per-stage or per-block):
        ``None`` (dense); one float (every block); a list with one float per stage; or the original schema,
        a list per stage of one ratio per block, e.g. ``[[0.3, 0.3], [0, 0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0, 0]]``.

    Raises:
        ValueError: naming the stage, block and value, when a ratio is outside [0, 1), a stage has the wrong
            number of blocks, the number of stages is wrong, or the ratios decrease along a stage.
    """
    depths = [int(d) for d in depths]
    if ratios is None:
        return [[0.0] * d for d in depths]
    if isinstance(ratios, (int, float)) and not isinstance(ratios, bool):
        r = _check_ratio(ratios, 'the single ratio')
        return [[r] * d for d in depths]
    if isinstance(ratios, (str, bytes, dict)) or not hasattr(ratios, '__len__'):
        raise ValueError(f'pruning_ratios must be None, a float, a list per stage or a list of lists per block; '
                         f'got {type(ratios).__name__}')
    ratios = list(ratios)
    if len(ratios) != len(depths):
        raise ValueError(f'pruning_ratios has {len(ratios)} stages; the backbone has {len(depths)} '
                         f'(depths={tuple(depths)})')
    out = []
    for i, (stage, depth) in enumerate(zip(ratios, depths)):
        if isinstance(stage, (list, tuple)):
            if len(stage) != depth:
                raise ValueError(f'pruning_ratios: stage {i} has {len(stage)} ratios; it has {depth} blocks')
            blocks = [_check_ratio(r, f'stage {i} block {j}') for j, r in enumerate(stage)]
        else:
            blocks = [_check_ratio(stage, f'stage {i}')] * depth
        for j in range(1, depth):
            if blocks[j] < blocks[j - 1]:
                raise ValueError(f'pruning_ratios: stage {i} block {j} is {blocks[j]} < block {j - 1} '
                                 f'({blocks[j - 1]}); ratios must be non-decreasing along a stage')
        out.append(blocks)
    return out


def is_dense(ratios: Sequence[Sequence[float]]) -> bool:
    """True when no block prunes anything."""
    return all(r == 0 for stage in ratios for r in stage)


# ----------------------------------------------------------------------------------------------------------------
# Search space (genes)
# ----------------------------------------------------------------------------------------------------------------
def genes_per_stage(depths: Sequence[int]) -> List[int]:
    """Number of genes of each stage: one per (W-MSA, SW-MSA) pair; a trailing unpaired block joins the last."""
    return [max(1, int(d) // 2) if d > 0 else 0 for d in depths]


def gene_names(depths: Sequence[int]) -> List[str]:
    """The original's gene names, e.g. for 2/2/6/2: stages.0, .1, .2_1, .2_2, .2_3, .3 (``backbone.`` prefix)."""
    names = []
    for i, n in enumerate(genes_per_stage(depths)):
        names += [f'backbone.stages.{i}'] if n == 1 else [f'backbone.stages.{i}_{j + 1}' for j in range(n)]
    return names


def _stage_slices(depths: Sequence[int]):
    start = 0
    for n in genes_per_stage(depths):
        yield slice(start, start + n)
        start += n


def genes_to_ratios(genes: Union[Genes, Sequence[float]], depths: Sequence[int]) -> List[List[float]]:
    """Expand genes (dict by name, or a flat list in name order) to per-block ratios (each pair shares a gene)."""
    names = gene_names(depths)
    if isinstance(genes, dict):
        missing = [n for n in names if n not in genes]
        extra = [k for k in genes if k not in names]
        if missing or extra:
            raise ValueError(f'sparsity config does not match depths {tuple(depths)}: missing {missing}, '
                             f'unexpected {extra}')
        values = [float(genes[n]) for n in names]
    else:
        values = [float(v) for v in genes]
        if len(values) != len(names):
            raise ValueError(f'expected {len(names)} genes for depths {tuple(depths)}, got {len(values)}')
    ratios = []
    for depth, sl in zip(depths, _stage_slices(depths)):
        stage_genes = values[sl]
        ratios.append([stage_genes[min(j // 2, len(stage_genes) - 1)] for j in range(depth)] if stage_genes else [])
    return normalize_pruning_ratios(ratios, depths)


def ratios_to_genes(ratios: Ratios, depths: Sequence[int]) -> Genes:
    """Inverse of :func:`genes_to_ratios`; raises ValueError if a pair of blocks has different ratios."""
    per_block = normalize_pruning_ratios(ratios, depths)
    genes = {}
    names = iter(gene_names(depths))
    for i, (blocks, n) in enumerate(zip(per_block, genes_per_stage(depths))):
        for j in range(n):
            pair = blocks[2 * j:2 * j + 2] if j < n - 1 else blocks[2 * j:]
            if len(set(pair)) > 1:
                raise ValueError(f'stage {i} blocks {2 * j}.. have different ratios {pair}; '
                                 f'a (W-MSA, SW-MSA) pair shares one ratio in the search space')
            genes[next(names)] = pair[0]
    return genes


def make_monotone(genes: Genes, depths: Sequence[int]) -> Genes:
    """Restore the non-decreasing order within each stage by sorting that stage's genes."""
    names = gene_names(depths)
    values = [genes[n] for n in names]
    for sl in _stage_slices(depths):
        values[sl] = sorted(values[sl])
    return dict(zip(names, values))


def sample_genes(rng: random.Random, depths: Sequence[int],
                 choices: Sequence[float] = DEFAULT_CHOICES) -> Genes:
    """One uniformly sampled configuration: per stage, its genes drawn from ``choices`` and sorted ascending."""
    return make_monotone({n: rng.choice(choices) for n in gene_names(depths)}, depths)


def mutate_genes(genes: Genes, rng: random.Random, depths: Sequence[int], prob: float = 0.1,
                 choices: Sequence[float] = DEFAULT_CHOICES) -> Genes:
    """Resample each gene with probability ``prob``, then restore monotonicity."""
    return make_monotone({n: (rng.choice(choices) if rng.random() < prob else v) for n, v in genes.items()},
                         depths)


def mutate_genes_from_sample(genes: Genes, rng: random.Random, depths: Sequence[int], prob: float = 0.1,
                             choices: Sequence[float] = DEFAULT_CHOICES) -> Genes:
    """The original search's mutation: draw a fresh uniform sample (sorted per stage, as :func:`sample_genes`);
    each gene takes the fresh sample's value *at the same position* with probability ``prob``, else keeps its own;
    then each stage is sorted again.

    So a stage's first gene, when mutated, becomes the minimum of that stage's fresh draws, its last gene the
    maximum (unlike :func:`mutate_genes`, whose new values are uniform).
    """
    fresh = sample_genes(rng, depths, choices)
    return make_monotone({n: (fresh[n] if rng.random() < prob else v) for n, v in genes.items()}, depths)


def crossover_genes(a: Genes, b: Genes, rng: random.Random, depths: Sequence[int]) -> Genes:
    """Uniform crossover: each gene from ``a`` or ``b`` with equal probability, then monotonicity restored."""
    return make_monotone({n: (a[n] if rng.random() < 0.5 else b[n]) for n in a}, depths)


def genes_key(genes: Genes) -> str:
    """A hashable, stable key of a configuration (used to skip duplicates)."""
    return ','.join(f'{genes[n]:.2f}' for n in sorted(genes))


def format_genes(genes: Genes) -> str:
    """The original's log format: one ``name : ratio`` line per gene."""
    return '\n'.join(f'{n} : {v:g}' for n, v in genes.items())


def dense_genes(depths: Sequence[int]) -> Genes:
    return {n: 0.0 for n in gene_names(depths)}


def sparsest_genes(depths: Sequence[int], choices: Sequence[float] = DEFAULT_CHOICES) -> Genes:
    return {n: max(choices) for n in gene_names(depths)}


def check_choices(choices: Optional[Sequence[float]]) -> tuple:
    """Validate a choice set (each in [0, 1)) and return it sorted."""
    choices = DEFAULT_CHOICES if choices is None else tuple(sorted(float(c) for c in choices))
    if not choices:
        raise ValueError('the choice set of pruning ratios is empty')
    for c in choices:
        _check_ratio(c, 'a choice')
    return choices
