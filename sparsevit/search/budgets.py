"""Latency budgets of a search: one band ``[min, max]`` (the original) or several ascending budgets.

With budgets ``b_0 < b_1 < ... < b_{K-1}`` (ms) and a lower end ``min``, budget *i* accepts the latencies in
``(b_{i-1}, b_i]``, the first one ``[min, b_0]``. A single band is the case ``K = 1``: feasible means
``min <= latency <= max``, as in the original.

A limit is typed either in milliseconds (a plain number: the original's meaning, ``--max 42``) or as a fraction of
the dense configuration's latency with a trailing ``x`` (``--max 0.85x``). A relative limit is resolved against the
dense latency *as the search itself measures or predicts it* (the same table or protocol as every candidate), so a
uniform change of machine speed between the process that chose the band and the search cannot move the band off
the search space. :class:`Limit` parses one limit; :meth:`Budgets.from_limits` checks a set of them (one message
per mistake, naming the flag) and keeps relative ones unresolved until :meth:`Budgets.resolve`.
"""
import bisect
import dataclasses
import math
import re
from typing import List, Optional, Sequence, Tuple

#: A relative limit: a number followed by ``x`` (a fraction of the dense latency).
_RELATIVE = re.compile(r'^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*[xX]\s*$')


@dataclasses.dataclass(frozen=True)
class Limit:
    """One latency limit as typed: ``42`` (ms) or ``0.85x`` (a fraction of the dense latency).

    Attributes:
        value: milliseconds, or the fraction for a relative limit.
        relative: whether ``value`` is a fraction of the dense latency.
        text: the limit as typed (names the output files, as the original's ``search_max42_min37.txt``).
    """

    value: float
    relative: bool
    text: str

    @classmethod
    def parse(cls, text) -> 'Limit':
        """``'42'`` -> 42 ms, ``'0.85x'`` -> 0.85 of dense; a number is taken as milliseconds.

        Raises:
            ValueError: for anything else, a fraction outside (0, 1] (``0x``, ``1.2x``) or a non-finite number.
        """
        if isinstance(text, Limit):
            return text
        if not isinstance(text, str):
            value = float(text)
            return cls(value, False, f'{value:g}')
        stripped = text.strip()
        match = _RELATIVE.match(stripped)
        if match:
            fraction = float(match.group(1))
            if not 0.0 < fraction <= 1.0:
                raise ValueError(f"bad latency {text!r}: a fraction of the dense latency must be in (0, 1], e.g. "
                                 f"0.85x")
            return cls(fraction, True, stripped.lower())
        try:
            value = float(stripped)
        except ValueError:
            raise ValueError(f'bad latency {text!r}: give milliseconds (e.g. 42) or a fraction of the dense '
                             f'latency in (0, 1] with a trailing x (e.g. 0.85x)') from None
        if not math.isfinite(value):
            raise ValueError(f'bad latency {text!r}: milliseconds must be a finite number')
        return cls(value, False, stripped)

    def ms(self, dense_ms: Optional[float]) -> float:
        """The limit in milliseconds (a relative one needs the dense latency)."""
        if not self.relative:
            return self.value
        if dense_ms is None:
            raise ValueError(f'the relative limit {self.text} needs the dense latency to be resolved')
        return self.value * float(dense_ms)

    def __str__(self) -> str:
        return self.text


def ms_limits(values: Sequence[float]) -> List[Limit]:
    """Plain millisecond limits (e.g. computed budgets)."""
    return [Limit.parse(float(v)) for v in values]


class Budgets:
    """Ascending latency budgets (ms) and the lower end of the first.

    Args:
        edges: the budgets, strictly ascending and positive (one value: the band's upper end).
        min_latency: lower end of the first budget (included). Default: 0.

    A relative set (:meth:`from_limits` with limits typed as fractions) has ``relative`` True and ``dense_ms``
    None until :meth:`resolve` gives it the dense latency; ``fractions`` and ``min_fraction`` keep the fractions
    (``min_fraction`` is 0 for ``--min 0``), and labels show both forms.

    Raises:
        ValueError: naming the first bad value (empty, not positive, not ascending, min above the first budget).
    """

    def __init__(self, edges: Sequence[float], min_latency: float = 0.0):
        self.edges = tuple(float(e) for e in edges)
        self.min = float(min_latency)
        self.limits: Optional[Tuple[Tuple[Limit, ...], Limit]] = None
        self.dense_ms: Optional[float] = None
        if not self.edges:
            raise ValueError('at least one latency budget is needed')
        bad = [e for e in self.edges if not e > 0]
        if bad:
            raise ValueError(f'latency budgets must be positive (ms), got {bad[0]:g}')
        for a, b in zip(self.edges, self.edges[1:]):
            if not a < b:
                raise ValueError(f'latency budgets must be strictly ascending, got {a:g} before {b:g}')
        if self.min < 0:
            raise ValueError(f'min latency must be >= 0 ms, got {self.min:g}')
        if self.min > self.edges[0]:
            raise ValueError(f'min latency {self.min:g} ms is above the first budget {self.edges[0]:g} ms; '
                             f'need min <= max')

    @classmethod
    def from_limits(cls, edges: Sequence[Limit], min_limit: Limit, band: bool = False) -> 'Budgets':
        """Budgets from typed limits (``band``: one band, named ``--max``; else ``--budgets``).

        All limits are milliseconds, or all fractions of the dense latency (``--min 0`` goes with either). A
        relative set keeps its fractions as edges until :meth:`resolve`.

        Raises:
            ValueError: one line naming the flag, the bad value and what is allowed.
        """
        edges, low = [Limit.parse(e) for e in edges], Limit.parse(min_limit)
        flag = '--max' if band else '--budgets'
        relative = {e.relative for e in edges} | ({low.relative} if low.value != 0 or low.relative else set())
        if len(relative) > 1:
            kind = {True: 'fractions of the dense latency (x)', False: 'milliseconds'}
            raise ValueError(f"{flag} and --min mix {kind[True]} with {kind[False]} "
                             f"({' '.join(e.text for e in edges)}, --min {low.text}): give all in one form")
        if low.value < 0:
            raise ValueError(f'--min must be >= 0 ms, got {low.text}')
        if band:
            if not edges[0].value > 0:
                raise ValueError(f'--max must be a positive latency in ms, got {edges[0].text}')
            if not low.value <= edges[0].value:
                raise ValueError(f'--min {low.text} is above --max {edges[0].text}; the band needs min <= max')
        else:
            bad = [e for e in edges if not e.value > 0]
            if bad:
                raise ValueError(f'--budgets must be positive latencies in ms, got {bad[0].text}')
            for a, b in zip(edges, edges[1:]):
                if not a.value < b.value:
                    raise ValueError(f'--budgets must be strictly ascending, got {a.text} before {b.text}')
            if not low.value < edges[0].value:
                raise ValueError(f'--min {low.text} is not below the first budget {edges[0].text}; the first '
                                 f'budget accepts [--min, {edges[0].text}]' + ('' if edges[0].relative else ' ms'))
        out = cls([e.value for e in edges], low.value)
        out.limits = (tuple(edges), low)
        return out

    @property
    def relative(self) -> bool:
        """Whether the limits were typed as fractions of the dense latency."""
        return self.limits is not None and any(e.relative for e in self.limits[0])

    @property
    def resolved(self) -> bool:
        """Whether the edges are milliseconds (always, unless relative and not yet resolved)."""
        return not self.relative or self.dense_ms is not None

    def resolve(self, dense_ms: float) -> 'Budgets':
        """The budgets in milliseconds: fractions times ``dense_ms`` (the dense latency as the search sees it);
        a set typed in milliseconds is returned as it is."""
        if not self.relative:
            return self
        if self.dense_ms is not None:
            raise ValueError('these budgets are already resolved')
        if not dense_ms > 0:
            raise ValueError(f'the dense latency must be positive to resolve relative budgets, got {dense_ms}')
        edges, low = self.limits
        out = Budgets([e.ms(dense_ms) for e in edges], low.ms(dense_ms) if low.relative else low.value)
        out.limits, out.dense_ms = self.limits, float(dense_ms)
        return out

    @property
    def fractions(self) -> Optional[Tuple[float, ...]]:
        """The budgets as fractions of the dense latency (typed, or ms / dense once resolved); None if unknown."""
        if self.relative:
            return tuple(e.value for e in self.limits[0])
        return None if self.dense_ms is None else tuple(e / self.dense_ms for e in self.edges)

    @property
    def min_fraction(self) -> Optional[float]:
        if self.relative:
            return self.limits[1].value
        return None if self.dense_ms is None else self.min / self.dense_ms

    def texts(self) -> Tuple[List[str], str]:
        """The budgets and the lower end as typed (formatted milliseconds for budgets built from numbers)."""
        if self.limits is not None:
            return [e.text for e in self.limits[0]], self.limits[1].text
        return [f'{e:g}' for e in self.edges], f'{self.min:g}'

    def __len__(self) -> int:
        return len(self.edges)

    @property
    def max(self) -> float:
        """Upper end of the last budget."""
        return self.edges[-1]

    def index(self, latency: float) -> Optional[int]:
        """The budget ``latency`` falls in, or None (infeasible: below ``min`` or above the last budget)."""
        self._need_ms()
        i = bisect.bisect_left(self.edges, latency)  # first budget with edge >= latency
        if i == len(self.edges) or latency < self.min:
            return None
        return i

    def band(self, i: int) -> Tuple[float, float]:
        """``(low, high)`` of budget ``i`` (low included only for the first)."""
        return (self.min if i == 0 else self.edges[i - 1]), self.edges[i]

    def label(self, i: int) -> str:
        """E.g. ``'[0, 33] ms'`` for the first budget, ``'(33, 36] ms'`` for the others; a relative budget
        ``'(0.72x, 0.79x] = (36.1, 39.6] ms'``."""
        low, high = self.band(i)
        opening = '[' if i == 0 else '('
        if not self.relative:
            return f'{opening}{low:g}, {high:g}] ms'
        edges, low_limit = self.limits
        low_text = low_limit.text if i == 0 else edges[i - 1].text
        if not self.resolved:
            return f'{opening}{low_text}, {edges[i].text}] of dense'
        return f'{opening}{low_text}, {edges[i].text}] = {opening}{low:.4g}, {high:.4g}] ms'

    def describe(self) -> str:
        """The whole set on one line, e.g. ``band [37, 42] ms`` or ``band [0.6x, 0.85x] of dense 78.86 ms =
        [47.32, 67.03] ms`` or ``budgets [0, 33] ms, (33, 36] ms``."""
        if len(self) == 1 and self.relative and self.resolved:
            low_text, high_text = self.limits[1].text, self.limits[0][0].text
            return (f'band [{low_text}, {high_text}] of dense {self.dense_ms:.2f} ms = '
                    f'[{self.min:.4g}, {self.max:.4g}] ms')
        if len(self) == 1:
            return 'band ' + self.label(0)
        where = 'budgets ' + ', '.join(self.label(i) for i in range(len(self)))
        return where + (f' (dense {self.dense_ms:.2f} ms)' if self.relative and self.resolved else '')

    def to_dict(self) -> dict:
        """What the log, the JSON outputs and the configs record: typed limits, fractions and milliseconds."""
        typed, low_text = self.texts()
        fractions, low_fraction = self.fractions, self.min_fraction
        return dict(relative=self.relative, dense_ms=self.dense_ms, min=dict(
            text=low_text, ms=self.min if self.resolved else None, fraction=low_fraction), budgets=[
            dict(text=t, ms=e if self.resolved else None, fraction=None if fractions is None else fractions[i])
            for i, (t, e) in enumerate(zip(typed, self.edges))])

    def reachable(self, dense_ms: float, sparsest_ms: float) -> List[bool]:
        """Per budget: whether its band meets ``[sparsest, dense]``, the range of the space's latencies."""
        self._need_ms()
        out = []
        for i in range(len(self)):
            low, high = self.band(i)
            above_low = low <= dense_ms if i == 0 else low < dense_ms
            out.append(above_low and high >= sparsest_ms)
        return out

    def _need_ms(self) -> None:
        if not self.resolved:
            raise ValueError('relative budgets must be resolved against the dense latency first (resolve())')


def unreachable_message(budgets: Budgets, dense_ms: float, sparsest_ms: float) -> str:
    """The one line of budgets that no configuration can meet (:meth:`Budgets.reachable` all False): one band says
    which end to move and where to; several budgets give the range of the space's latencies."""
    if len(budgets) == 1:
        band = budgets.describe()[len('band '):]
        if budgets.min > dense_ms:
            return (f'latency band {band} is above the dense model ({dense_ms:.2f} ms), the slowest configuration: '
                    f'lower --min below {dense_ms:.2f}')
        fix = f'{sparsest_ms / dense_ms:.3g}x' if budgets.relative else f'{sparsest_ms:.2f}'
        return (f'latency band {band} is below the sparsest configuration ({sparsest_ms:.2f} ms), the fastest one: '
                f'raise --max above {fix}')
    typed, low = budgets.texts()
    unit = '' if budgets.relative else ' ms'
    return (f"no budget is reachable: budgets {' '.join(typed)}{unit} (from --min {low}) lie outside "
            f'[{sparsest_ms:.2f}, {dense_ms:.2f}] ms, the sparsest and dense latencies'
            + (f' ([{sparsest_ms / dense_ms:.3g}x, 1x])' if budgets.relative else ''))


def infeasible_message(budgets: Budgets, steps: int, dense_ms: float, sparsest_ms: float, below: int, above: int,
                       source: str) -> str:
    """The one line of a search that found nothing feasible: the band, the dense and sparsest latencies as the
    search saw them (``source``: ``table`` or ``measured``), how many steps fell below / above it, and, for a band
    in milliseconds, the same band as fractions of the dense latency (which follow the machine's speed)."""
    text = (f'the search found no configuration inside the latency {budgets.describe()} in {steps} steps: dense '
            f'{dense_ms:.2f} ms, sparsest {sparsest_ms:.2f} ms ({source}); {below} step(s) below the band, {above} '
            f'above')
    if not budgets.relative and dense_ms > 0:
        def frac(ms: float) -> str:
            return f'{ms / dense_ms:.3g}x'
        edges = ' '.join(frac(e) for e in budgets.edges)
        flag = f'--max {edges}' if len(budgets) == 1 else f'--budgets {edges}'
        text += f'; as fractions of the dense latency: {flag} --min {frac(budgets.min)}'
        if budgets.max > dense_ms:
            text += ' (above 1x is slower than dense)'
    return text + '; widen the band or run more --iters'
