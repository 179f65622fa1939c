"""A multi-budget variant of the original search, kept for the record (``tools/benchmark_search.py --pooled``).

It differs from :class:`~.evolution.EvolutionSearcher` in one rule only, how a step proposes its candidate: the
budgets take no turns; every step draws its parents from all budgets alike, and one count of all populations picks
mutation or crossover. The budgets that fill their population first then take all the steps after that, and those
far from the best scores starve; on the benchmark's objective it was within noise of the turns of the searcher.
"""
from typing import Tuple

from ..schedule import Genes, crossover_genes, mutate_genes_from_sample
from .evolution import EvolutionSearcher


class PooledSearcher(EvolutionSearcher):
    """:class:`~.evolution.EvolutionSearcher` (same arguments, populations, parents and steps) with pooled parents:
    see the module docstring. Its settings are those of the original strategy."""

    def propose(self) -> Tuple[Genes, str]:
        pool = [p for parents in self.parents for p in parents]
        held = sum(len(pop) for pop in self.populations)
        if not pool:
            return self._sample(), 'random'
        if held < self.share_population * len(self.populations) // 2:
            parent = self.rng.choice(pool)['config']
            return mutate_genes_from_sample(parent, self.rng, self.depths, self.mutation_prob, self.choices), 'mutation'
        a, b = self.rng.sample(pool, 2)
        return crossover_genes(a['config'], b['config'], self.rng, self.depths), 'crossover'
