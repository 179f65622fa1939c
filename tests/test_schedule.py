"""The plain-Python schedule and search space shared by backbone, SAA, search and configs."""
import random

import pytest

from sparsevit import schedule as S

SWIN_T = (2, 2, 6, 2)
CFG1 = [[.3, .3], [0, 0], [.1, .1, .2, .2, .2, .2], [0, 0]]


def test_normalize_forms():
    assert S.normalize_pruning_ratios(None, SWIN_T) == [[0.0] * d for d in SWIN_T]
    assert S.normalize_pruning_ratios(0.5, SWIN_T) == [[0.5] * d for d in SWIN_T]
    assert S.normalize_pruning_ratios([0.1, 0, 0.2, 0], SWIN_T)[2] == [0.2] * 6
    assert S.normalize_pruning_ratios(CFG1, SWIN_T) == CFG1


@pytest.mark.parametrize('bad, words', [
    ([[.3, .3], [0, 0], [.1, .1, .2, .2, .2, .2]], ['3 stages', '4']),
    ([[.3], [0, 0], [.1] * 6, [0, 0]], ['stage 0', '1 ratios', '2 blocks']),
    ([[.3, 1.0], [0, 0], [.1] * 6, [0, 0]], ['stage 0 block 1', '[0, 1)']),
    ([[.3, .3], [0, -0.1], [.1] * 6, [0, 0]], ['stage 1 block 1', '-0.1']),
    ([[.3, .2], [0, 0], [.1] * 6, [0, 0]], ['stage 0 block 1', 'non-decreasing']),
    (float('nan'), ['nan']),
    ('0.3', ['str']),
    ([[.3, 'a'], [0, 0], [.1] * 6, [0, 0]], ['stage 0 block 1', "'a'"]),
])
def test_normalize_errors_name_the_problem(bad, words):
    with pytest.raises(ValueError) as err:
        S.normalize_pruning_ratios(bad, SWIN_T)
    for w in words:
        assert w in str(err.value)


def test_gene_names_and_roundtrip():
    names = S.gene_names(SWIN_T)
    assert names == ['backbone.stages.0', 'backbone.stages.1', 'backbone.stages.2_1', 'backbone.stages.2_2',
                     'backbone.stages.2_3', 'backbone.stages.3']
    genes = S.ratios_to_genes(CFG1, SWIN_T)
    assert list(genes.values()) == [.3, 0, .1, .2, .2, 0]
    assert S.genes_to_ratios(genes, SWIN_T) == CFG1
    assert 'backbone.stages.2_1 : 0.1' in S.format_genes(genes)
    with pytest.raises(ValueError, match='pair'):
        S.ratios_to_genes([[0, .3], [0, 0], [0] * 6, [0, 0]], SWIN_T)
    # the space follows the depths, it is not hard-coded to 2/2/6/2
    assert S.gene_names((2, 4, 2)) == ['backbone.stages.0', 'backbone.stages.1_1', 'backbone.stages.1_2',
                                       'backbone.stages.2']


def test_sampling_mutation_crossover_stay_in_space():
    rng = random.Random(0)
    for _ in range(200):
        a, b = S.sample_genes(rng, SWIN_T), S.sample_genes(rng, SWIN_T)
        for g in (a, b, S.mutate_genes(a, rng, SWIN_T, prob=0.5), S.crossover_genes(a, b, rng, SWIN_T)):
            assert set(g.values()) <= set(S.DEFAULT_CHOICES)
            ratios = S.genes_to_ratios(g, SWIN_T)  # raises if not monotone
            assert all(stage[2 * j] == stage[2 * j + 1] for stage in ratios for j in range(len(stage) // 2))
    assert S.sample_genes(random.Random(3), SWIN_T) == S.sample_genes(random.Random(3), SWIN_T)
    assert S.genes_key(S.dense_genes(SWIN_T)) != S.genes_key(S.sparsest_genes(SWIN_T))
