"""ONNX export of the backbone at a fixed configuration, checked in onnxruntime (skipped without onnxruntime).

Tiny model (embed 16), small padded inputs; both torch exporters (TorchScript-based, the default, and
``torch.export``-based) on one configuration each, the default one on dense and sparse configurations.
"""
import json
import os.path as osp
import re

import pytest

ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')

from sparsevit.deploy.onnx import check_onnx, export_backbone, ort_latency  # noqa: E402

from helpers import build_sparse, images  # noqa: E402
from tool_loader import load_tool  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MIXED = [[.4, .5], [0, .4], [.2, .2, .4, .4, .7, .7], [0, .5]]  # dense and pruned blocks, pruned shifted blocks
CASES = {
    'dense_padded': (None, 100),  # tokens 25, 13, 7, 4: padding in every stage, one window in the last
    'sparse_padded': (MIXED, 100),
    'sparse': ([[.3, .3], [0, 0], [.1, .1, .2, .2, .2, .2], [0, 0]], 112),
    'k_zero': ([[.6, .6], [.8, .8], [.5] * 6, [.1, .1]], 112),  # stage 1 and 3 keep nothing
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_export_matches_pytorch(case, tmp_path):
    ratios, size = CASES[case]
    model = build_sparse(ratios)
    path = export_backbone(model, str(tmp_path / 'sub' / 'model.onnx'), img_size=size, batch_size=2)
    assert osp.isfile(path)
    result = check_onnx(model, path, images(2, size, size, seed=7))  # not the export's own random input
    assert result['ok'], result
    assert [o['shape'][1:] for o in result['outputs']] == [[16 * 2 ** i, -(-size // 2 ** (i + 2)),
                                                            -(-size // 2 ** (i + 2))] for i in range(4)]
    assert all(o['max_rel_diff'] <= 1e-4 for o in result['outputs'])


def test_graph_has_topk_gather_scatter_and_static_shapes(tmp_path):
    import onnx
    model = build_sparse(MIXED)
    path = export_backbone(model, str(tmp_path / 'model.onnx'), img_size=100, batch_size=2)
    graph = onnx.load(path)
    ops = {node.op_type for node in graph.graph.node}
    assert {'TopK', 'Gather', 'ScatterND'} <= ops, sorted(ops)
    assert graph.opset_import[0].version >= 17
    assert [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim] == [2, 3, 100, 100]


def test_check_detects_a_wrong_model(tmp_path):
    """The check can fail: a model exported at other ratios does not match the backbone's outputs."""
    model = build_sparse(MIXED)
    path = export_backbone(model, str(tmp_path / 'model.onnx'), img_size=100, batch_size=2)
    model.set_pruning_ratios(None)
    result = check_onnx(model, path, images(2, 100, 100))
    assert not result['ok'] and result['max_rel_diff'] > 1e-2


def test_dynamo_exporter(tmp_path):
    model = build_sparse(MIXED)
    path = export_backbone(model, str(tmp_path / 'model.onnx'), img_size=100, batch_size=1, opset=18, dynamo=True)
    assert check_onnx(model, path, images(1, 100, 100))['ok']


def test_ort_latency_is_a_positive_time(tmp_path):
    model = build_sparse(None, depths=(2, 2, 2, 2))
    path = export_backbone(model, str(tmp_path / 'model.onnx'), img_size=64, batch_size=1)
    assert ort_latency(path, images(1, 64, 64), num_warmup=1, num_repeats=3) > 0
    with pytest.raises(ValueError, match='num_repeats'):
        ort_latency(path, images(1, 64, 64), num_warmup=0, num_repeats=0)


@pytest.mark.parametrize('kwargs,fragment', [
    (dict(opset=16), 'opset'),
    (dict(img_size=0), 'img_size'),
    (dict(batch_size=1.5), 'batch_size'),
])
def test_export_bad_arguments(kwargs, fragment, tmp_path):
    with pytest.raises(ValueError, match=fragment):
        export_backbone(build_sparse(None), str(tmp_path / 'm.onnx'), **kwargs)


def test_export_rejects_what_cannot_be_exported(tmp_path):
    from mmdet.models.backbones import SwinTransformer
    with pytest.raises(ValueError, match='only a SparseSwinTransformer'):
        export_backbone(SwinTransformer(embed_dims=16, num_heads=(1, 2, 4, 8)), str(tmp_path / 'm.onnx'))
    with pytest.raises(ValueError, match='random'):
        export_backbone(build_sparse(MIXED, window_selection='random'), str(tmp_path / 'm.onnx'))
    with pytest.raises(ValueError, match='not found'):
        check_onnx(build_sparse(None), str(tmp_path / 'missing.onnx'), images(1, 64, 64))


# ----------------------------------------------------------------------------------------------------------------
# tools/export_onnx.py
# ----------------------------------------------------------------------------------------------------------------
DEMO = osp.join(ROOT, 'configs/demo/mask_rcnn_sparsevit_demo.py')


def test_tool_exports_checks_and_times(tmp_path, capsys):
    out, js = tmp_path / 'demo.onnx', tmp_path / 'result.json'
    rc = load_tool('export_onnx').main([DEMO, '--out', str(out), '--img_size', '96', '--batch-size', '1', '--pruning-ratios',
                           '[[0.5, 0.5], [0.3, 0.3], [0.2, 0.2, 0.4, 0.4, 0.5, 0.5], [0, 0]]', '--num-warmup', '1',
                           '--num-repeats', '2', '--json', str(js)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert out.is_file() and not (tmp_path / 'demo.dense.onnx').exists()
    assert 'check onnxruntime vs PyTorch: ok' in printed and printed.count('max rel diff') == 5
    assert re.search(r'exported [\d.]+ ms, dense [\d.]+ ms, ratio [\d.]+', printed)
    result = json.loads(js.read_text())
    assert result['check']['ok'] and set(result['onnxruntime_ms']) == {'sparse', 'dense'}
    assert result['pruning_ratios'][0] == [0.5, 0.5]


@pytest.mark.parametrize('argv,fragment', [
    (['--out', 'x.onx'], 'must end with .onnx'),
    (['--out', '{tmp}/m.onnx', '--opset', '16'], 'opset'),
    (['--out', '{tmp}/m.onnx', '--pruning-ratios', '1.5'], r'\[0, 1\)'),
    (['--out', '{tmp}/m.onnx', '--cfg-options', 'model.backbone.type=ResNet'], 'ResNet'),
    (['{tmp}/missing.pth', '--out', '{tmp}/m.onnx'], 'checkpoint not found'),
])
def test_tool_bad_input_one_line(argv, fragment, tmp_path, capsys):
    argv = [a.replace('{tmp}', str(tmp_path)) for a in argv]
    try:
        rc = load_tool('export_onnx').main([DEMO, *argv])
    except SystemExit as exit_:  # argparse errors
        rc = exit_.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and re.search(fragment, err), err
