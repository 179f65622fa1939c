"""tools/demo_report.py (the demo's results table): reads the latency --json files and tools/test.py's eval json."""
import json

import pytest

from tool_loader import load_tool


def test_demo_report_reads_latency_and_eval_json(tmp_path, capsys):
    report = load_tool('demo_report')
    dense_dir, sparse_dir = tmp_path / 'dense', tmp_path / 'sparse'
    for d, bbox in ((dense_dir, 0.61), (sparse_dir, 0.58)):
        d.mkdir()
        (d / 'eval_20260101_000000.json').write_text(json.dumps(dict(metric=dict(bbox_mAP=bbox, segm_mAP=0.5))))
    cfg1 = [[0.3, 0.3], [0.0, 0.0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0.0, 0.0]]
    lat = {}
    for name, values, ratios in (('d', (50.0, 90.0, 52.0), None), ('s', (40.0, 41.0, 20.0), cfg1)):
        lat[name] = []
        for i, ms in enumerate(values):
            path = tmp_path / f'{name}{i}.json'
            path.write_text(json.dumps(dict(latency_ms=ms, img_size=224, batch_size=4, device='cpu',
                                            pruning_ratios=ratios)))
            lat[name].append(str(path))
    md = tmp_path / 'r.md'
    assert report.main(['--row', 'dense', 'a.py', str(dense_dir), ','.join(lat['d']), '--row', 'sparse', 'b.py',
                        str(sparse_dir), ','.join(lat['s']), '--markdown', str(md), '--json',
                        str(tmp_path / 'r.json')]) == 0
    out = capsys.readouterr().out
    assert '| sparse | b.py | 0.3 / 0 / 0.1 0.2 0.2 / 0 | 224x224 | 40.00 | 0.769 | 0.580 | 0.500 |' in out
    assert md.read_text().strip() == out.strip()
    checks = json.loads((tmp_path / 'r.json').read_text())['checks']
    assert [c['ok'] for c in checks] == [True, True, True]
    # scene data: no dense target was set for it; the other checks stay
    assert report.main(['--row', 'dense', 'a.py', str(dense_dir), ','.join(lat['d']), '--row', 'sparse', 'b.py',
                        str(sparse_dir), ','.join(lat['s']), '--data-style', 'scene', '--json',
                        str(tmp_path / 'r.json')]) == 0
    out = capsys.readouterr().out
    assert "- (no target) dense bbox mAP: no target for scene data (the demo's 0.5 was set on flat data) (0.61)" in out
    checks = json.loads((tmp_path / 'r.json').read_text())['checks']
    assert [c['ok'] for c in checks] == [None, True, True]
    assert report.main(['--row', 'dense', 'a.py', str(tmp_path), lat['d'][0]]) == 2  # no eval_*.json there
    assert 'no eval_*.json' in capsys.readouterr().err
    with pytest.raises(SystemExit):  # no row
        report.main(['--markdown', str(md)])
    assert 'give at least one --row' in capsys.readouterr().err


def test_demo_report_puts_bf16_map_next_to_fp32(tmp_path, capsys):
    report = load_tool('demo_report')
    evals = {}
    for name, bbox, dtype in (('dense', 0.61, None), ('sparse', 0.58, None), ('bf16', 0.575, 'bf16'),
                              ('fp32_again', 0.5, 'fp32')):
        d = tmp_path / name
        d.mkdir()
        record = dict(metric=dict(bbox_mAP=bbox, segm_mAP=bbox - 0.1), **({'dtype': dtype} if dtype else {}))
        (d / 'eval_20260101_000000.json').write_text(json.dumps(record))
        evals[name] = str(d)
    lat = tmp_path / 'lat.json'
    lat.write_text(json.dumps(dict(latency_ms=40.0, img_size=224, batch_size=4, device='cpu', pruning_ratios=None)))
    check = tmp_path / 'precision.json'
    check.write_text(json.dumps(dict(agree=1190, kept=1200, agreement=1190 / 1200, flips=10, same_input_mismatches=0,
                                     num_images=8, dtype='bf16', max_flip_gap=1e-3)))
    rows = ['--row', 'dense', 'a.py', evals['dense'], str(lat), '--row', 'sparse', 'b.py', evals['sparse'], str(lat)]
    out_json = tmp_path / 'r.json'
    assert report.main(rows + ['--bf16', 'sparse', evals['bf16'], '--precision-check', str(check),
                               '--json', str(out_json)]) == 0
    out = capsys.readouterr().out
    assert '| sparse | fp32 | 0.580 | 0.480 |' in out and '| sparse | bf16 (autocast) | 0.575 | 0.475 |' in out
    assert 'fp32 and bf16 (tools/check_precision.py, 8 val images): 1190/1200 (99.17 %), 10 flips' in out
    assert '- [x] sparse: bf16 bbox mAP within 0.02 of fp32 (0.005)' in out
    assert '- [x] sparse: bf16 ranks the same stage input as fp32 does (0)' in out
    saved = json.loads(out_json.read_text())
    assert saved['precision']['bf16'] == dict(bbox_mAP=0.575, segm_mAP=0.475)
    assert saved['precision']['windows']['agreement'] == 1190 / 1200
    # without --precision-check: only the mAP table
    assert report.main(rows + ['--bf16', 'sparse', evals['bf16']]) == 0
    out = capsys.readouterr().out
    assert '| sparse | bf16 (autocast) |' in out and 'check_precision' not in out
    # one error line each: an fp32 eval given as bf16, a name that is no row, --precision-check alone
    assert report.main(rows + ['--bf16', 'sparse', evals['fp32_again']]) == 2
    assert 'was evaluated in fp32, not bf16' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report.main(rows + ['--bf16', 'nope', evals['bf16']])
    assert "--bf16 'nope' names no --row" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report.main(rows + ['--precision-check', str(check)])
    assert '--precision-check needs --bf16' in capsys.readouterr().err


def test_demo_report_gives_both_latency_ratios_and_the_kept_windows(tmp_path, capsys):
    """``--own-dense`` divides by our dense backbone too (the pruning's own gain); ``--kept-windows`` adds the
    analysis of tools/analyze_windows.py."""
    report = load_tool('demo_report')
    rows = []
    for name, ms, bbox, ratios in (('mmdet', 64.0, 0.70, None), ('ours', 56.0, 0.69, None),
                                   ('sparse', 42.0, 0.68, [[0.5, 0.5], [0.0, 0.0], [0.2] * 6, [0.0, 0.0]])):
        d = tmp_path / name
        d.mkdir()
        (d / 'eval_20260101_000000.json').write_text(json.dumps(dict(metric=dict(bbox_mAP=bbox, segm_mAP=0.5))))
        lat = tmp_path / f'{name}.json'
        lat.write_text(json.dumps(dict(latency_ms=ms, img_size=224, batch_size=4, device='cpu',
                                       pruning_ratios=ratios)))
        rows += ['--row', name, f'{name}.py', str(d), str(lat)]
    stage = dict(stage=0, stride=4, input='patch embedding after its LayerNorm',
                 input_magnitude=dict(object=0.5, background=0.8, ratio=0.625, object_tokens=10,
                                      background_tokens=20),
                 regular=dict(block=0, prune_ratio=0.5, windows=16, kept_windows=8, kept_fraction=0.5,
                              object_window_fraction=0.25,
                              l2=dict(recall=0.2, precision=0.125, recall_by_size=dict(small=0.1, medium=0.3,
                                                                                      large=None)),
                              random=dict(recall=0.5, recall_std=0.05, precision=0.25, precision_std=0.02,
                                          recall_by_size=dict(small=0.5, medium=0.5, large=None), seeds=3),
                              chance=dict(recall=0.5, precision=0.25)),
                 shifted=None)
    analysis = dict(num_images=40, split='val', num_objects=90, random_seeds=[0, 1, 2],
                    settings=[dict(name='uniform 0.5', pruning_ratios=None, stages=[stage])])
    kept = tmp_path / 'kept.json'
    kept.write_text(json.dumps(analysis))
    out_json = tmp_path / 'r.json'
    assert report.main(rows + ['--own-dense', 'ours', '--kept-windows', 'SAA weights', str(kept),
                               '--json', str(out_json)]) == 0
    out = capsys.readouterr().out
    assert '| latency (ms) | vs mmdet | vs ours | bbox mAP |' in out
    assert '| ours | ours.py | dense | 224x224 | 56.00 | 0.875 | 1.000 | 0.690 |' in out
    assert '| sparse | sparse.py | 0.5 / 0 / 0.2 0.2 0.2 / 0 | 224x224 | 42.00 | 0.656 | 0.750 | 0.680 |' in out
    assert '## Kept windows' in out and '### SAA weights' in out and '40 val images, 90 objects' in out
    assert '| uniform 0.5 | 0 | 0 (regular) | 8 / 16 | 0.200 |' in out
    saved = json.loads(out_json.read_text())
    assert saved['own_dense'] == 'ours' and saved['kept_windows']['SAA weights']['num_objects'] == 90
    with pytest.raises(SystemExit):
        report.main(rows + ['--own-dense', 'nope'])
    assert "--own-dense 'nope' names no --row" in capsys.readouterr().err


def test_demo_report_of_segmentors_gives_miou_and_segmentor_latency(tmp_path, capsys):
    """A segmentor's eval json (mIoU, mAcc, aAcc in [0, 1]) gives the columns mIoU and mAcc; latency files of scope
    segmentor in a row's list add its whole-model latency, the ratio to the first row's and the backbone share; no
    targets (values only); bf16 next to fp32 in the same columns."""
    report = load_tool('demo_report')
    ratios = [[0.5, 0.5], [0.0, 0.0], [0.2, 0.2, 0.4, 0.4, 0.6, 0.6], [0.0, 0.0]]
    specs = dict(swin=(0.62, 0.71, (100.0, 110.0, 90.0), (200.0, 210.0, 190.0), 0.5, None),
                 dense=(0.60, 0.70, (80.0, 81.0, 79.0), (180.0, 181.0, 179.0), 0.44, None),
                 sparse=(0.58, 0.69, (40.0, 41.0, 42.0), (140.0, 141.0, 150.0), 0.29, ratios))
    rows = []
    for name, (miou, macc, backbone_ms, seg_ms, share, r) in specs.items():
        d = tmp_path / name
        d.mkdir()
        metric = {'mIoU': miou, 'mAcc': macc, 'aAcc': 0.95, 'IoU.background': 0.9}
        (d / 'eval_20261202_000000.json').write_text(json.dumps(dict(metric=metric)))
        files = []
        for i, (bb, seg) in enumerate(zip(backbone_ms, seg_ms)):
            for scope, ms in (('backbone', bb), ('segmentor', seg)):
                path = tmp_path / f'{name}_{scope}_r{i}.json'
                extra = dict(backbone_ms=share * ms, backbone_share=share, head_ms=(1 - share) * ms,
                             batch_size=1) if scope == 'segmentor' else dict(batch_size=4)
                path.write_text(json.dumps(dict(latency_ms=ms, img_size=[256, 512], device='cpu', scope=scope,
                                                pruning_ratios=r, **extra)))
                files.append(str(path))
        rows += ['--row', name, f'{name}.py', str(d), ','.join(files)]
    bf16 = tmp_path / 'bf16'
    bf16.mkdir()
    (bf16 / 'eval_20261202_000001.json').write_text(json.dumps(dict(metric={'mIoU': 0.575, 'mAcc': 0.685,
                                                                            'aAcc': 0.95}, dtype='bf16')))
    out_json = tmp_path / 'r.json'
    assert report.main(rows + ['--own-dense', 'dense', '--bf16', 'sparse', str(bf16), '--json', str(out_json)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == ('| model | config | sparsity configuration (genes per stage) | resolution | backbone latency '
                        '(ms) | vs swin | vs dense | segmentor latency (ms) | segmentor vs swin | backbone share | '
                        'mIoU | mAcc |')
    assert '| swin | swin.py | dense | 256x512 | 100.00 | 1.000 | 1.250 | 200.00 | 1.000 | 50.0 % | 0.620 | 0.710 |' \
        in lines
    # backbone 41 / 100 and 41 / 80; segmentor 141 / 200; the median share 0.29
    assert ('| sparse | sparse.py | 0.5 / 0 / 0.2 0.4 0.6 / 0 | 256x512 | 41.00 | 0.410 | 0.512 | 141.00 | 0.705 | '
            '29.0 % | 0.580 | 0.690 |') in lines
    assert 'mAP' not in out and '[x]' not in out and '[ ]' not in out  # no targets for segmentation
    assert 'The segmentor: its whole test forward on random 256x512 input, batch 1, median of 3' in out
    assert 'mIoU / mAcc: mean IoU' in out
    assert '| model | precision | mIoU | mAcc |' in out and '| sparse | bf16 (autocast) | 0.575 | 0.685 |' in out
    saved = json.loads(out_json.read_text())
    assert saved['task'] == 'segmentation' and saved['checks'] == []
    sparse = saved['rows'][2]
    assert sparse['mIoU'] == 0.58 and sparse['mAcc'] == 0.69 and 'bbox_mAP' not in sparse
    assert sparse['whole']['latency_ms'] == 141.0 and sparse['whole']['backbone_share'] == 0.29
    assert sparse['latency_runs_ms'] == [40.0, 41.0, 42.0]
    assert saved['precision']['bf16'] == {'mIoU': 0.575, 'mAcc': 0.685}


def test_demo_report_rejects_mixed_tasks_and_unknown_metrics(tmp_path, capsys):
    report = load_tool('demo_report')
    lat = tmp_path / 'lat.json'
    lat.write_text(json.dumps(dict(latency_ms=40.0, img_size=224, batch_size=4, device='cpu', pruning_ratios=None)))
    evals = {}
    for name, metric in (('det', dict(bbox_mAP=0.5, segm_mAP=0.4)), ('seg', {'mIoU': 0.5, 'mAcc': 0.6}),
                         ('other', dict(accuracy=0.9))):
        d = tmp_path / name
        d.mkdir()
        (d / 'eval_20261202_000000.json').write_text(json.dumps(dict(metric=metric)))
        evals[name] = str(d)
    assert report.main(['--row', 'a', 'a.py', evals['det'], str(lat), '--row', 'b', 'b.py', evals['seg'],
                        str(lat)]) == 2
    assert 'rows of different tasks (detection, segmentation)' in capsys.readouterr().err
    assert report.main(['--row', 'a', 'a.py', evals['other'], str(lat)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'has none of the metric sets bbox_mAP, segm_mAP (--eval bbox segm); mIoU, mAcc' in err[0]
    seg_lat = tmp_path / 'seg_lat.json'
    seg_lat.write_text(json.dumps(dict(latency_ms=90.0, scope='segmentor', backbone_share=0.4, img_size=[64, 128])))
    assert report.main(['--row', 'a', 'a.py', evals['seg'], str(seg_lat)]) == 2  # a segmentor file alone
    assert 'no backbone latency among' in capsys.readouterr().err
