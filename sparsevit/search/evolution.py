"""Latency-constrained evolutionary search over layer-wise sparsity configurations.

Plain Python (no torch, no mmdet), in the spirit of OFA's ``EvolutionFinder``: the searcher sees only two callables,
``latency(config) -> ms`` and ``score(config) -> metric``, and the search-space operations of
:mod:`sparsevit.schedule`, so it can be tested with fakes in milliseconds.

Algorithm (the original's, OFA defaults):
    1. Initial population: uniformly sampled configurations until ``population`` distinct ones lie in the latency
       band ``[min_latency, max_latency]``.
    2. Each iteration: the top ``parents`` of the population (by metric) survive; the remaining slots are filled
       with children, ``mutation_ratio`` of them by mutation (each gene resampled with ``mutation_prob``) and the
       rest by uniform crossover of two random parents; per-stage monotonicity is restored by sorting.
Improvements over the original: a seeded ``random.Random``; every configuration is hashed, so a duplicate is never
evaluated twice (it is rejected and another child drawn); a candidate outside the band is recorded but never scored
and never enters the population; retries are bounded, so a band that cannot be met stops with a clear error instead
of looping forever; and the state serialises to JSON so an interrupted search resumes exactly where it stopped.

Records (one per evaluated configuration, JSON-serialisable) have the keys ``index``, ``iteration``, ``origin``
(``random`` / ``mutation`` / ``crossover``), ``config`` (gene name -> ratio), ``latency`` (ms), ``feasible``,
``metric`` (None when infeasible) and ``extra`` (other values returned by ``score``).
"""
import logging
import random
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..schedule import (DEFAULT_CHOICES, Genes, check_choices, crossover_genes, dense_genes, genes_key,
                        mutate_genes, sample_genes, sparsest_genes)

logger = logging.getLogger(__name__)

LatencyFn = Callable[[Genes], float]
ScoreFn = Callable[[Genes], Union[float, Tuple[float, Mapping[str, float]]]]
RecordFn = Callable[[dict, bool], None]

STATE_VERSION = 1


class InfeasibleBandError(ValueError):
    """No configuration of the search space meets the latency band."""


class EvolutionSearcher:
    """Evolutionary search for the best-scoring configuration whose latency lies in ``[min_latency, max_latency]``.

    Args:
        depths: blocks per stage of the backbone; the search space (genes) is derived from them.
        latency_fn: configuration -> latency in ms (deterministic for a given configuration).
        score_fn: configuration -> metric (higher is better), or ``(metric, extra_values)``.
        max_latency: upper end of the latency band (ms).
        min_latency: lower end of the latency band (ms). Default: 0.
        population: number of feasible candidates kept per iteration. Default: 100.
        parents: number of top candidates that survive and breed. Default: 25.
        mutation_prob: probability of resampling each gene of a mutated child. Default: 0.1.
        mutation_ratio: fraction of the children made by mutation (the rest by crossover). Default: 0.5.
        choices: allowed pruning ratios. Default: {0, 0.1, ..., 0.8}.
        seed: seed of the searcher's ``random.Random``. Default: 0.
        max_retries: consecutive rejected draws (duplicate or infeasible) tolerated before giving up on a slot.
            Default: 1000.
        on_record: called as ``on_record(record, replayed)`` after every evaluated configuration; ``replayed`` is
            True for records restored from an interrupted run's history (see :meth:`load_state_dict`).
    """

    def __init__(self, depths: Sequence[int], latency_fn: LatencyFn, score_fn: ScoreFn, max_latency: float,
                 min_latency: float = 0.0, population: int = 100, parents: int = 25, mutation_prob: float = 0.1,
                 mutation_ratio: float = 0.5, choices: Sequence[float] = DEFAULT_CHOICES, seed: int = 0,
                 max_retries: int = 1000, on_record: Optional[RecordFn] = None):
        _check_settings(min_latency, max_latency, population, parents, mutation_prob, mutation_ratio, max_retries)
        self.depths = tuple(int(d) for d in depths)
        self.latency_fn, self.score_fn, self.on_record = latency_fn, score_fn, on_record
        self.max_latency, self.min_latency = float(max_latency), float(min_latency)
        self.population_size, self.num_parents = int(population), int(parents)
        self.mutation_prob, self.mutation_ratio = float(mutation_prob), float(mutation_ratio)
        self.choices = check_choices(choices)
        self.seed, self.max_retries = int(seed), int(max_retries)
        self.rng = random.Random(self.seed)
        self.iteration = -1  # -1: no population yet; 0: initial population done; i: i generations done
        self.population: List[dict] = []
        self.history: List[dict] = []
        self.exhausted = False
        self._best: Optional[dict] = None
        self._seen: set = set()
        self._replay: Dict[str, dict] = {}

    # ------------------------------------------------------------------------------------------------ queries
    def feasible(self, latency: float) -> bool:
        """Whether ``latency`` lies in the band (both ends included)."""
        return self.min_latency <= latency <= self.max_latency

    @property
    def best(self) -> Optional[dict]:
        """The best feasible record evaluated so far (earliest wins ties), or None."""
        return self._best

    def check_band(self) -> Tuple[float, float]:
        """Check the band against the slowest (dense) and fastest (sparsest) configurations first.

        Returns:
            (dense latency, sparsest latency) in ms.

        Raises:
            InfeasibleBandError: if the band lies above the dense or below the sparsest latency.
        """
        dense = float(self.latency_fn(dense_genes(self.depths)))
        sparsest = float(self.latency_fn(sparsest_genes(self.depths, self.choices)))
        band = f'[{self.min_latency:g}, {self.max_latency:g}] ms'
        if self.min_latency > dense:
            raise InfeasibleBandError(f'latency band {band} is above the dense model ({dense:.2f} ms), the slowest '
                                      f'configuration: lower --min below {dense:.2f}')
        if self.max_latency < sparsest:
            raise InfeasibleBandError(f'latency band {band} is below the sparsest configuration ({sparsest:.2f} '
                                      f'ms), the fastest one: raise --max above {sparsest:.2f}')
        return dense, sparsest

    # ------------------------------------------------------------------------------------------------ search
    def run(self, iters: int, on_iteration: Optional[Callable[['EvolutionSearcher'], None]] = None
            ) -> Optional[dict]:
        """Search until ``iters`` iterations are done (continuing a loaded state); returns the best record.

        ``on_iteration(self)`` is called after the initial population and after every iteration (write the state
        there). The search stops early when an iteration cannot produce a single new feasible child.
        """
        if iters < 0:
            raise ValueError(f'iters must be >= 0, got {iters}')
        if self.iteration < 0:
            self.init_population()
            if on_iteration is not None:
                on_iteration(self)
        while self.iteration < iters and not self.exhausted:
            self.step()
            if on_iteration is not None:
                on_iteration(self)
        return self.best

    def init_population(self) -> None:
        """Sample distinct configurations until ``population`` are feasible (bounded retries).

        Raises:
            InfeasibleBandError: when no feasible configuration is found within ``max_retries`` draws.
        """
        draws = 0
        while len(self.population) < self.population_size:
            record, tries = self._draw(lambda: sample_genes(self.rng, self.depths, self.choices), 'random')
            draws += tries
            if record is None:
                break
            self.population.append(record)
        if not self.population:
            raise InfeasibleBandError(
                f'no configuration with latency in [{self.min_latency:g}, {self.max_latency:g}] ms found in {draws} '
                f'random draws ({len(self.history)} distinct configurations measured): widen the band')
        if len(self.population) < self.population_size:
            logger.warning('only %d of %d feasible configurations found for the initial population (band too '
                           'narrow); continuing with them', len(self.population), self.population_size)
        self.iteration = 0

    def step(self) -> List[dict]:
        """One iteration: keep the top parents, add mutation and crossover children; returns the children.

        When one kind of child cannot be made within ``max_retries`` draws (its neighbourhood is exhausted), the
        remaining slots go to the other kind; when neither can, the iteration ends with fewer children.
        """
        parents = self.top(self.population, self.num_parents)
        n_children = self.population_size - len(parents)
        n_mutation = int(round(n_children * self.mutation_ratio))
        origins = ['mutation'] * n_mutation + ['crossover'] * (n_children - n_mutation)
        children, failed = [], set()
        for origin in origins:
            for kind in (origin, 'crossover' if origin == 'mutation' else 'mutation'):
                record = None if kind in failed else self._draw(lambda: self._child(parents, kind), kind)[0]
                if record is not None:
                    children.append(record)
                    break
                failed.add(kind)
            if len(failed) == 2:
                break
        if not children and n_children > 0:
            self.exhausted = True
            logger.warning('iteration %d: no new feasible configuration in %d draws; the band around the parents '
                           'is exhausted, stopping', self.iteration + 1, self.max_retries)
        self.population = parents + children
        self.iteration += 1
        return children

    @staticmethod
    def top(records: Sequence[dict], k: int) -> List[dict]:
        """The ``k`` best records by metric (earlier records win ties)."""
        return sorted(records, key=_rank_key)[:k]

    def _child(self, parents: Sequence[dict], origin: str) -> Genes:
        if origin == 'mutation':
            parent = self.rng.choice(parents)['config']
            return mutate_genes(parent, self.rng, self.depths, self.mutation_prob, self.choices)
        a, b = self.rng.choice(parents)['config'], self.rng.choice(parents)['config']
        return crossover_genes(a, b, self.rng, self.depths)

    def _draw(self, propose: Callable[[], Genes], origin: str) -> Tuple[Optional[dict], int]:
        """Propose until a new feasible configuration is found or ``max_retries`` draws fail in a row."""
        for tries in range(1, self.max_retries + 1):
            record = self._evaluate(propose(), origin)
            if record is not None and record['feasible']:
                return record, tries
        return None, self.max_retries

    def _evaluate(self, genes: Genes, origin: str) -> Optional[dict]:
        """Latency, then (only when feasible) score; None for a duplicate, which is never evaluated again."""
        key = genes_key(genes)
        if key in self._seen:
            return None
        self._seen.add(key)
        record = self._replay.pop(key, None)
        replayed = record is not None
        if not replayed:
            latency = float(self.latency_fn(genes))
            feasible = self.feasible(latency)
            metric, extra = self._score(genes) if feasible else (None, {})
            record = dict(index=len(self.history), iteration=self.iteration + 1, origin=origin, config=dict(genes),
                          latency=latency, feasible=feasible, metric=metric, extra=extra)
        if record['index'] != len(self.history):
            logger.warning('replayed record %d arrives at position %d: the callables are not deterministic',
                           record['index'], len(self.history))
        self._append(record)
        if self.on_record is not None:
            self.on_record(record, replayed)
        return record

    def _append(self, record: dict) -> None:
        self.history.append(record)
        if record['feasible'] and (self._best is None or _rank_key(record) < _rank_key(self._best)):
            self._best = record

    def _score(self, genes: Genes) -> Tuple[float, Dict[str, float]]:
        out = self.score_fn(genes)
        if isinstance(out, tuple):
            metric, extra = out
            return float(metric), {k: float(v) for k, v in dict(extra).items()}
        return float(out), {}

    # ------------------------------------------------------------------------------------------------ state
    def settings(self) -> dict:
        """Everything that must match for a saved state to be resumed."""
        return dict(depths=list(self.depths), choices=list(self.choices), max_latency=self.max_latency,
                    min_latency=self.min_latency, population=self.population_size, parents=self.num_parents,
                    mutation_prob=self.mutation_prob, mutation_ratio=self.mutation_ratio, seed=self.seed,
                    max_retries=self.max_retries)

    def state_dict(self) -> dict:
        """JSON-serialisable state at an iteration boundary; the records themselves live in the history."""
        version, internal, gauss = self.rng.getstate()
        return dict(version=STATE_VERSION, settings=self.settings(), iteration=self.iteration,
                    exhausted=self.exhausted, num_records=len(self.history),
                    population=[r['index'] for r in self.population],
                    rng=[version, list(internal), gauss])

    def load_state_dict(self, state: Mapping, history: Sequence[dict]) -> None:
        """Restore a state written by :meth:`state_dict`, with the run's full history (e.g. read from JSONL).

        Records beyond ``state['num_records']`` were evaluated after the state was written (the run was killed
        mid-iteration): they are replayed, not re-evaluated, as the iteration is redone, so the continued search
        is identical to an uninterrupted one.

        Raises:
            ValueError: if the state belongs to different settings or the history is shorter than the state.
        """
        if state.get('version') != STATE_VERSION:
            raise ValueError(f"search state version {state.get('version')!r} is not {STATE_VERSION}")
        diff = {k: (v, state['settings'].get(k)) for k, v in self.settings().items() if state['settings'].get(k) != v}
        if diff:
            raise ValueError('the saved search used other settings: ' +
                             ', '.join(f'{k}={saved!r} (now {now!r})' for k, (now, saved) in diff.items()))
        n = int(state['num_records'])
        if len(history) < n:
            raise ValueError(f'the history has {len(history)} records but the state needs {n}')
        self.history, self._best = [], None
        for record in history[:n]:
            self._append(dict(record))
        self._seen = {genes_key(r['config']) for r in self.history}
        self._replay = {genes_key(r['config']): dict(r) for r in history[n:]}
        self.population = [self.history[i] for i in state['population']]
        self.iteration, self.exhausted = int(state['iteration']), bool(state['exhausted'])
        version, internal, gauss = state['rng']
        self.rng.setstate((version, tuple(internal), gauss))


def _rank_key(record: Mapping) -> tuple:
    return -record['metric'], record['index']


def _check_settings(min_latency: float, max_latency: float, population: int, parents: int, mutation_prob: float,
                    mutation_ratio: float, max_retries: int) -> None:
    """Raise ValueError with one clear message for the first invalid setting."""
    if not min_latency <= max_latency:
        raise ValueError(f'min latency {min_latency:g} ms is above max latency {max_latency:g} ms; need min <= max')
    if population < 2:
        raise ValueError(f'population must be >= 2, got {population}')
    if not 1 <= parents < population:
        raise ValueError(f'parents must be in [1, population - 1] = [1, {population - 1}], got {parents}')
    if not 0.0 <= mutation_prob <= 1.0:
        raise ValueError(f'mutation probability must be in [0, 1], got {mutation_prob}')
    if not 0.0 <= mutation_ratio <= 1.0:
        raise ValueError(f'mutation ratio must be in [0, 1], got {mutation_ratio}')
    if max_retries < 1:
        raise ValueError(f'max retries must be >= 1, got {max_retries}')
