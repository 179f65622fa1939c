"""Half precision (autocast) cannot change which windows the backbone keeps, except through its stage inputs.

* On the same stage input, fp32 and autocast (bf16 on CPU; fp16 and bf16 on CUDA) keep identical windows: the
  importance, the scores and the ranking are computed in fp32. A mutation check (importance in bf16, as a naive
  implementation would do) shows the test catches the difference.
* Over a whole forward, bf16 rounding upstream changes the stage inputs, so windows may change sides at near-ties
  only: the agreement of kept windows is high and every flip is close to the keep boundary.
"""
import dataclasses
import json
import os.path as osp
import re

import pytest
import torch

from sparsevit.analysis.selection_agreement import (autocast, compare_selections, merge_comparisons, record_selections,
                                                    stage_selection)
from sparsevit.deploy.build import build_sparse_backbone
from sparsevit.models import SparseSwinTransformer
from sparsevit.ops import window as W
from sparsevit.utils.config import load_config

from helpers import build_sparse, images, randomize_, selection_record
from tool_loader import load_tool

# block 0 of every stage is pruned, so the whole stage's selection depends on the stage input alone
STAGE_RATIOS = [[.5, .6], [.3, .5], [.2, .2, .4, .4, .5, .5], [.5, .5]]
STAGE_HW = [(50, 65), (25, 33), (13, 17), (7, 9)]  # padded at every stage
CUDA = torch.cuda.is_available()
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def near_tied_stage_input(stage: int, hw, seed: int = 0) -> torch.Tensor:
    """A stage input whose window scores differ by far less than half-precision resolution, exactly representable
    in bf16 and fp16.

    Every value is +-1, except that in window ``w`` (regular grid) the first ``e_w`` tokens (``e_w`` random in
    0..49) have channel 0 at +-(1 + 2^-7): ``mean_c |x|`` then differs by ``2^-7 / C`` per token, which fp32
    resolves and a bf16 importance map rounds away.
    """
    gen = torch.Generator().manual_seed(seed)
    c = 16 * 2 ** stage
    x = torch.randint(0, 2, (2, *hw, c), generator=gen).float() * 2 - 1
    rows, cols = torch.arange(hw[0]), torch.arange(hw[1])
    window = (rows[:, None] // 7) * 100 + cols[None, :] // 7  # [H, W] window id (regular grid)
    token = (rows[:, None] % 7) * 7 + cols[None, :] % 7  # [H, W] token within its window
    extra = torch.randint(0, 50, (2, 100 * 100), generator=gen)[:, window]  # [2, H, W]
    x[..., 0] *= torch.where(token < extra, 1 + 2 ** -7, 1.0)
    return x


def assert_same_selections(expected, actual, where: str) -> None:
    for j, (e, a) in enumerate(zip(expected, actual)):
        if e is None:
            assert a is None
            continue
        assert torch.equal(e.keep, a.keep), f'{where} block {j}: kept windows differ'
        assert torch.equal(e.scores, a.scores), f'{where} block {j}: scores differ'


def stage_checks(model: SparseSwinTransformer, device: str, dtype: torch.dtype) -> None:
    for i, hw in enumerate(STAGE_HW):
        x = near_tied_stage_input(i, hw).to(device)
        expected = stage_selection(model, i, x)
        for as_dtype in (torch.float32, dtype):  # the stage map may arrive in either dtype under autocast
            actual = stage_selection(model, i, x.to(as_dtype), dtype)
            assert_same_selections(expected, actual, f'stage {i} ({as_dtype} input)')


def test_same_stage_input_same_windows_bf16_cpu():
    stage_checks(build_sparse(STAGE_RATIOS), 'cpu', torch.bfloat16)


@pytest.mark.skipif(not CUDA, reason='needs a CUDA GPU')
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_same_stage_input_same_windows_cuda(dtype):
    stage_checks(build_sparse(STAGE_RATIOS).cuda(), 'cuda', dtype)


def test_half_precision_importance_would_change_the_windows(monkeypatch):
    """Mutation check: with the importance map in bf16 (not fp32) the near-ties above change sides."""
    model = build_sparse(STAGE_RATIOS)
    x = near_tied_stage_input(0, STAGE_HW[0])
    expected = stage_selection(model, 0, x)

    def bf16_importance(x, pad_map):
        imp = x.detach().to(torch.bfloat16).abs().mean(-1)
        return imp.masked_fill(pad_map, 0).float()

    monkeypatch.setattr(SparseSwinTransformer, '_importance', staticmethod(bf16_importance))
    actual = stage_selection(model, 0, x, torch.bfloat16)
    assert not torch.equal(expected[0].keep.sort(1).values, actual[0].keep.sort(1).values)


@pytest.mark.parametrize('dtype', [None, torch.bfloat16])
def test_shift_mask_separates_regions_in_half_precision(dtype):
    """In a boundary window, tokens of other regions do not reach a token's output, also under bf16 autocast."""
    model = build_sparse(STAGE_RATIOS)
    msa = model.stages[0].blocks[1].attn.w_msa
    mask = W.shift_attn_mask(14, 14, 7, 3)[3:4]  # [1, N, N] the corner window: four regions
    other = mask[0, 0].ne(0)  # [N] tokens outside token 0's region
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 49, 16, generator=gen)
    perturbed = torch.where(other[None, :, None], x + torch.randn(x.shape, generator=gen), x)
    with torch.no_grad(), autocast('cpu', dtype):
        out, out_perturbed = (model._attention(msa, t, mask, 0) for t in (x, perturbed))
    assert out.dtype == (dtype or torch.float32)
    torch.testing.assert_close(out[:, ~other], out_perturbed[:, ~other], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(out[:, other], out_perturbed[:, other], atol=1e-2)


def test_whole_model_bf16_keeps_the_fp32_windows_except_near_ties():
    """Random images through a random-weight model, fp32 vs bf16 autocast on CPU."""
    model = build_sparse(STAGE_RATIOS, seed=1)
    img = images(4, 200, 260, seed=2)
    fp32, _ = record_selections(model, img)
    bf16, stage_inputs = record_selections(model, img, torch.bfloat16)
    result = compare_selections(fp32, bf16)
    print(f"bf16 vs fp32: {result['agree']}/{result['kept']} kept windows agree ({100 * result['agreement']:.2f} %), "
          f"{result['flips']} flips, largest relative score gap of a flip {result['max_flip_gap']:.4f}")
    assert result['kept'] > 400
    assert result['agreement'] >= 0.97, result
    assert result['max_flip_gap'] < 0.03, result
    for i, x in enumerate(stage_inputs):  # on the bf16 run's own stage inputs, fp32 keeps exactly its windows
        assert_same_selections(stage_selection(model, i, x, torch.bfloat16), stage_selection(model, i, x.float()),
                               f'stage {i}')


def test_compare_selections_counts_flips_and_gaps():
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    ref = [[selection_record([[0, 1]], (1, 4), scores=scores), None]]
    same = compare_selections(ref, ref)
    assert same['agreement'] == 1.0 and same['flips'] == 0 and same['max_flip_gap'] == 0.0
    other = [[selection_record([[0, 2]], (1, 4), scores=scores), None]]
    result = compare_selections(ref, other)
    assert result['kept'] == 2 and result['agree'] == 1 and result['flips'] == 1
    assert result['max_flip_gap'] == pytest.approx(0.5 / 2.5)  # windows 1 (3.0) and 2 (2.0) around boundary 2.5
    assert result['per_stage'] == [dict(stage=0, kept=2, agree=1, flips=1)]



def test_merged_batches_agree_with_one_comparison_of_all_images():
    """tools/check_precision.py compares batch by batch: the merge is the comparison of all images at once."""
    def sel(keep, scores):
        return selection_record(keep, (1, 4), scores=scores)

    scores = [[4.0, 3.0, 2.0, 1.0]], [[1.0, 2.0, 6.0, 8.0]]
    ref = [[[sel([[0, 1]], scores[0]), None], [sel([[0]], scores[0])]],
           [[sel([[3, 2]], scores[1]), None], [sel([[3]], scores[1])]]]
    other = [[[sel([[0, 2]], scores[0]), None], [sel([[0]], scores[0])]],
             [[sel([[3, 2]], scores[1]), None], [sel([[2]], scores[1])]]]
    merged = merge_comparisons([compare_selections(r, o) for r, o in zip(ref, other)])

    def both(runs):  # the two batches as one batch of two images
        return [[None if a is None else dataclasses.replace(a, keep=torch.cat([a.keep, b.keep]),
                                                             scores=torch.cat([a.scores, b.scores]))
                 for a, b in zip(sa, sb)] for sa, sb in zip(*runs)]

    assert merged == compare_selections(both(ref), both(other))
    assert (merged['kept'], merged['agree'], merged['flips']) == (6, 4, 2)
    assert merged['per_stage'] == [dict(stage=0, kept=4, agree=3, flips=1), dict(stage=1, kept=2, agree=1, flips=1)]

# ----------------------------------------------------------------------------------------------------------------
# tools/check_precision.py
# ----------------------------------------------------------------------------------------------------------------
DEMO = 'configs/demo/mask_rcnn_sparsevit_demo.py'
TOOL_RATIOS = '[[0.5, 0.5], [0.3, 0.3], [0.2, 0.2, 0.4, 0.4, 0.5, 0.5], [0, 0]]'


def demo_checkpoint(tmp_path) -> str:
    """A detector checkpoint with random (randomised) backbone weights of the demo architecture."""
    backbone, _ = build_sparse_backbone(load_config(osp.join(ROOT, DEMO)))
    state = {f'backbone.{k}': v for k, v in randomize_(backbone, 3).state_dict().items()}
    state['neck.fpn_convs.0.conv.weight'] = torch.zeros(1)
    path = str(tmp_path / 'demo.pth')
    torch.save(dict(state_dict=state, meta=dict(epoch=1)), path)
    return path


def test_check_precision_tool_on_test_images(tmp_path, synthetic_coco, capsys):
    tool = load_tool('check_precision')
    out = tmp_path / 'precision.json'
    options = [f'data.test.ann_file={synthetic_coco}/annotations/instances_val.json',
               f'data.test.img_prefix={synthetic_coco}/val/']
    rc = tool.main([osp.join(ROOT, DEMO), demo_checkpoint(tmp_path), '--dtype', 'bf16', '--num-images', '3',
                    '--pruning-ratios', TOOL_RATIOS, '--json', str(out), '--cfg-options', *options])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    result = json.loads(out.read_text())
    assert result['num_images'] == 3 and result['images'] == 'test set' and result['img_hw'] == [224, 224]
    assert result['kept'] == 3 * (2 * 32 + 2 * 11 + 3 + 3 + 2 + 2 + 2 + 2)  # floor(nW * (1 - r)) per block
    assert result['agreement'] >= 0.97 and result['same_input_mismatches'] == 0
    assert 'kept windows that agree' in printed and 'identical' in printed


@pytest.mark.parametrize('argv,fragment', [
    (['--random', '--num-images', '1', '--img_size', '64'], 'prunes nothing'),
    (['--random', '--dtype', 'fp16'] if not CUDA else ['--random', '--pruning-ratios', '2'], 'fp16|range'),
    (['--random', '--pruning-ratios', '[0.1, 0.2]'], 'stages'),
    (['--pruning-ratios', '0.5', '--cfg-options', 'data.test.ann_file=missing.json'], 'ann_file .*missing.json does not exist; create the test set or use --random'),
])
def test_check_precision_tool_bad_input(argv, fragment, capsys):
    rc = load_tool('check_precision').main([osp.join(ROOT, DEMO), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and re.search(fragment, err), err


def test_check_precision_tool_rejects_a_foreign_checkpoint(tmp_path, capsys):
    path = tmp_path / 'other.pth'
    torch.save(dict(state_dict={'backbone.stages.0.blocks.0.norm1.weight': torch.ones(3)}), path)
    rc = load_tool('check_precision').main([osp.join(ROOT, DEMO), str(path), '--random', '--pruning-ratios', '0.5'])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "does not fit the config's backbone" in err and len(err.splitlines()) == 1
