"""The settings of a search (those of ``tools/search.py``, one field per flag) and their one check.

``tools/search.py`` builds a :class:`SearchSettings` from its parsed arguments, :meth:`SearchSettings.check` raises
the first bad one in one line naming its flag (the tool prints it), and :func:`~.runner.run_search` takes it. The
evolution rules are the searchers' own (:func:`~.evolution.check_population` ...), the latency limits those of
:meth:`~.budgets.Budgets.from_limits`: nothing is checked twice.
"""
import dataclasses
import os.path as osp
from typing import Optional, Sequence, Tuple, Union

from .budgets import Budgets, Limit
from .evolution import ONE_BAND, check_max_retries, check_mutation_prob, check_population
from .outputs import band_tag, budgets_tag


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """Everything a search is run with; see ``tools/search.py --help`` for each field (named as its flag).

    ``max`` (one band ``[min, max]``) or ``budgets`` (ascending budgets, the first from ``min``) is given, as
    :class:`~.budgets.Limit` or text (``'42'``, ``'0.85x'``). ``num_warmup`` / ``num_repeats`` None: the device's
    default protocol (resolved by :func:`~.timing.latency_protocol`).
    """

    config: str
    checkpoint: str
    max: Optional[Limit] = None
    min: Limit = Limit.parse('0')
    budgets: Optional[Sequence[Limit]] = None
    work_dir: str = 'work_dirs/'
    strategy: str = 'original'
    iters: int = 10000
    population: int = 100
    parents: int = 25
    mutation_prob: float = 0.1
    seed: int = 0
    num_images: Optional[int] = None
    img_size: Union[int, Tuple[int, int]] = 672  # a square side, or (H, W)
    batch_size: int = 4
    num_warmup: Optional[int] = None
    num_repeats: Optional[int] = None
    device: str = 'auto'
    latency_table: Optional[str] = None
    table_rounds: Optional[int] = None
    calibration_configs: int = 6
    check_configs: int = 5
    max_retries: int = 1000
    eval: Optional[Sequence[str]] = None
    metric: Optional[str] = None
    resume: bool = False
    no_progress: bool = False
    cfg_options: Optional[dict] = None

    def img_sides(self) -> Tuple[int, ...]:
        """``img_size`` as a tuple (one side, or H and W)."""
        return (self.img_size, ) if isinstance(self.img_size, int) else tuple(self.img_size)

    def latency_budgets(self) -> Budgets:
        """``--budgets`` (from ``--min``), or the band ``[--min, --max]``: one budget. Relative limits stay
        unresolved until the searcher's :meth:`~.evolution.SearchBase.check_band`.

        Raises:
            ValueError: one line naming the flag (:meth:`~.budgets.Budgets.from_limits`).
        """
        if self.budgets is not None:
            return Budgets.from_limits(self.budgets, self.min)
        return Budgets.from_limits([self.max], self.min, band=True)

    def metrics(self, task) -> list:
        """The evaluated metrics for ``task`` (:mod:`sparsevit.tasks`), the scored one first: ``--metric``, then the
        other ``--eval`` ones; without either, the task's search metric (``bbox`` for a detector, ``mIoU`` for a
        segmentor).

        Raises:
            TaskError (a ValueError): one line, for a metric of the other task.
        """
        chosen = list(self.eval or ())
        if self.metric is not None:
            task.check_metrics([self.metric], '--metric', search=True)
            chosen = [self.metric] + [m for m in chosen if m != self.metric]
        task.check_metrics(chosen, search=True)
        return chosen or [task.search_metric]

    def tag(self) -> str:
        """Names the output files, with the limits as typed: ``max42_min37``, ``budgets33_36_39_42`` (see
        :mod:`.outputs`)."""
        low = Limit.parse(self.min)
        if self.budgets is not None:
            return budgets_tag(self.budgets, low if low.value > 0 else None)
        return band_tag(self.max, low)

    def check(self) -> None:
        """Raise ValueError naming the first bad setting and what is allowed (the files must exist, and a requested
        ``cuda`` device)."""
        if (self.max is None) == (self.budgets is None):
            raise ValueError('give --max (one latency band [--min, --max]) or --budgets (several), not '
                             + ('both' if self.budgets else 'neither'))
        budgets = self.latency_budgets()
        if self.budgets is not None and self.strategy != 'original':  # --budgets, even one, is the original's
            raise ValueError(ONE_BAND)
        check_population(self.strategy, self.population, self.parents, len(budgets))
        _require(self.iters >= 0, f'--iters must be >= 0, got {self.iters}')
        check_mutation_prob(self.mutation_prob)
        for ok, message in [
            (self.num_images is None or self.num_images >= 1, f'--num-images must be >= 1, got {self.num_images}'),
            (min(self.img_sides()) > 0, f'--img_size must be positive, got {self.img_size}'),
            (self.batch_size > 0, f'--batch-size must be positive, got {self.batch_size}'),
            (self.num_warmup is None or self.num_warmup >= 0, f'--num-warmup must be >= 0, got {self.num_warmup}'),
            (self.num_repeats is None or self.num_repeats >= 1,
             f'--num-repeats must be >= 1, got {self.num_repeats}'),
            (self.table_rounds is None or self.table_rounds >= 1,
             f'--table-rounds must be >= 1, got {self.table_rounds}'),
            (self.calibration_configs >= 0, f'--calibration-configs must be >= 0, got {self.calibration_configs}'),
            (self.check_configs >= 0, f'--check-configs must be >= 0, got {self.check_configs}')]:
            _require(ok, message)
        check_max_retries(self.max_retries)
        _require(osp.isfile(self.config), f'config file not found: {self.config}')
        _require(osp.isfile(self.checkpoint), f'checkpoint not found: {self.checkpoint}')
        if self.eval or self.metric:  # a metric of the other task fails before anything is built
            from ..tasks import task_of
            from ..utils.config import load_config
            self.metrics(task_of(load_config(self.config, self.cfg_options)))
        from ..utils.latency import resolve_device  # torch: imported when checked
        resolve_device(self.device)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
