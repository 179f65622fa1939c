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

#: The time estimate, in seconds at 448 px on a quiet 2-core CPU: per training image (batch 4), the part of it
#: that does not scale with the pixel count (heads, losses, data), per test image (flat: dominated by the RoI
#: heads and mask pasting), per backbone forward (batch 4), per process start (imports, model and data set-up),
#: an SAA iteration relative to a dense one (sampled sparse forwards skip windows), the share of a training
#: iteration that scales with the backbone's width (as its MACs: width squared), per image and selection pass of
#: the kept-window analysis, and per evaluation bootstrapped in the report (at 300 val images). Calibrated from
#: one-thread CPU times per iteration (robust on a shared machine: 2.03 s per training batch at 448, 1.64 at 384,
#: 1.32 at 320, 1.42 for SAA, 0.75 for the demo's 224; 0.3 s per test image at any size; widths 0.75 and 0.5 at
#: about 0.7 and 0.55 of full width; 0.8 s per image for the analysis's 2 ratios x 4 selections; 1.7 s to evaluate
#: and resample 300 images) divided by a 2-thread speed-up of 1.5 (training) and 1.2 (testing); the same model
#: gives the demo's measured 15 minutes. The width share is measured, not derived: the width x0.75 and x0.5
#: trainings of 8 epochs took 432 and 382 s on 2026-12-01 (the full-width finetunes of that run matched this model
#: to 5-20 %), nearly a full-width training each: at this size the heads, losses and data loading dominate, not the
#: backbone's MACs (0.6, the MACs-based share used before, under-counted them by 100 and 150 s).
CALIBRATION = dict(train_img_s=0.34, train_fixed=0.3, test_img_s=0.25, forward_s=0.2, start_s=10.0, saa=0.7,
                   width_share=0.1, window_pass_s=0.1, bootstrap_eval_s=2.0)
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
    return runs + [('report', 5.0 + len(tests) * c['bootstrap_eval_s'] * st.num_val / 300)]


def minutes(seconds: float) -> str:
    return f'{seconds / 60:.0f} min' if seconds >= 90 else f'{seconds:.0f} s'
