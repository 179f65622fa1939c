"""tools/demo_report.py (the demo's results table): reads the latency --json files and tools/test.py's eval json."""
import importlib.util
import json
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_report():
    spec = importlib.util.spec_from_file_location('demo_report_tool', osp.join(ROOT, 'tools', 'demo_report.py'))
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    return report


def test_demo_report_reads_latency_and_eval_json(tmp_path, capsys):
    report = load_report()
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
    assert report.main(['--band', '0.8', '0.5', *lat['d']]) == 0
    assert capsys.readouterr().out.split() == ['41.6', '26.0']  # median 52 ms
    md = tmp_path / 'r.md'
    assert report.main(['--row', 'dense', 'a.py', str(dense_dir), ','.join(lat['d']), '--row', 'sparse', 'b.py',
                        str(sparse_dir), ','.join(lat['s']), '--markdown', str(md), '--json',
                        str(tmp_path / 'r.json')]) == 0
    out = capsys.readouterr().out
    assert '| sparse | b.py | 0.3 / 0 / 0.1 0.2 0.2 / 0 | 224x224 | 40.00 | 0.769 | 0.580 | 0.500 |' in out
    assert md.read_text().strip() == out.strip()
    checks = json.loads((tmp_path / 'r.json').read_text())['checks']
    assert [c['ok'] for c in checks] == [True, True, True]
    assert report.main(['--row', 'dense', 'a.py', str(tmp_path), lat['d'][0]]) == 2  # no eval_*.json there
    assert 'no eval_*.json' in capsys.readouterr().err
    assert report.main(['--band', '0.5', '0.8', lat['d'][0]]) == 2  # MIN_FRAC above MAX_FRAC
    assert 'MIN_FRAC' in capsys.readouterr().err
