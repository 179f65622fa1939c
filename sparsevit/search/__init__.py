"""Latency-constrained evolutionary search of layer-wise sparsity (the SparseViT README's search step).

* :mod:`.evolution` — the searcher (plain Python: two callables, latency and score);
* :mod:`.latency_table` — the additive per-stage latency lookup table of the sparse backbone;
* :mod:`.evaluator` — the score: COCO mAP of the detector, sharded over ``torchpack dist-run`` ranks;
* :mod:`.outputs` — the files of a search (log, history, state, summary, plot, best config);
* :mod:`.runner` — the whole search as run by ``tools/search.py`` (imported on use: it needs mmdet).
"""
from .evolution import EvolutionSearcher, InfeasibleBandError
from .latency_table import LatencyTable, StaleTableError, build_latency_table, table_key

__all__ = ['EvolutionSearcher', 'InfeasibleBandError', 'LatencyTable', 'StaleTableError', 'build_latency_table',
           'table_key']
