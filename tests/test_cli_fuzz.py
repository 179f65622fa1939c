"""Bad input a user can type, over every tool (issue 17, case 6): each case exits non-zero with one line on stderr
saying what was wrong (the table's pattern), no traceback, and leaves no output behind that a later run could take
for a complete one. A few inputs that look odd but are valid (a 32x32 image, where stage 3 is 1x1; an odd size)
must run.

The tools run in this process (``main(argv)``, :mod:`tool_loader`), so the table stays fast; the placeholders in an
argument are filled from :func:`paths`: ``{demo}`` the detection demo config, ``{seg}`` the segmentation one,
``{ckpt}`` a random-weight demo checkpoint, ``{other_ckpt}`` one of the same detector with 18 blocks in stage 2
(Swin-S's depths in a Swin-T config), ``{data}`` the tiny synthetic data root, ``{missing}`` a directory that does
not exist, ``{empty}`` an empty one, ``{blocked}`` a path under a regular file (no directory can be made there: the
tests run as root, for whom no permission bit makes a directory unwritable), ``{tmp}`` the test's directory.
"""
import os
import os.path as osp
import re
import sys

import pytest
from tool_loader import load_tool

from conftest import ROOT

pytestmark = pytest.mark.usefixtures('one_cpu_thread')

DEMO = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_sparsevit_demo.py')
DENSE = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_swin_demo.py')
SEG = osp.join(ROOT, 'configs', 'demo', 'upernet_sparsevit_demo_seg.py')
FAST = ['--num-warmup', '0', '--num-repeats', '1']
RANGE = r'allowed range is \[0, 1\)'

#: the --pruning-ratios texts a user can get wrong, and what the error says
BAD_RATIOS = [
    ('NaN', RANGE),
    ('1', RANGE),
    ('1.5', RANGE),
    ('-0.1', RANGE),
    ('[[0.5, 0.3], 0, 0, 0]', r'stage 0 block 1 is 0.3 < block 0 \(0.5\); ratios must be non-decreasing'),
    ('[0.1, 0.2]', r'has 2 stages; the backbone has 4'),
    ('[[0.1], 0, 0, 0]', r'stage 0 has 1 ratios; it has 2 blocks'),
    ('[[[0.1], 0.1], 0, 0, 0]', r'stage 0 block 0 is \[0.1\]; expected a number in \[0, 1\)'),
    ('[0.1, 0.1, "a", 0]', r"stage 2 is 'a'; expected a number"),
    ('abc', r"--pruning-ratios 'abc' is neither JSON nor a Python literal"),
    ('"0.3"', r'must be None, a float, a list per stage or a list of lists per block; got str'),
    ('{{"backbone.stages.9": 0.1}}', r'backbone.stages.9'),
]

#: (tool, arguments, pattern of the error line after "TOOL.py: error: ")
CASES = [
    # ---------------------------------------------------------------- measure_latency: ratios, sizes, batch, files
    *[('measure_latency', ['{demo}', '--pruning-ratios', text, *FAST], pattern) for text, pattern in BAD_RATIOS],
    ('measure_latency', ['{demo}', '--img_size', '0'], r'--img_size/--img-size: must be a positive integer, got 0'),
    ('measure_latency', ['{demo}', '--img_size', '-32'], r'--img_size/--img-size: must be a positive integer, got -32'),
    ('measure_latency', ['{demo}', '--img_size', 'big'], r"--img_size/--img-size: invalid positive_int value: 'big'"),
    ('measure_latency', ['{demo}', '--img_size', '32', '32', '32'], r'--img_size takes one value .* got 3'),
    ('measure_latency', ['{demo}', '--batch-size', '0'], r'--batch-size/--batch_size: must be a positive integer, got 0'),
    ('measure_latency', ['{demo}', '--num-repeats', '0'], r'--num-repeats: must be a positive integer, got 0'),
    ('measure_latency', ['{missing}/config.py'], r'config file not found: .*missing/config.py'),
    ('measure_latency', ['{demo}', '--json', '{blocked}/out.json', *FAST], r'--json .*: cannot create (the|its) directory: .*blocked is a file'),
    ('measure_latency', ['{seg}', '--scope', 'detector', *FAST], r'--scope detector'),
    # ---------------------------------------------------------------- the other latency / deployment tools
    ('check_latency_table', ['{demo}', '--img_size', '0'], r'--img_size/--img-size: must be an integer >= 1, got 0'),
    ('check_latency_table', ['{demo}', '--batch-size', '0'], r'--batch-size/--batch_size: must be an integer >= 1'),
    ('benchmark_backbone', ['--img_size', '0'], r'--img_size/--img-size: must be an integer >= 1, got 0'),
    ('benchmark_backbone', ['--batch-size', '0'], r'--batch-size: must be an integer >= 1, got 0'),
    ('benchmark_backbone', ['--embed-dims', '0'], r'--embed-dims: must be an integer >= 1, got 0'),
    ('benchmark_backbone', ['--json', '{blocked}/b.json', '--img_size', '32', '--rows', 'dense', '--columns',
                            'eager-fp32', *FAST], r'--json .*blocked is a file'),
    ('export_onnx', ['{demo}', '--out', '{tmp}/m.onnx', '--pruning-ratios', 'NaN'], RANGE),
    ('export_onnx', ['{demo}', '--out', '{tmp}/m.onnx', '--img_size', '0'], r'--img_size/--img-size: must be an integer >= 1'),
    ('export_onnx', ['{demo}', '--out', '{tmp}/m.onnx', '--batch-size', '0'], r'--batch-size/--batch_size: must be an integer >= 1'),
    ('export_onnx', ['{demo}', '{other_ckpt}', '--out', '{tmp}/m.onnx', '--no-latency', '--img_size', '64'],
     r"does not fit .*stages\.2\.blocks\.6"),
    ('export_onnx', ['{demo}', '--out', '{blocked}/m.onnx', '--no-latency', '--img_size', '64'], r'--out .*blocked is a file'),
    ('check_precision', ['{demo}', '--random', '--img_size', '0'], r'--img_size/--img-size: must be an integer >= 1'),
    ('check_precision', ['{demo}', '--random', '--pruning-ratios', '[0.1, 0.2]'], r'has 2 stages'),
    ('check_precision', ['{demo}', '{other_ckpt}', '--random', '--img_size', '64', '--num-images', '1'],
     r"does not fit .*stages\.2\.blocks\.6"),
    # ---------------------------------------------------------------- search
    ('search', ['{demo}', '{ckpt}', '--max', '40', '--img_size', '0'], r'--img_size must be positive, got 0'),
    ('search', ['{demo}', '{ckpt}', '--max', '40', '--batch-size', '0'], r'--batch-size must be positive, got 0'),
    ('search', ['{demo}', '{ckpt}', '--max', 'nan'], r"--max: .*'nan'"),
    ('search', ['{demo}', '{ckpt}', '--max', 'fast'], r"--max: .*'fast'"),
    ('search', ['{demo}', '{ckpt}', '--max', '0x'], r'--max'),
    ('search', ['{demo}', '{ckpt}', '--budgets', '0'], r'--budgets'),
    ('search', ['{demo}', '{ckpt}', '--budgets', '30', '30'], r'--budgets must be strictly ascending'),
    ('search', ['{demo}', '{ckpt}', '--max', '40', '--cfg-options', 'pruning_ratios=1.5'], RANGE),
    ('search', ['{demo}', '{other_ckpt}', '--max', '40', '--data', '{data}'], r"does not fit .*stages\.2\.blocks\.6"),
    ('search', ['{demo}', '{ckpt}', '--max', '40', '--data', '{missing}'], r'missing'),
    ('search', ['{demo}', '{ckpt}', '--max', '40', '--data', '{empty}'], r'empty'),
    ('search', ['{demo}', '{ckpt}', '--max', '40', '--data', '{data}', '--work-dir', '{blocked}/w'],
     r'--work-dir .*blocked/w: cannot create (the|its) directory: .*blocked is a file'),
    ('search', ['{demo}', '{missing}/ckpt.pth', '--max', '40'], r'missing'),
    # ---------------------------------------------------------------- test / train
    ('test', ['{demo}', '{other_ckpt}', '--eval', 'bbox', '--data', '{data}'], r"does not fit .*stages\.2\.blocks\.6"),
    ('test', ['{demo}', '{ckpt}', '--eval', 'bbox', '--data', '{missing}'], r'missing'),
    ('test', ['{demo}', '{ckpt}', '--eval', 'bbox', '--data', '{empty}'], r'empty'),
    ('test', ['{demo}', '{ckpt}', '--eval', 'bbox', '--data', '{data}', '--cfg-options', 'pruning_ratios=nan'],
     RANGE),
    ('test', ['{demo}', '{ckpt}', '--eval', 'bbox', '--data', '{data}', '--work-dir', '{blocked}/w'],
     r'--work-dir .*blocked is a file'),
    ('test', ['{demo}', '{ckpt}', '--eval', 'mIoU', '--data', '{data}'], r'mIoU'),
    ('test', ['{demo}', '{ckpt}', '--out', '{tmp}/r.json', '--data', '{data}'], r'\.pkl'),
    ('train', ['{dense}', '--data', '{missing}', '--work-dir', '{tmp}/w'], r'missing'),
    ('train', ['{dense}', '--data', '{empty}', '--work-dir', '{tmp}/w'], r'empty'),
    ('train', ['{dense}', '--data', '{data}', '--work-dir', '{blocked}/w'], r'work_dir .*blocked is a file'),
    ('train', ['{demo}', '--data', '{data}', '--work-dir', '{tmp}/w', '--cfg-options', 'load_from=None',
              'pruning_ratios=[0.1,0.2]'],
     r'has 2 stages'),
    ('train', ['{demo}', '--data', '{data}', '--work-dir', '{tmp}/w', '--cfg-options', 'load_from=None',
              'pruning_ratios=-1'], RANGE),
    ('train', ['{dense}', '--data', '{data}', '--work-dir', '{tmp}/w', '--resume-from', '{missing}/a.pth'],
     r'--resume-from .* does not exist'),
    # ---------------------------------------------------------------- analysis and data
    ('visualize_sparsity', ['{demo}', '{ckpt}', '{missing}/a.jpg', '--out', '{tmp}/v.png'], r'missing'),
    ('visualize_sparsity', ['{demo}', '{ckpt}', '{image}', '--out', '{tmp}/v.png', '--pruning-ratios', '2'], RANGE),
    ('visualize_sparsity', ['{demo}', '{other_ckpt}', '{image}', '--out', '{tmp}/v.png', '--pruning-ratios', '0.5'],
     r'stages\.2\.blocks\.6'),
    ('visualize_sparsity', ['{demo}', '{ckpt}', '{image}', '--out', '{blocked}/v.png'], r'--out .*blocked is a file'),
    ('analyze_windows', ['{demo}', '{ckpt}', '--ratios', 'nan', '--data', '{data}'], r'--ratios: must be'),
    ('analyze_windows', ['{demo}', '{ckpt}', '--ratios', '1.5', '--data', '{data}'], r'--ratios: must be'),
    ('analyze_windows', ['{demo}', '{ckpt}', '--num-images', '0', '--data', '{data}'], r'--num-images: must be'),
    ('analyze_windows', ['{demo}', '{other_ckpt}', '--ratios', '0.5', '--data', '{data}'], r'stages\.2\.blocks\.6'),
    ('analyze_windows', ['{demo}', '{ckpt}', '--ratios', '0.5', '--data', '{missing}'], r'missing'),
    ('make_synthetic_data', ['--out', '{tmp}/d', '--img-size', '0'], r'img_size must be an integer >= 32, got 0'),
    ('make_synthetic_data', ['--out', '{tmp}/d', '--img-size', '-64'], r'img_size must be an integer >= 32, got -64'),
    ('make_synthetic_data', ['--out', '{tmp}/d', '--num-train', '0'], r'num_train must be a positive integer, got 0'),
    ('make_synthetic_data', ['--out', '{tmp}/d', '--num-val', '-1'], r'num_val must be a positive integer, got -1'),
    ('make_synthetic_data', ['--out', '{blocked}/d', '--num-train', '1', '--num-val', '1', '--img-size', '64'],
     r'the data root .*blocked/d: cannot create (the|its) directory: .*blocked is a file'),
    ('convert_ckpt', ['{missing}/a.pth', '{tmp}/b.pth'], r'does not exist'),
]


def case_id(case) -> str:
    tool, argv, _ = case
    return f"{tool}:{' '.join(a.replace('{', '').replace('}', '') for a in argv)}"[:90]


@pytest.fixture(scope='module')
def paths(tmp_path_factory, search_demo, synthetic_coco):
    """The placeholders' values (see the module docstring); ``{data}`` arguments become ``--cfg-options`` of the
    synthetic data, ``--data`` is this test's own shorthand for it."""
    import torch
    from mmcv import Config
    from mmdet.models import build_detector

    from sparsevit.utils.config import apply_sparsevit_cfg
    base = tmp_path_factory.mktemp('fuzz')
    cfg = Config.fromfile(DEMO)
    cfg.model.backbone.depths = [2, 2, 18, 2]
    cfg.pruning_ratios = None
    apply_sparsevit_cfg(cfg)
    torch.manual_seed(0)
    other = str(base / 'swin_s_depths.pth')
    torch.save(dict(state_dict=build_detector(cfg.model).state_dict()), other)
    os.makedirs(base / 'empty')
    blocker = base / 'blocked'
    blocker.write_text('not a directory')
    image = sorted(os.listdir(osp.join(synthetic_coco, 'val')))[0]
    return dict(demo=DEMO, dense=DENSE, seg=SEG, ckpt=search_demo[1], other_ckpt=other, data=synthetic_coco,
                missing=str(base / 'missing'), empty=str(base / 'empty'), blocked=str(blocker),
                image=osp.join(synthetic_coco, 'val', image))


_TOOLS = {}


def tool(name: str):
    if name not in _TOOLS:
        _TOOLS[name] = load_tool(name)
    return _TOOLS[name]


def expand(argv, values: dict, tmp: str) -> list:
    """Fill the placeholders; ``--data ROOT`` becomes the ``--cfg-options`` that point the demo config at ROOT."""
    from sparsevit.datasets.synthetic import synthetic_cfg_options
    out = [a.format(tmp=tmp, **values) for a in argv]
    if '--data' in out:
        i = out.index('--data')
        root = out[i + 1]
        options = [f'{k}={v}' for k, v in synthetic_cfg_options(root).items()]
        rest = out[:i] + out[i + 2:]
        if '--cfg-options' in rest:
            j = rest.index('--cfg-options')
            rest[j + 1:j + 1] = options
        else:
            rest += ['--cfg-options', *options]
        out = rest
    return out


def call(name: str, argv: list, capsys, monkeypatch) -> tuple:
    """``(exit status, stdout, stderr)`` of ``tools/NAME.py`` run in this process (``sys.argv[0]`` as a user's, so
    argparse names the tool)."""
    monkeypatch.setattr(sys, 'argv', [osp.join('tools', f'{name}.py')])
    try:
        status = tool(name).main(argv)
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    status = 0 if status is None or (isinstance(status, dict)) else status
    return status, captured.out, captured.err


def files_under(path: str) -> set:
    return {osp.relpath(osp.join(d, f), path) for d, _, names in os.walk(path) for f in names}


@pytest.mark.parametrize('case', CASES, ids=case_id)
def test_bad_input_one_line(case, paths, tmp_path, capsys, monkeypatch):
    name, argv, pattern = case
    before = files_under(str(tmp_path))
    status, out, err = call(name, expand(argv, paths, str(tmp_path)), capsys, monkeypatch)
    lines = [line for line in err.splitlines() if line.strip()]
    assert status not in (0, None), (out, err)
    assert 'Traceback' not in err + out, err
    assert len(lines) == 1 and lines[0].startswith(f'{name}.py: error: '), err
    assert re.search(pattern, lines[0]), (pattern, lines[0])
    left = files_under(str(tmp_path)) - before
    assert not {f for f in left if f.endswith(('.json', '.onnx', '.png', '.pth', '.txt'))}, left


@pytest.mark.parametrize('size', [['32'], ['33'], ['32', '48']], ids=['32x32', 'odd_33', '32x48'])
def test_tiny_and_odd_images_run(size, capsys, monkeypatch):
    """Stage 3 of a 32x32 image is one token (a window padded from 1x1); an odd size is padded to the patch."""
    status, out, err = call('measure_latency', [DEMO, '--img_size', *size, '--batch-size', '1', '--pruning-ratios',
                                                '0.5', '--no-progress', *FAST], capsys, monkeypatch)
    assert status == 0, err
    assert re.fullmatch(r'latency of SparseViT \(\d+x\d+, batch 1, cpu, fp32\): \d+\.\d+ ms', out.strip().splitlines()[-1]), out
