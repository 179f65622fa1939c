"""Latency budgets of a search: one band ``[min, max]`` (the original) or several ascending budgets.

With budgets ``b_0 < b_1 < ... < b_{K-1}`` (ms) and a lower end ``min``, budget *i* accepts the latencies in
``(b_{i-1}, b_i]``, the first one ``[min, b_0]``. A single band is the case ``K = 1``: feasible means
``min <= latency <= max``, as in the original.
"""
import bisect
from typing import List, Optional, Sequence, Tuple


class Budgets:
    """Ascending latency budgets (ms) and the lower end of the first.

    Args:
        edges: the budgets, strictly ascending and positive (one value: the band's upper end).
        min_latency: lower end of the first budget (included). Default: 0.

    Raises:
        ValueError: naming the first bad value (empty, not positive, not ascending, min above the first budget).
    """

    def __init__(self, edges: Sequence[float], min_latency: float = 0.0):
        self.edges = tuple(float(e) for e in edges)
        self.min = float(min_latency)
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

    def __len__(self) -> int:
        return len(self.edges)

    @property
    def max(self) -> float:
        """Upper end of the last budget."""
        return self.edges[-1]

    def index(self, latency: float) -> Optional[int]:
        """The budget ``latency`` falls in, or None (infeasible: below ``min`` or above the last budget)."""
        i = bisect.bisect_left(self.edges, latency)  # first budget with edge >= latency
        if i == len(self.edges) or latency < self.min:
            return None
        return i

    def band(self, i: int) -> Tuple[float, float]:
        """``(low, high)`` of budget ``i`` (low included only for the first)."""
        return (self.min if i == 0 else self.edges[i - 1]), self.edges[i]

    def label(self, i: int) -> str:
        """E.g. ``'[0, 33] ms'`` for the first budget, ``'(33, 36] ms'`` for the others."""
        low, high = self.band(i)
        return f"{'[' if i == 0 else '('}{low:g}, {high:g}] ms"

    def reachable(self, dense_ms: float, sparsest_ms: float) -> List[bool]:
        """Per budget: whether its band meets ``[sparsest, dense]``, the range of the space's latencies."""
        out = []
        for i in range(len(self)):
            low, high = self.band(i)
            above_low = low <= dense_ms if i == 0 else low < dense_ms
            out.append(above_low and high >= sparsest_ms)
        return out
