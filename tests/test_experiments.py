"""tools/experiments.py (`make experiments`) at tiny scale: settings, the resolution picker and uniform matcher, the
config options it passes to the tools, the back-to-back latency driver, the step runner's reuse rules, and the
table/plot builder on fake results. (The dataset variant is tested in test_synthetic_data.py.)"""
import json
import os.path as osp
import subprocess
import sys

import pytest

from tool_loader import load_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='module')
def exp():
    return load_tool('experiments')


# ----------------------------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------------------------
def test_settings_from_env_and_flags(exp):
    st = exp.settings_from({})
    assert st == exp.Settings() and st.img_size == 448 and not st.force
    st = exp.settings_from({'EXPERIMENTS_IMG_SIZE': '384', 'EXPERIMENTS_FORCE': '1', 'EXPERIMENTS_DIR': 'x'},
                           dict(num_train=7, img_size=None))
    assert (st.img_size, st.force, st.dir, st.num_train) == (384, True, 'x', 7)


@pytest.mark.parametrize('env, match', [
    ({'EXPERIMENTS_IMG_SIZE': '400'}, 'multiple of 32'), ({'EXPERIMENTS_NUM_TRAIN': 'ten'}, 'not a valid int'),
    ({'EXPERIMENTS_ADAPT_EPOCHS': '0'}, 'ADAPT_EPOCHS'), ({'EXPERIMENTS_FORCE': 'maybe'}, 'expected 0 or 1'),
    ({'EXPERIMENTS_POPULATION': '4'}, 'POPULATION'), ({'EXPERIMENTS_PARENTS': '4'}, 'PARENTS')])
def test_bad_settings(exp, env, match):
    with pytest.raises(exp.ExperimentError, match=match):
        exp.settings_from(env)


def test_cli_dry_run_and_bad_knob(tmp_path):
    tool = osp.join(ROOT, 'tools', 'experiments.py')
    ok = subprocess.run([sys.executable, tool, 'run', '--dry-run', '--budgets', '2', '--num-train', '10'],
                        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[-1].startswith('estimated total: about') and any('train_dense' in line for line in lines)
    bad = subprocess.run([sys.executable, tool, 'run', '--dry-run'], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, env={'EXPERIMENTS_IMG_SIZE': '100', 'PATH': '/usr/bin:/bin'})
    errors = [line for line in bad.stderr.splitlines() if 'error' in line]
    assert bad.returncode == 2 and len(errors) == 1 and 'EXPERIMENTS_IMG_SIZE' in errors[0]


def test_planned_runs(exp):
    st = exp.Settings()
    multi = exp.planned_runs(st)
    names = [n for n, _ in multi]
    assert len(names) == len(set(names)) == 29 and names[0] == 'data' and names[-1] == 'report'
    assert names.index('train_dense') < names.index('latency_plan') < names.index('train_saa') < names.index('search')
    assert names.index('search') < names.index('latency') < names.index('test_dense')
    assert sum(n.startswith('test_') for n in names) == 2 + 5 * st.budgets
    assert len(exp.planned_runs(exp.Settings(budgets=2, parents=4))) == len(names) - 6
    seconds = dict(multi)
    bigger = dict(exp.planned_runs(exp.Settings(num_train=2 * st.num_train)))
    assert bigger['train_dense'] > 1.9 * seconds['train_dense'] - exp.CALIBRATION['start_s']
    assert seconds['finetune_res1'] < seconds['finetune_full']  # smaller inputs cost less
    assert exp.nominal_sizes(st) == [384, 352, 320]


# ----------------------------------------------------------------------------------------------------------------
# Pickers and options
# ----------------------------------------------------------------------------------------------------------------
def test_size_ladder(exp):
    assert exp.size_ladder(448) == [416, 384, 352, 320, 288, 256, 224]
    assert exp.size_ladder(256) == [224, 192, 160, 128]


def test_pick_resolutions(exp):
    dense = {448: 100.0, 416: 88.0, 384: 77.0, 352: 66.0, 320: 55.0, 288: 46.0, 256: 37.0}
    assert exp.pick_resolutions(dense, 448, 3, floor_ms=20.0) == [384, 352, 320]  # 416 saves too little (0.88)
    assert exp.pick_resolutions(dense, 448, 2, floor_ms=20.0) == [384, 352]
    assert exp.pick_resolutions(dense, 448, 5, floor_ms=53.0) == [384, 352]  # 320 is below 1.05 x the floor
    assert exp.pick_resolutions(dense, 448, 3, floor_ms=20.0, max_frac=0.9) == [416, 384, 352]
    noisy = {**dense, 352: 78.0}  # timed slower than 384: no budget of its own
    assert exp.pick_resolutions(noisy, 448, 3, floor_ms=20.0) == [384, 320, 288]
    with pytest.raises(exp.ExperimentError, match='no reduced input size'):
        exp.pick_resolutions(dense, 448, 3, floor_ms=80.0)


def test_match_uniform(exp):
    uniform = {0.1: 95.0, 0.2: 85.0, 0.3: 75.0, 0.4: 65.0}
    assert exp.match_uniform(83.0, uniform) == 0.2
    assert exp.match_uniform(80.0, uniform) == 0.2  # a tie: the smaller ratio
    assert exp.match_uniform(10.0, uniform) == 0.4 and exp.match_uniform(500.0, uniform) == 0.1


def test_schedule_and_resolution_options_reach_the_configs(exp):
    from mmcv import Config, DictAction
    import argparse
    cfg = Config.fromfile(osp.join(ROOT, exp.FINETUNE_CFG))
    assert cfg.data.train.pipeline[2].img_scale == (448, 448)
    options = exp.resolution_options(cfg, 352) + exp.schedule_options(4)
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', *options]).cfg_options)  # as tools/train.py does
    assert cfg.data.train.pipeline[2].img_scale == (352, 352)
    assert cfg.data.val.pipeline[1].img_scale == cfg.data.test.pipeline[1].img_scale == (352, 352)
    assert cfg.runner.max_epochs == 4 and cfg.lr_config.step == [3]
    assert exp.schedule_options(1) == ['runner.max_epochs=1', 'lr_config.step=[1]']
    cfg.data.test.pipeline = cfg.data.test.pipeline[:1]
    with pytest.raises(exp.ExperimentError, match='img_scale'):
        exp.resolution_options(cfg, 352)


def test_ratios_option_and_searched_config(exp, tmp_path):
    from mmcv import Config, DictAction
    import argparse
    from sparsevit.utils.config import apply_sparsevit_cfg
    ratios = [[0.3, 0.3], [0.0, 0.0], [0.1, 0.1, 0.2, 0.2, 0.4, 0.4], [0.5, 0.5]]
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    option = exp.ratios_option(ratios)
    assert ' ' not in option
    cfg = Config.fromfile(osp.join(ROOT, exp.SPARSE_CFG))
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', option]).cfg_options)
    assert apply_sparsevit_cfg(cfg).model.backbone.pruning_ratios == ratios
    path = tmp_path / 'sparsevit_max41.3.py'  # as tools/search.py writes it
    path.write_text("# Found by tools/search.py\n#   backbone.stages.0 : 0.3\n_base_ = '../base.py'\n"
                    "custom_imports = dict(imports=['sparsevit'], allow_failed_imports=False)\n\n"
                    f'pruning_ratios = {ratios!r}\n\nload_from = {"x.pth"!r}\n')
    assert exp.read_pruning_ratios(str(path)) == ratios
    (tmp_path / 'none.py').write_text("_base_ = 'a.py'\n")
    with pytest.raises(exp.ExperimentError, match='no pruning_ratios'):
        exp.read_pruning_ratios(str(tmp_path / 'none.py'))
    assert exp.sparsity_text(ratios) == '0.3 / 0 / 0.1 0.2 0.4 / 0.5'
    assert exp.sparsity_text(None) == exp.sparsity_text([[0.0, 0.0]]) == 'dense'
    assert exp.sparsity_text([[0.4, 0.4], [0.4, 0.4]]) == 'uniform 0.4'
    assert exp.budget_text(0.71234) == '0.712x'
    from sparsevit.search.budgets import Limit
    assert Limit.parse(exp.budget_text(0.71234)) == Limit(0.712, True, '0.712x')  # tools/search.py takes it
    # the budgets are fractions of the full size's dense latency timed in the same run: a machine 1.5x slower
    # gives the same budgets
    dense = {448: 200.0, 416: 170.0, 384: 150.0}
    slow = {r: 1.5 * ms for r, ms in dense.items()}
    assert exp.budget_fractions(dense, 448, [416, 384]) == pytest.approx([0.85, 0.75])
    assert exp.budget_fractions(slow, 448, [416, 384]) == pytest.approx([0.85, 0.75])


# ----------------------------------------------------------------------------------------------------------------
# The latency driver
# ----------------------------------------------------------------------------------------------------------------
def test_time_interleaved_order(exp):
    calls = []
    times = exp.time_interleaved(['a', 'b', 'c'], 3, lambda n: calls.append(n) or float(len(calls)))
    assert calls == ['a', 'b', 'c', 'c', 'b', 'a', 'a', 'b', 'c']
    assert times == {'a': [1.0, 6.0, 7.0], 'b': [2.0, 5.0, 8.0], 'c': [3.0, 4.0, 9.0]}


def tiny_config(tmp_path) -> str:
    path = tmp_path / 'tiny.py'
    path.write_text(f"_base_ = {osp.join(ROOT, 'configs/experiments/mask_rcnn_sparsevit_small_objects.py')!r}\n"
                    "model = dict(backbone=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 1, 2, 2]))\n"
                    "pruning_ratios = None\n")
    return str(path)


def test_latency_driver_on_tiny_models(exp, tmp_path):
    entries = [dict(name='dense64', img_size=64, pruning_ratios=None),
               dict(name='half', img_size=64, pruning_ratios=0.5),
               dict(name='dense32', img_size=32, pruning_ratios=None, backbone={'pad_before_norm': False}),
               dict(name='random', img_size=64, pruning_ratios=0.5, backbone={'window_selection': 'random'})]
    backbones = exp.build_backbones(tiny_config(tmp_path), entries)
    assert backbones['half'].pruning_ratios[2] == (0.5, 0.5) and backbones['dense64'].num_features[0] == 16
    assert backbones['random'].window_selection == 'random' and not backbones['dense32'].pad_before_norm
    assert backbones['half'].window_selection == 'l2' and backbones['half'].pad_before_norm
    spec = dict(config=tiny_config(tmp_path), batch_size=1, warmup=0, repeats=2, rounds=2, entries=entries)
    (tmp_path / 'spec.json').write_text(json.dumps(spec))
    out = tmp_path / 'lat.json'
    assert exp.main(['latency', str(tmp_path / 'spec.json'), '--out', str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result['results']) == {e['name'] for e in entries} and result['rounds'] == 2
    for name, r in result['results'].items():
        assert len(r['runs_ms']) == 2 and r['latency_ms'] > 0 and r['img_size'] in (32, 64)
    (tmp_path / 'empty.json').write_text('{}')
    assert exp.main(['latency', str(tmp_path / 'empty.json'), '--out', str(out)]) == 2


# ----------------------------------------------------------------------------------------------------------------
# Running steps
# ----------------------------------------------------------------------------------------------------------------
def test_runner_reuse_cascade_and_force(exp, tmp_path, capsys):
    st = exp.Settings(dir=str(tmp_path / 'w'))
    plan = [('a', 10.0), ('b', 10.0), ('c', 10.0)]
    ran = []

    def go(force=False, keys=('ka', 'kb', 'kc')):
        runner = exp.Runner(exp.Settings(dir=st.dir, force=force), plan, sys.executable)
        ran.clear()
        for (name, _), key in zip(plan, keys):
            runner.step(name, f'step {name}', key, lambda log, n=name: ran.append(n))
        return runner

    go()
    assert ran == ['a', 'b', 'c']
    assert json.load(open(osp.join(st.dir, 'done', 'b.json')))['key'] == 'kb'
    runner = go()
    assert ran == [] and runner.reused == 3
    go(keys=('ka', 'changed', 'kc'))  # b's command changed: b and everything after it run again
    assert ran == ['b', 'c']
    go(force=True)
    assert ran == ['a', 'b', 'c']
    out = capsys.readouterr().out
    assert '1/3 step a: reused' in out and '3/3 step c (about 10 s) ...' in out
    go(keys=('ka', 'kb', dict(layout=(0.04, 0.12))))  # tuples are stored as lists: still the same key
    assert ran == ['c']
    go(keys=('ka', 'kb', dict(layout=(0.04, 0.12))))
    assert ran == []
    runner = exp.Runner(st, plan, sys.executable)
    runner.drop('b')
    assert runner.order == ['a', 'c']


def test_run_logged_failure_keeps_the_log(exp, tmp_path, capsys):
    log = tmp_path / 'x.log'
    exp.run_logged([sys.executable, '-c', 'print("hello"); print("Saving checkpoint at 1 epochs")'], str(log),
                   r'Saving checkpoint')
    assert 'Saving checkpoint at 1 epochs' in capsys.readouterr().out and 'hello' in log.read_text()
    with pytest.raises(exp.ExperimentError, match='exit 3'):
        exp.run_logged([sys.executable, '-c', 'import sys; print("boom"); sys.exit(3)'], str(log))
    assert 'boom' in log.read_text() and 'boom' in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# Report on fake results
# ----------------------------------------------------------------------------------------------------------------
def fake_run(exp, root, with_random=True):
    """rows.json, latency.json and eval dirs as a finished run leaves them, with made-up numbers."""
    ratios = [[0.2, 0.2], [0.3, 0.3], [0.3, 0.3, 0.4, 0.4, 0.5, 0.5], [0.0, 0.0]]
    rows, latency, evals = [], {}, {}

    def add(name, method, size, r, key, ms, budget, bbox, small):
        rows.append(dict(name=name, method=method, img_size=size, pruning_ratios=r, config='c.py', checkpoint='w',
                         weights='SAA' if method in ('sparsevit', 'random', 'uniform') else 'dense + finetune',
                         latency_key=key, budget=budget, options=[]))
        latency.setdefault(key, dict(latency_ms=ms, runs_ms=[ms, ms + 1, ms - 1]))
        evals[name] = dict(bbox_mAP=bbox, segm_mAP=bbox - 0.05, bbox_mAP_s=small, bbox_mAP_m=bbox + 0.1,
                           segm_mAP_s=small, segm_mAP_m=-1.0)

    add('dense', 'resolution', 448, None, 'dense448', 100.0, None, 0.60, 0.50)
    add('saa_dense', 'sparsevit', 448, None, 'dense448', 100.0, None, 0.61, 0.51)
    for i, (size, ms, res_bbox, sv_bbox) in enumerate(((384, 80.0, 0.55, 0.59), (352, 70.0, 0.50, 0.56),
                                                       (320, 60.0, 0.45, 0.44))):
        add(f'res{i + 1}', 'resolution', size, None, f'dense{size}', ms, i, res_bbox, res_bbox - 0.1)
        add(f'sparsevit_b{i + 1}', 'sparsevit', 448, ratios, f'sparsevit_b{i + 1}', ms - 2, i, sv_bbox, sv_bbox - 0.05)
        if with_random:
            add(f'random_b{i + 1}', 'random', 448, ratios, f'random_b{i + 1}', ms - 2.5, i, sv_bbox - 0.2, 0.1)
        add(f'uniform_b{i + 1}', 'uniform', 448, [[0.4] * d for d in (2, 2, 6, 2)], f'uniform0.4', ms, i,
            sv_bbox - 0.01, sv_bbox - 0.1)
        add(f'nosaa_b{i + 1}', 'no_saa', 448, ratios, f'sparsevit_b{i + 1}', ms - 2, i, sv_bbox - 0.3, 0.05)
    settings = dict(vars(exp.Settings()))
    exp._write_json(osp.join(root, 'rows.json'), dict(rows=rows, settings=settings, sizes=[384, 352, 320],
                                                       budgets_ms=[60.0, 70.0, 80.0]))
    exp._write_json(osp.join(root, 'latency.json'), dict(results=latency, batch_size=4, warmup=3, repeats=10,
                                                          rounds=3, threads=2, torch='2.x', seconds=1.0))
    for name, metric in evals.items():
        if name != 'nosaa_b3':  # one evaluation missing: its row is left out
            exp._write_json(osp.join(root, 'eval', name, 'eval_20260101_000000.json'), dict(metric=metric))


def test_report_on_fake_results(exp, tmp_path):
    root = str(tmp_path)
    fake_run(exp, root)
    text = exp.write_report(root, wall_time_s=3000)
    for title, *_ in exp.COMPARISONS:
        assert f'## {title}' in text
    assert ('SparseViT (searched, L2, SAA) ahead of dense, lower resolution at 2/3 budgets; bbox mAP difference: '
            'budget 1 (78.0 vs 80.0 ms): +0.040 (small +0.090)') in text
    assert 'ahead of random windows (searched ratios) at 3/3 budgets' in text
    assert 'ahead of searched ratios, no SAA at 2/2 budgets' in text  # nosaa_b3 has no evaluation
    row = ('| SparseViT (searched, L2, SAA) (budget 2) | SAA | 448 | 0.2 / 0.3 / 0.3 0.4 0.5 / 0 | 68.0 | 0.68 | '
           '0.560 | 0.510 | 0.510 | 0.660 |')
    assert row in text and 'Wall time of the run: 50.0 min.' in text
    assert open(osp.join(root, 'results.md')).read() == text
    result = json.load(open(osp.join(root, 'results.json')))
    assert result['missing'] == ['nosaa_b3'] and len(result['rows']) == 16
    dense = next(r for r in result['rows'] if r['name'] == 'dense')
    assert dense['latency_runs_ms'] == [100.0, 101.0, 99.0] and dense['segm_mAP_m'] is None  # COCO's -1: no object
    assert set(result['verdicts']) == {c[0] for c in exp.COMPARISONS}
    with open(osp.join(root, 'tradeoff.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert exp.main(['report', root]) == 0


def test_report_without_random_and_errors(exp, tmp_path, capsys):
    fake_run(exp, str(tmp_path), with_random=False)
    text = exp.write_report(str(tmp_path))
    assert '## Window selection' not in text and '## Non-uniform vs uniform sparsity' in text
    assert exp.main(['report', str(tmp_path / 'nothing')]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if 'error' in line]
    assert len(errors) == 1 and 'run the experiments first' in errors[0]


def test_plot_with_tied_rows(exp, tmp_path):
    """Two budgets can pick the same uniform ratio: equal (latency, mAP) points must not make the plot compare
    rows."""
    row = dict(method='uniform', img_size=448, latency_ms=50.0, bbox_mAP=0.5, bbox_mAP_s=0.4)
    records = [dict(row, name='uniform_b1'), dict(row, name='uniform_b2'),
               dict(row, method='resolution', name='res1', img_size=384)]
    path = exp.plot_tradeoff(records, str(tmp_path / 'tradeoff.png'))
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
