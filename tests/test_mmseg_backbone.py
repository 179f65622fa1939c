"""The backbone in mmsegmentation 0.30 (sparsevit.models.seg_registry): registered into mmseg's ``BACKBONES``, an
mmseg ``SwinTransformer`` state dict loads into it unchanged, at zero sparsity with ``pad_before_norm=False`` it
equals mmseg's Swin (random LayerNorms and bias tables, padded sizes), and the intent of mmseg's own Swin
backbone unit test holds for it (shapes at odd sizes, frozen stages, checkpointing, argument checks)."""
import pytest
import torch

mmseg = pytest.importorskip('mmseg')

from mmcv import ConfigDict  # noqa: E402
from mmseg.models import build_backbone  # noqa: E402
from mmseg.models.backbones import SwinTransformer as SegSwin  # noqa: E402
from mmdet.models.backbones.swin import SwinBlock  # noqa: E402

from sparsevit.models import SparseSwinTransformer  # noqa: E402
from sparsevit.models.seg_registry import NAMES, register_in_mmseg  # noqa: E402

from helpers import SMALL, build_sparse, images, randomize_  # noqa: E402

TOL = dict(atol=2e-5, rtol=2e-5)  # fp32; fused attention reorders sums


def seg_twin(sparse: SparseSwinTransformer, **kwargs) -> SegSwin:
    """mmseg's ``SwinTransformer`` with the same architecture and our weights (strictly loaded), in eval mode."""
    swin = SegSwin(**dict(SMALL, **kwargs))
    state = sparse.state_dict()
    if 'absolute_pos_embed' in state:  # ours [1, C, H, W], mmseg's [1, N, C]
        state['absolute_pos_embed'] = state['absolute_pos_embed'].flatten(2).transpose(1, 2)
    swin.load_state_dict(state, strict=True)
    swin.eval()  # mmseg's Swin.train() returns None
    return swin


def test_registered_in_mmseg_backbones():
    assert register_in_mmseg() is True  # idempotent: already registered on import
    for name in NAMES:
        model = build_backbone(ConfigDict(type=name, pruning_ratios=0.5, **SMALL))
        assert type(model) is SparseSwinTransformer and model.pruning_ratios[0] == (0.5, 0.5)


def test_mmseg_state_dict_loads_unchanged():
    seg = randomize_(SegSwin(**SMALL), seed=3)
    ours = SparseSwinTransformer(**SMALL)
    ours.load_state_dict(seg.state_dict(), strict=True)  # same keys and shapes
    for key, value in seg.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, atol=0, rtol=0)
    # with an absolute position embedding mmseg stores it flat ([1, N, C]); it loads into ours ([1, C, H, W])
    kwargs = dict(use_abs_pos_embed=True, pretrain_img_size=224)
    seg = randomize_(SegSwin(**dict(SMALL, **kwargs)), seed=4)
    ours = SparseSwinTransformer(**dict(SMALL, **kwargs))
    ours.load_state_dict(seg.state_dict(), strict=True)
    flat = ours.absolute_pos_embed.flatten(2).transpose(1, 2)
    torch.testing.assert_close(flat, seg.absolute_pos_embed, atol=0, rtol=0)


@pytest.mark.parametrize('size,batch,ratios', [
    ((224, 224), 1, None), ((200, 312), 2, None), ((511, 513), 1, 0.0),
    ((112, 137), 2, [[0, 0], [0, 0], [0] * 6, [0, 0]]),
])
def test_zero_sparsity_equals_mmseg(size, batch, ratios):
    sparse = build_sparse(ratios, seed=batch, pad_before_norm=False)  # every parameter random (LN, bias tables)
    swin = seg_twin(sparse)
    img = images(batch, *size, seed=5)
    with torch.no_grad():
        outs, expected = sparse(img), swin(img)
    assert len(outs) == len(expected) == 4
    for out, exp in zip(outs, expected):
        torch.testing.assert_close(out, exp, **TOL)


def test_zero_sparsity_equals_mmseg_with_abs_pos_embed():
    kwargs = dict(use_abs_pos_embed=True, pretrain_img_size=224)  # mmseg adds it without resizing: at 224 only
    sparse = build_sparse(None, pad_before_norm=False, **kwargs)
    swin = seg_twin(sparse, **kwargs)
    img = images(1, 224, 224)
    with torch.no_grad():
        for out, exp in zip(sparse(img), swin(img)):
            torch.testing.assert_close(out, exp, **TOL)


def test_pruned_output_differs_from_mmseg():
    """Guards the equality tests against a model that ignores its ratios."""
    sparse = build_sparse([[.5, .5], [0, 0], [0] * 6, [0, 0]], pad_before_norm=False)
    img = images(1, 224, 224)
    with torch.no_grad():
        assert not torch.allclose(sparse(img)[0], seg_twin(sparse)(img)[0], atol=1e-3)


# ----------------------------------------------------------------------------------------------------------------
# The intent of mmseg's own Swin backbone test (tests/test_models/test_backbones/test_swin.py), on ours
# ----------------------------------------------------------------------------------------------------------------
def test_mmseg_swin_argument_checks():
    with pytest.raises(TypeError):
        SparseSwinTransformer(pretrained=123)  # pretrained must be a str or None
    with pytest.raises(AssertionError):
        SparseSwinTransformer(strides=(2, 2, 2, 2), patch_size=4)  # non-overlapping patches: stride = patch size
    with pytest.raises(AssertionError):
        SparseSwinTransformer(pretrain_img_size=(224, 224, 224))


@pytest.mark.parametrize('ratios', [None, 0.5])
@pytest.mark.parametrize('size,shapes', [
    ((32, 32), [(8, 8), (4, 4), (2, 2), (1, 1)]),
    ((31, 31), [(8, 8), (4, 4), (2, 2), (1, 1)]),
    ((112, 137), [(28, 35), (14, 18), (7, 9), (4, 5)]),
])
def test_mmseg_swin_output_shapes(size, shapes, ratios):
    torch.manual_seed(0)
    model = SparseSwinTransformer(embed_dims=16, num_heads=(1, 2, 4, 8), pruning_ratios=ratios).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert [tuple(o.shape) for o in outs] == [(1, 16 * 2 ** i, *hw) for i, hw in enumerate(shapes)]


def test_mmseg_swin_abs_pos_embed_patch_norm_frozen_and_checkpointing():
    temp = torch.randn(1, 3, 224, 224)
    small = dict(embed_dims=16, num_heads=(1, 2, 4, 8))
    model = SparseSwinTransformer(pretrain_img_size=224, use_abs_pos_embed=True, **small)
    model.init_weights()
    model(temp)
    SparseSwinTransformer(patch_norm=False, **small)(temp)
    for kwargs in ({}, dict(use_abs_pos_embed=True)):
        model = SparseSwinTransformer(frozen_stages=4, **small, **kwargs)
        model.train()
        assert not any(p.requires_grad for p in model.parameters())
    model = SparseSwinTransformer(with_cp=True, pruning_ratios=0.5, **small)
    blocks = [m for m in model.modules() if isinstance(m, SwinBlock)]
    assert len(blocks) == 12 and all(m.with_cp for m in blocks)
    model.init_weights()
    model.train()
    outs = model(torch.randn(1, 3, 56, 56))
    sum(o.sum() for o in outs).backward()
    assert model.patch_embed.projection.weight.grad is not None
