"""The runs of ``make experiments`` in order, and what each costs on a quiet 2-core CPU (printed before anything
runs; the pipeline rescales the time left by the measured/estimated ratio of the runs done)."""
from typing import List, Optional, Sequence, Tuple

from .settings import SIZE_STEP, Settings
from .width import width_name

#: The uniform ratios timed for the uniform baseline (the search space's choices above 0).
UNIFORM_RATIOS = tuple(round(0.1 * i, 1) for i in range(1, 9))
#: The methods of a budget's test runs (besides its resolution baseline), in order.
BUDGET_METHODS = ('sparsevit', 'random', 'uniform', 'nosaa')
#: Uniform ratios of the kept-window analysis (on the SAA and on the dense weights).
WINDOW_RATIOS = (0.5, 0.7)

#: The time estimate, in seconds at 448 px on a 2-core CPU: per training image (batch 4), the part of it that does
#: not scale with the pixel count (heads, losses, data), per test image, per backbone forward (batch 4), per process
#: start (imports, model and data set-up), an SAA iteration relative to a dense one, the share of a training
#: iteration that scales with the backbone's width squared, per image and selection pass of the kept-window
#: analysis, per evaluation bootstrapped in the report (at 300 val images), and the two-thread speed-ups of
#: training and testing (for ``jobs``: :func:`parallel_share`). Calibrated on the full run of 2026-12-02 (41 runs
#: one at a time, 78 min, the machine otherwise nearly idle): dense training 426 s for 6 epochs at 448 and the
#: finetunes at 352 / 320 / 288 px 104 / 78 / 82 s for 2 epochs (per image 0.46 s at 448, 0.18 of it fixed); SAA
#: 152 s for 2 epochs (as slow as dense: sampled sparse forwards save nothing in training at this size); widths
#: x0.75 / x0.5 516 / 374 s for 8 epochs (width share 0.3); 25 tests 67 s each on 250 images; the latency steps
#: 1.4-1.6x the earlier forward time; the kept-window analyses 66 / 84 s. The two-thread speed-ups (1.5 for
#: training, 1.2 for testing) are one-thread vs two-thread times per iteration of 2026-12-01; running two one-thread
#: processes at once is modelled as interference-free. Measured with ``jobs=2`` on 2026-12-02: 47.9 min where this
#: model says 61 (one-thread processes ran faster than two-thread time / speed-up; not recalibrated).
CALIBRATION = dict(train_img_s=0.46, train_fixed=0.18, test_img_s=0.23, forward_s=0.3, start_s=10.0, saa=1.0,
                   width_share=0.3, window_pass_s=0.2, bootstrap_eval_s=2.0, train_speedup=1.5, test_speedup=1.2)
#: The runs that go ``jobs`` at a time (:meth:`~.steps.Runner.parallel`): the trainings after the dense one, and
#: the tests with the kept-window analyses. With ``jobs`` > 1 on 2 cores each counts ``speed-up / jobs`` of its
#: two-thread time (one thread each, no two-thread speed-up lost to synchronisation).
PARALLEL_TRAININGS = ('train_saa', 'finetune_full', 'finetune_res', 'train_width')
PARALLEL_TESTS = ('test_', 'windows_')
TABLE_FORWARDS = 60  # the search's latency table, in full forwards: 192 stage entries x (warm-up + timed) / ~16


def size_ladder(full: int, step: int = SIZE_STEP, min_frac: float = 0.5) -> List[int]:
    """Reduced input sizes to time: multiples of ``step`` below ``full`` down to ``min_frac * full``, descending."""
    return [s for s in range(full - step, int(min_frac * full) - 1, -step) if s > 0]


def nominal_sizes(st: Settings) -> List[int]:
    """The sizes the picker is expected to choose (for the estimate before anything is measured)."""
    return [st.img_size - SIZE_STEP * (i + 2) for i in range(st.budgets)]


def budget_tests(st: Settings, budget: int) -> List[str]:
    """The test runs of budget ``budget``'s SparseViT configuration: searched, random windows (one per selection
    seed), uniform, no SAA (not its resolution baseline)."""
    b = f'_b{budget + 1}'
    return ([f'test_sparsevit{b}'] + [f'test_random{b}_s{s}' for s in range(st.random_seeds)]
            + [f'test_uniform{b}', f'test_nosaa{b}'])


def width_runs(st: Settings) -> List[Tuple[str, str]]:
    """``(train run, test run)`` of each width baseline."""
    return [(f'train_{width_name(w)}', f'test_{width_name(w)}') for w in st.width_factors]


def planned_runs(st: Settings, sizes: Optional[Sequence[int]] = None) -> List[Tuple[str, float]]:
    """Every run of the pipeline in order, with its estimated seconds (from :data:`CALIBRATION`)."""
    c, s = CALIBRATION, st.img_size
    sizes = list(sizes) if sizes is not None else nominal_sizes(st)
    k, widths = len(sizes), st.width_factors

    def px(size: int) -> float:
        return (size / 448) ** 2

    def train(epochs: int, size: int, factor: float = 1.0) -> float:
        per_img = c['train_img_s'] * (c['train_fixed'] + (1 - c['train_fixed']) * px(size)) * factor
        return c['start_s'] + epochs * st.num_train * per_img

    def test() -> float:
        return c['start_s'] + st.num_val * c['test_img_s']

    def latency(costs: Sequence[float], rounds: int) -> float:
        """``costs``: each entry's forward time relative to the dense one at 448."""
        per = rounds * (st.latency_warmup + st.latency_repeats) * c['forward_s'] * st.latency_batch / 4
        return c['start_s'] + per * sum(costs)

    dense = [px(s)]
    budgets = [px(r) for r in sizes]  # a budget's candidates run about as fast as its size's dense model
    final = (dense + budgets + [px(s) * w ** 2 for w in widths] + 2 * st.match_candidates * budgets
             + [px(s) * (1 - 0.6 * u) for u in UNIFORM_RATIOS])  # the candidates with L2 and random windows
    search = (c['start_s'] + TABLE_FORWARDS * c['forward_s'] * px(s) * st.latency_batch / 4
              + st.search_steps * (st.num_search * c['test_img_s'] * 1.2 / st.np + 1.0))  # one thread per process
    window = c['start_s'] + st.window_images * len(WINDOW_RATIOS) * (1 + st.random_seeds) * c['window_pass_s']
    runs = [('data', 0.07 * (st.num_train + st.num_val + st.num_search) * px(s)),
            ('train_dense', train(st.dense_epochs, s)),
            ('latency_plan', latency(dense + [px(r) for r in size_ladder(s)] + [0.45], st.latency_rounds)),
            ('train_saa', train(st.adapt_epochs, s, c['saa'])),
            ('finetune_full', train(st.adapt_epochs, s))]
    runs += [(f'finetune_res{i + 1}', train(st.adapt_epochs, r)) for i, r in enumerate(sizes)]
    runs += [(name, train(st.dense_epochs + st.adapt_epochs, s, 1 - c['width_share'] * (1 - w ** 2)))
             for (name, _), w in zip(width_runs(st), widths)]
    runs += [('latency_budgets', latency(dense + budgets, st.latency_rounds)), ('search', search),
             ('latency', latency(final, st.latency_rounds))]
    tests = ['test_dense'] + [f'test_res{i + 1}' for i in range(k)] + ['test_saa_dense']
    tests += [name for i in range(k) for name in budget_tests(st, i)] + [t for _, t in width_runs(st)]
    runs += [(name, test()) for name in tests]
    runs += [('windows_saa', window), ('windows_dense', window)]
    runs += [('report', 5.0 + len(tests) * c['bootstrap_eval_s'] * st.num_val / 300)]
    return [(name, seconds * parallel_share(st, name)) for name, seconds in runs]


def parallel_share(st: Settings, name: str) -> float:
    """The share of its own (two-thread) time a run adds to the wall time when ``st.jobs`` run at a time."""
    if st.jobs <= 1:
        return 1.0
    c = CALIBRATION
    if name.startswith(PARALLEL_TRAININGS):
        return c['train_speedup'] / st.jobs
    if name.startswith(PARALLEL_TESTS):
        return c['test_speedup'] / st.jobs
    return 1.0


def minutes(seconds: float) -> str:
    return f'{seconds / 60:.0f} min' if seconds >= 90 else f'{seconds:.0f} s'
