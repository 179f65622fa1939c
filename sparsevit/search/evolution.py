"""Latency-constrained evolutionary search over layer-wise sparsity configurations.

Plain Python (no torch, no mmdet), in the spirit of OFA's ``EvolutionFinder``: a searcher sees only two callables,
``latency(config) -> ms`` and ``score(config) -> metric``, and the search-space operations of
:mod:`sparsevit.schedule`, so it can be tested with fakes in milliseconds.

Two strategies (``tools/search.py --strategy``):

* :class:`EvolutionSearcher` (``original``, the default): the original SparseViT search, step by step; with several
  :class:`~.budgets.Budgets` one run serves them all (the population and the parents are kept per budget).
* :class:`ElitistSearcher` (``elitist``): generations in which the top parents survive beside their children, and
  a duplicate is redrawn instead of counted.

A **step** is one candidate taken by the search, and ``--iters`` counts steps for both. Every step appends one
record to the history (JSON-serialisable): ``step``, ``origin`` (``random`` / ``mutation`` / ``crossover``),
``cached`` (the configuration was evaluated at an earlier step and its result reused), ``feasible``, ``budget``
(index of the budget its latency falls in, None when infeasible), ``latency`` (ms), ``metric`` (None when
infeasible: the original's -inf, never scored), ``config`` (gene name -> ratio) and ``extra`` (other values
returned by ``score``).

Resuming: the searchers are deterministic given their seed and the evaluation results, so
:meth:`SearchBase.resume` replays an interrupted run's history from the start, taking every recorded result
instead of evaluating it again, and the continued search is identical to an uninterrupted one.
"""
import logging
import random
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..schedule import (DEFAULT_CHOICES, Genes, check_choices, crossover_genes, dense_genes, genes_key,
                        mutate_genes, mutate_genes_from_sample, sample_genes, sparsest_genes)
from .budgets import Budgets, infeasible_message, unreachable_message

logger = logging.getLogger(__name__)

LatencyFn = Callable[[Genes], float]
ScoreFn = Callable[[Genes], Union[float, Tuple[float, Mapping[str, float]]]]
RecordFn = Callable[[dict, bool, bool], None]

STRATEGIES = ('original', 'elitist')


class ReplayMismatch(ValueError):
    """A resumed search proposes another configuration than its history records (:meth:`SearchBase.resume`)."""


class InfeasibleBandError(ValueError):
    """No configuration of the search space meets the latency band (or any of the budgets)."""


class _StepLimit(Exception):
    """Raised inside a search when its step budget is spent (ends :meth:`SearchBase.run`)."""


class SearchBase:
    """What both strategies share: budgets, evaluation with a cache, history, bests, replay.

    Args:
        depths: blocks per stage of the backbone; the search space (genes) is derived from them.
        latency_fn: configuration -> latency in ms.
        score_fn: configuration -> metric (higher is better), or ``(metric, extra_values)``.
        budgets: the latency budgets (one band: ``Budgets([max], min)``).
        choices: allowed pruning ratios. Default: {0, 0.1, ..., 0.8}.
        seed: seed of the searcher's ``random.Random``. Default: 0.
        on_record: called as ``on_record(record, replayed, new_best)`` after every step; ``replayed`` is True for
            records restored from an interrupted run's history (see :meth:`resume`), ``new_best`` when the record
            became the best of its budget with another configuration than the previous best.
    """

    strategy = ''

    def __init__(self, depths: Sequence[int], latency_fn: LatencyFn, score_fn: ScoreFn, budgets: Budgets,
                 choices: Sequence[float] = DEFAULT_CHOICES, seed: int = 0, on_record: Optional[RecordFn] = None):
        self.depths = tuple(int(d) for d in depths)
        self.latency_fn, self.score_fn, self.on_record = latency_fn, score_fn, on_record
        self.budgets = budgets
        self.choices = check_choices(choices)
        self.seed = int(seed)
        self.rng = random.Random(self.seed)
        self.history: List[dict] = []
        self.cache: Dict[str, dict] = {}
        self.bests: List[Optional[dict]] = [None] * len(budgets)
        self.targets: List[int] = list(range(len(budgets)))  # budgets that take turns (see check_band)
        self.reference: Optional[Tuple[float, float]] = None  # (dense, sparsest) ms, set by check_band
        self._replay: List[dict] = []
        self._limit: Optional[int] = None

    # ------------------------------------------------------------------------------------------------ queries
    @property
    def steps(self) -> int:
        """Steps taken so far (= records in the history)."""
        return len(self.history)

    @property
    def best(self) -> Optional[dict]:
        """The best record over all budgets, a tie going to the later one (None: none feasible yet)."""
        return max((b for b in self.bests if b is not None), key=lambda r: (r['metric'], r['step']), default=None)

    def feasible(self, latency: float) -> bool:
        """Whether ``latency`` falls in a budget (one band: ``min <= latency <= max``)."""
        return self.budgets.index(latency) is not None

    def check_band(self, dense: Optional[float] = None, sparsest: Optional[float] = None) -> Tuple[float, float]:
        """Check the budgets against the slowest (dense) and fastest (sparsest) configurations first.

        Relative budgets (fractions of the dense latency) are resolved here, against the dense latency as
        ``latency_fn`` gives it: :attr:`budgets` becomes the budgets in milliseconds. Budgets that no configuration
        can meet (their band outside ``[sparsest, dense]``) are left out of the turns (:attr:`targets`); call it
        before :meth:`run` (and before resuming).

        Args:
            dense, sparsest: the two latencies when already known (a resumed search passes those it saw first, so
                that its budgets and turns are the interrupted run's); measured with ``latency_fn`` when None.

        Returns:
            (dense latency, sparsest latency) in ms.

        Raises:
            InfeasibleBandError: if no budget can be met: every band lies above the dense or below the sparsest
                latency (:func:`~.budgets.unreachable_message`).
        """
        if dense is None:
            dense = self.latency_fn(dense_genes(self.depths))
        if sparsest is None:
            sparsest = self.latency_fn(sparsest_genes(self.depths, self.choices))
        dense, sparsest = float(dense), float(sparsest)
        if not self.budgets.resolved:
            self.budgets = self.budgets.resolve(dense)
        self.reference = (dense, sparsest)
        reachable = self.budgets.reachable(dense, sparsest)
        if not any(reachable):
            raise InfeasibleBandError(unreachable_message(self.budgets, dense, sparsest))
        self.targets = [i for i, ok in enumerate(reachable) if ok]
        return dense, sparsest

    def outside(self) -> Tuple[int, int]:
        """Steps whose latency fell (below, above) the budgets (cached steps included)."""
        below = sum(1 for r in self.history if not r['feasible'] and r['latency'] < self.budgets.min)
        above = sum(1 for r in self.history if not r['feasible'] and r['latency'] > self.budgets.max)
        return below, above

    def require_feasible(self, source: str = 'latency_fn') -> None:
        """Raise :class:`InfeasibleBandError` with the numbers needed to act when no step was feasible."""
        if any(b is not None for b in self.bests):
            return
        dense, sparsest = self.reference if self.reference is not None else self.check_band()
        raise InfeasibleBandError(infeasible_message(self.budgets, self.steps, dense, sparsest, *self.outside(),
                                                     source))

    # ------------------------------------------------------------------------------------------------ search
    def run(self, steps: int, on_step: Optional[Callable[['SearchBase'], None]] = None) -> Optional[dict]:
        """Search until ``steps`` steps are done in all (continuing a resumed history); returns :attr:`best`.

        ``on_step(self)`` is called after every step.
        """
        if steps < 0:
            raise ValueError(f'steps must be >= 0, got {steps}')
        self._limit = int(steps)
        try:
            self._search(on_step)
        except _StepLimit:
            pass
        finally:
            self._limit = None
        if self._replay and self.steps < len(self._replay):
            logger.warning('the search stopped at step %d, before the end of the resumed history (%d steps)',
                           self.steps, len(self._replay))
        return self.best

    def _search(self, on_step) -> None:
        raise NotImplementedError

    def resume(self, history: Sequence[Mapping]) -> None:
        """Replay the records of an interrupted run (e.g. read back from its JSONL history) before searching on.

        The search restarts from step 0 with the same seed; at each recorded step it must propose the recorded
        configuration, whose recorded result is then taken instead of evaluating it. Call before :meth:`run`.

        Raises:
            ReplayMismatch: (a ValueError, during :meth:`run`) when a step proposes another configuration than
                the one recorded: the history belongs to other settings.
        """
        if self.history:
            raise ValueError('resume() must be called before the search starts')
        self._replay = [dict(r) for r in history]

    # ------------------------------------------------------------------------------------------------ records
    def _evaluate(self, genes: Genes, origin: str, **fields) -> dict:
        """One step: the recorded result (replay), the cached one, or latency then (only if feasible) score."""
        if self._limit is not None and self.steps >= self._limit:
            raise _StepLimit
        key, step = genes_key(genes), self.steps
        replayed = step < len(self._replay)
        if replayed:
            record = self._replay[step]
            if genes_key(record['config']) != key:
                raise ReplayMismatch(f'the saved history does not match this search: step {step} proposes '
                                 f"{key} but the history has {genes_key(record['config'])}; resume with the "
                                 f'same settings and seed')
        elif key in self.cache:
            first = self.cache[key]
            record = dict(step=step, origin=origin, cached=True, **_result(first), config=dict(genes),
                          extra=first['extra'], **fields)
        else:
            latency = float(self.latency_fn(genes))
            budget = self.budgets.index(latency)
            metric, extra = self._score(genes) if budget is not None else (None, {})
            record = dict(step=step, origin=origin, cached=False, feasible=budget is not None, budget=budget,
                          latency=latency, metric=metric, config=dict(genes), extra=extra, **fields)
        self.cache.setdefault(key, record)
        new_best = self._append(record)
        if self.on_record is not None:
            self.on_record(record, replayed, new_best)
        return record

    def _append(self, record: dict) -> bool:
        """Add to the history and update the budget's best (a tie goes to the later record); True when the best
        configuration of that budget changed."""
        self.history.append(record)
        if not record['feasible']:
            return False
        b = record['budget']
        old = self.bests[b]
        if old is None or record['metric'] >= old['metric']:
            self.bests[b] = record
            return old is None or genes_key(old['config']) != genes_key(record['config'])
        return False

    def _score(self, genes: Genes) -> Tuple[float, Dict[str, float]]:
        out = self.score_fn(genes)
        if isinstance(out, tuple):
            metric, extra = out
            return float(metric), {k: float(v) for k, v in dict(extra).items()}
        return float(out), {}

    def _sample(self) -> Genes:
        return sample_genes(self.rng, self.depths, self.choices)

    # ------------------------------------------------------------------------------------------------ state
    def settings(self) -> dict:
        """Everything that must match for a saved history to be resumed."""
        out = dict(strategy=self.strategy, depths=list(self.depths), choices=list(self.choices),
                   budgets=list(self.budgets.edges), min_latency=self.budgets.min, seed=self.seed)
        if self.budgets.relative:  # the milliseconds above are resolved from these and the dense latency
            typed, low = self.budgets.texts()
            out['relative_budgets'] = dict(budgets=typed, min=low)
        return out

    def state_dict(self) -> dict:
        """A JSON-serialisable summary of the progress: settings, steps, bests (the records live in the history)."""
        return dict(settings=self.settings(), steps=self.steps, targets=list(self.targets),
                    bests=[None if b is None else b['step'] for b in self.bests])


def _result(record: Mapping) -> dict:
    return {k: record[k] for k in ('feasible', 'budget', 'latency', 'metric')}


def _by_metric(records: Sequence[dict]) -> List[dict]:
    """Records by metric, best first; a stable sort (the earlier record first among equals)."""
    return sorted(records, key=lambda r: r['metric'], reverse=True)


class EvolutionSearcher(SearchBase):
    """The original SparseViT search (``--strategy original``), generalised to several budgets.

    State: per budget a population (feasible evaluated candidates) and a parent list (empty at the start). Each step
    samples one candidate:

    * no parents yet: a uniform sample of the space (per stage, ``depth // 2`` ratios drawn from the choices and
      sorted);
    * otherwise, while the population holds fewer than half its size: **mutation** of a parent drawn at random: a
      fresh uniform sample, each gene taking its value at the same position with ``mutation_prob``, the stage
      sorted again (:func:`~sparsevit.schedule.mutate_genes_from_sample`);
    * otherwise: **crossover** of two distinct parents drawn at random, each gene from one of them with
      probability 1/2, then each stage sorted.

    A configuration evaluated before takes its cached result (the step still counts). An infeasible candidate
    (latency in no budget) gets metric -inf (None in the record) and enters no population; a feasible one, new or
    cached, is appended to the population of the budget its latency falls in. Before each step, a population that
    holds its full size becomes parents (its top ``parents`` by metric) and is emptied: the next generation is all
    new children (not elitist). The best of a budget is its highest metric, a tie going to the later candidate.

    With one budget this is exactly the original. With K budgets each keeps ``population // K`` candidates and
    ``parents // K`` parents, and the budgets take turns (round robin over the reachable ones, see
    :meth:`check_band`): a step applies the rules above to the population and parents of the budget whose turn it
    is, except that a crossover pairs one of its parents with a parent of any budget, so genes flow between
    budgets. The candidate is filed under the budget its latency falls in, whichever that is. Taking turns gives
    every reachable budget the same share of the steps whatever the scores; drawing every parent from all budgets
    alike (:class:`~.pooled.PooledSearcher`, which only proposes otherwise: within noise of this one on the
    objective of ``tools/benchmark_search.py``) lets the budgets that fill their population first take all the
    steps after that.

    Args:
        population: candidates per generation (in all budgets). Default: 100.
        parents: parents per generation (in all budgets). Default: 25.
        mutation_prob: probability that a gene of a mutated child takes the fresh sample's value. Default: 0.1.
        (others: see :class:`SearchBase`)

    Raises:
        ValueError: for a setting out of range (one message naming it).
    """

    strategy = 'original'

    def __init__(self, depths: Sequence[int], latency_fn: LatencyFn, score_fn: ScoreFn, budgets: Budgets,
                 population: int = 100, parents: int = 25, mutation_prob: float = 0.1,
                 choices: Sequence[float] = DEFAULT_CHOICES, seed: int = 0, on_record: Optional[RecordFn] = None):
        super().__init__(depths, latency_fn, score_fn, budgets, choices, seed, on_record)
        check_population(self.strategy, population, parents, len(budgets))
        check_mutation_prob(mutation_prob)
        self.population_size, self.num_parents = int(population), int(parents)
        self.mutation_prob = float(mutation_prob)
        k = len(budgets)
        self.share_population, self.share_parents = self.population_size // k, self.num_parents // k
        self.populations: List[List[dict]] = [[] for _ in range(k)]
        self.parents: List[List[dict]] = [[] for _ in range(k)]

    def _search(self, on_step) -> None:
        while self.steps < self._limit:  # checked before proposing: a later run() continues seamlessly
            self.step()
            if on_step is not None:
                on_step(self)

    def step(self) -> dict:
        """One step (see the class docstring): full populations become parents, a candidate is proposed
        (:meth:`propose`) and evaluated, and a feasible one joins the population of its budget; returns its
        record."""
        for b, pop in enumerate(self.populations):
            if len(pop) >= self.share_population:
                self.parents[b] = _by_metric(pop)[:self.share_parents]
                self.populations[b] = []
        record = self._evaluate(*self.propose())
        if record['feasible']:
            self.populations[record['budget']].append(record)
        return record

    def propose(self) -> Tuple[Genes, str]:
        """The candidate of this step and its origin, from the population and parents of the budget whose turn
        it is."""
        turn = self.targets[self.steps % len(self.targets)]
        own = self.parents[turn]
        if not own:
            return self._sample(), 'random'
        if len(self.populations[turn]) < self.share_population // 2:
            parent = self.rng.choice(own)['config']
            return mutate_genes_from_sample(parent, self.rng, self.depths, self.mutation_prob, self.choices), 'mutation'
        a = self.rng.choice(own)
        b = self.rng.choice([p for parents in self.parents for p in parents if p is not a])
        return crossover_genes(a['config'], b['config'], self.rng, self.depths), 'crossover'

    def settings(self) -> dict:
        return dict(super().settings(), population=self.population_size, parents=self.num_parents,
                    mutation_prob=self.mutation_prob)


class ElitistSearcher(SearchBase):
    """Today's elitist variant (``--strategy elitist``), one band only.

    1. Initial population: uniformly sampled configurations until ``population`` distinct ones are feasible.
    2. Each generation: the top ``parents`` of the population (by metric) survive; the remaining slots are filled
       with children, ``mutation_ratio`` of them by mutation (each gene resampled uniformly with ``mutation_prob``)
       and the rest by uniform crossover of two random parents; per-stage order is restored by sorting.

    A duplicate of an evaluated configuration is rejected and another child drawn (it costs nothing and is not a
    step); a candidate outside the band is recorded (a step) but never scored and never enters the population;
    retries are bounded, so a band that cannot be met stops with a clear error instead of looping forever, and a
    band whose neighbourhood is exhausted ends the search (:attr:`exhausted`). Records carry the generation
    (``iteration``: 0 for the initial population).

    Args:
        population: feasible candidates kept per generation. Default: 100.
        parents: top candidates that survive and breed. Default: 25.
        mutation_prob: probability of resampling each gene of a mutated child. Default: 0.1.
        mutation_ratio: fraction of the children made by mutation (the rest by crossover). Default: 0.5.
        max_retries: consecutive rejected draws (duplicate or infeasible) tolerated before giving up on a slot.
            Default: 1000.
        (others: see :class:`SearchBase`)
    """

    strategy = 'elitist'

    def __init__(self, depths: Sequence[int], latency_fn: LatencyFn, score_fn: ScoreFn, budgets: Budgets,
                 population: int = 100, parents: int = 25, mutation_prob: float = 0.1, mutation_ratio: float = 0.5,
                 choices: Sequence[float] = DEFAULT_CHOICES, seed: int = 0, max_retries: int = 1000,
                 on_record: Optional[RecordFn] = None):
        super().__init__(depths, latency_fn, score_fn, budgets, choices, seed, on_record)
        check_population(self.strategy, population, parents, len(budgets))
        check_mutation_prob(mutation_prob)
        if not 0.0 <= mutation_ratio <= 1.0:
            raise ValueError(f'mutation ratio must be in [0, 1], got {mutation_ratio}')
        check_max_retries(max_retries)
        self.population_size, self.num_parents = int(population), int(parents)
        self.mutation_prob, self.mutation_ratio = float(mutation_prob), float(mutation_ratio)
        self.max_retries = int(max_retries)
        self.iteration = -1  # -1: no population yet; 0: initial population done; i: i generations done
        self.population: List[dict] = []
        self.exhausted = False

    def _search(self, on_step) -> None:
        if self.iteration >= 0:
            raise ValueError('an elitist search stops inside a generation: continue it with resume() on a new '
                             'searcher')
        self._on_step = on_step
        if self.iteration < 0:
            self.init_population()
        while not self.exhausted:
            self.generation()

    def init_population(self) -> None:
        """Sample distinct configurations until ``population`` are feasible (bounded retries).

        Raises:
            InfeasibleBandError: when no feasible configuration is found within ``max_retries`` draws.
        """
        draws = 0
        while len(self.population) < self.population_size:
            record, tries = self._draw(self._sample, 'random')
            draws += tries
            if record is None:
                break
            self.population.append(record)
        if not self.population:
            raise InfeasibleBandError(
                f'no configuration with latency in the {self.budgets.describe()} found in {draws} '
                f'random draws ({self.steps} distinct configurations measured): widen the band')
        if len(self.population) < self.population_size:
            logger.warning('only %d of %d feasible configurations found for the initial population (band too '
                           'narrow); continuing with them', len(self.population), self.population_size)
        self.iteration = 0

    def generation(self) -> List[dict]:
        """Keep the top parents, add mutation and crossover children; returns the children.

        When one kind of child cannot be made within ``max_retries`` draws (its neighbourhood is exhausted), the
        remaining slots go to the other kind; when neither can, the generation ends with fewer children.
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
            logger.warning('generation %d: no new feasible configuration in %d draws; the band around the parents '
                           'is exhausted, stopping', self.iteration + 1, self.max_retries)
        self.population = parents + children
        self.iteration += 1
        return children

    @staticmethod
    def top(records: Sequence[dict], k: int) -> List[dict]:
        """The ``k`` best records by metric (earlier records win ties)."""
        return _by_metric(records)[:k]

    def _child(self, parents: Sequence[dict], origin: str) -> Genes:
        if origin == 'mutation':
            parent = self.rng.choice(parents)['config']
            return mutate_genes(parent, self.rng, self.depths, self.mutation_prob, self.choices)
        a, b = self.rng.choice(parents)['config'], self.rng.choice(parents)['config']
        return crossover_genes(a, b, self.rng, self.depths)

    def _draw(self, propose: Callable[[], Genes], origin: str) -> Tuple[Optional[dict], int]:
        """Propose until a new feasible configuration is found or ``max_retries`` draws fail in a row; a duplicate
        is rejected before any evaluation (not a step)."""
        for tries in range(1, self.max_retries + 1):
            genes = propose()
            if genes_key(genes) in self.cache:
                continue
            record = self._evaluate(genes, origin, iteration=self.iteration + 1)
            if self._on_step is not None:
                self._on_step(self)
            if record['feasible']:
                return record, tries
        return None, self.max_retries

    def settings(self) -> dict:
        return dict(super().settings(), population=self.population_size, parents=self.num_parents,
                    mutation_prob=self.mutation_prob, mutation_ratio=self.mutation_ratio,
                    max_retries=self.max_retries)


def make_searcher(strategy: str, depths: Sequence[int], latency_fn: LatencyFn, score_fn: ScoreFn,
                  budgets: Budgets, population: int = 100, parents: int = 25, mutation_prob: float = 0.1,
                  choices: Sequence[float] = DEFAULT_CHOICES, seed: int = 0, max_retries: int = 1000,
                  on_record: Optional[RecordFn] = None) -> SearchBase:
    """The searcher of ``strategy`` (``'original'`` or ``'elitist'``)."""
    common = dict(population=population, parents=parents, mutation_prob=mutation_prob, choices=choices, seed=seed,
                  on_record=on_record)
    if strategy == 'original':
        return EvolutionSearcher(depths, latency_fn, score_fn, budgets, **common)
    if strategy == 'elitist':
        return ElitistSearcher(depths, latency_fn, score_fn, budgets, max_retries=max_retries, **common)
    raise ValueError(f'unknown search strategy {strategy!r}; expected one of {STRATEGIES}')


#: The message of several budgets given to the elitist strategy.
ONE_BAND = '--budgets needs --strategy original (the elitist strategy searches one band)'


def check_population(strategy: str, population: int, parents: int, num_budgets: int = 1) -> None:
    """Raise ValueError naming the first bad ``--population`` / ``--parents`` of ``strategy`` (the flags of
    ``tools/search.py``, which prints the message) for ``num_budgets`` budgets.

    The original strategy gives each budget an equal share of both, and each share needs 2 parents (crossover
    needs two) and room for them; the elitist strategy searches one band, keeping 1 to ``population - 1``
    parents.
    """
    if strategy == 'elitist' and num_budgets != 1:
        raise ValueError(ONE_BAND)
    if population < 2:
        raise ValueError(f'--population must be >= 2, got {population}')
    if strategy == 'elitist':
        if not 1 <= parents < population:
            raise ValueError(f'--parents must be in [1, --population - 1] = [1, {population - 1}], got {parents}')
        return
    k = num_budgets
    if parents // k < 2 or population // k < parents // k:
        raise ValueError(_shares_message(population, parents, k))


def _shares_message(population: int, parents: int, k: int) -> str:
    """What is wrong with the shares of ``k`` budgets: for one budget (a band) the allowed range of ``--parents``."""
    if k == 1:
        return (f'--parents must be in [2, --population] = [2, {population}] (crossover needs two parents), got '
                f'{parents}')
    if parents // k < 2:
        return f'--parents must give each of the {k} budgets at least 2: >= {2 * k}, got {parents}'
    return (f'--population must give each of the {k} budgets at least its {parents // k} parents: '
            f'>= {k * (parents // k)}, got {population}')


def check_mutation_prob(mutation_prob: float) -> None:
    if not 0.0 <= mutation_prob <= 1.0:
        raise ValueError(f'--mutation-prob must be in [0, 1], got {mutation_prob:g}')


def check_max_retries(max_retries: int) -> None:
    if max_retries < 1:
        raise ValueError(f'--max-retries must be >= 1, got {max_retries}')
