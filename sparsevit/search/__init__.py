"""Latency-constrained evolutionary search of layer-wise sparsity (the SparseViT README's search step).

* :mod:`.evolution` — the searchers (plain Python: two callables, latency and score): the original algorithm
  (default, also serving several latency budgets in one run) and the elitist variant; :mod:`.pooled`, a
  multi-budget variant kept for the record;
* :mod:`.budgets` — latency budgets: ascending budgets, one band ``[min, max]`` being one budget, in ms or as
  fractions of the dense latency (``0.85x``, resolved against the search's own dense latency);
* :mod:`.settings` — the settings of ``tools/search.py`` and their one check;
* :mod:`.latency_table` — the additive per-stage latency lookup table of the sparse backbone;
* :mod:`.evaluator` — the score: COCO mAP of the detector, sharded over ``torchpack dist-run`` ranks;
* :mod:`.outputs` — the files of a search (log, history, state, summary, plot, best configs, front);
* :mod:`.runner` — the whole search as run by ``tools/search.py`` (imported on use: it needs mmdet);
* :mod:`.benchmark` — the searchers compared on a fake objective (``tools/benchmark_search.py``).
"""
from .budgets import Budgets, Limit
from .evolution import (STRATEGIES, ElitistSearcher, EvolutionSearcher, InfeasibleBandError, SearchBase,
                        make_searcher)
from .latency_table import LatencyTable, StaleTableError, build_latency_table, table_key
from .settings import SearchSettings

__all__ = ['Budgets', 'ElitistSearcher', 'EvolutionSearcher', 'InfeasibleBandError', 'LatencyTable', 'Limit',
           'STRATEGIES', 'SearchBase', 'SearchSettings', 'StaleTableError', 'build_latency_table', 'make_searcher',
           'table_key']
