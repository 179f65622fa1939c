"""The settings and the plan of `make experiments` (sparsevit.experiments.settings, .plan): the new knobs, the
runs they add, and the printed estimate of the defaults (under 75 minutes on 2 cores)."""
import pytest

from sparsevit.experiments.plan import budget_tests, planned_runs, width_runs
from sparsevit.experiments.settings import ExperimentError, Settings, settings_from


def test_new_settings_and_their_checks():
    st = settings_from({})
    assert (st.style, st.num_val, st.random_seeds, st.match_candidates, st.latency_rounds) == ('scene', 250, 3, 5, 5)
    assert st.width_factors == (0.75, 0.5) and st.window_images == 40
    st = settings_from({'EXPERIMENTS_STYLE': 'flat', 'EXPERIMENTS_WIDTHS': 'none', 'EXPERIMENTS_RANDOM_SEEDS': '1'})
    assert (st.style, st.width_factors, st.random_seeds) == ('flat', (), 1)
    for env, match in (({'EXPERIMENTS_STYLE': 'photo'}, 'EXPERIMENTS_STYLE'),
                       ({'EXPERIMENTS_WIDTHS': '0.75 2'}, r'EXPERIMENTS_WIDTHS.*in \(0, 1\)'),
                       ({'EXPERIMENTS_RANDOM_SEEDS': '0'}, 'RANDOM_SEEDS'),
                       ({'EXPERIMENTS_MATCH_CANDIDATES': '0'}, 'MATCH_CANDIDATES'),
                       ({'EXPERIMENTS_WINDOW_IMAGES': '0'}, 'WINDOW_IMAGES')):
        with pytest.raises(ExperimentError, match=match):
            settings_from(env)


def test_default_estimate_is_the_measured_run_and_jobs_share_the_cores():
    # calibrated on the full run of 2026-12-02 (78.7 min at sizes 352 / 320 / 288, runs one at a time)
    at_measured_sizes = sum(s for _, s in planned_runs(Settings(jobs=1), sizes=[352, 320, 288]))
    assert 75 * 60 < at_measured_sizes < 82 * 60
    assert Settings().jobs == 2  # the default since its measured run (47.9 min, 2026-12-02)
    runs = planned_runs(Settings(jobs=1))
    total = sum(s for _, s in runs)
    seconds = dict(runs)
    # the width baselines train dense + adapt epochs from scratch; the narrower, the cheaper an epoch, but not by
    # much: measured 516 and 374 s for 8 epochs on 2026-12-02, where a full-width epoch cost ~70 s
    assert 350 < seconds['train_width0.5'] < seconds['train_width0.75'] < 550
    assert seconds['test_random_b1_s2'] == seconds['test_dense']  # every test is on the same val images
    more = dict(planned_runs(Settings(jobs=1, latency_rounds=10)))
    assert more['latency'] > 1.9 * seconds['latency'] - 10
    # two at a time: the trainings after the dense one and the tests count speed-up / 2 of their time; latency
    # measurements, the search and the dense training do not change
    two = dict(planned_runs(Settings(jobs=2)))
    assert two['train_saa'] == pytest.approx(0.75 * seconds['train_saa'])
    assert two['test_dense'] == pytest.approx(0.6 * seconds['test_dense'])
    assert two['windows_saa'] == pytest.approx(0.6 * seconds['windows_saa'])
    for name in ('train_dense', 'latency', 'latency_plan', 'latency_budgets', 'search', 'report'):
        assert two[name] == seconds[name]
    assert sum(two.values()) < 75 * 60 < total


def test_runs_follow_the_knobs():
    st = Settings()
    assert budget_tests(st, 1) == ['test_sparsevit_b2', 'test_random_b2_s0', 'test_random_b2_s1',
                                   'test_random_b2_s2', 'test_uniform_b2', 'test_nosaa_b2']
    assert width_runs(st) == [('train_width0.75', 'test_width0.75'), ('train_width0.5', 'test_width0.5')]
    base = [n for n, _ in planned_runs(st)]
    assert len([n for n, _ in planned_runs(Settings(widths='none'))]) == len(base) - 4
    one_seed = [n for n, _ in planned_runs(Settings(random_seeds=1))]
    assert len(one_seed) == len(base) - 2 * st.budgets and 'test_random_b1_s0' in one_seed
    assert {'windows_saa', 'windows_dense'} <= set(base)
