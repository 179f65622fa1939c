"""Pure window functions against the pad/roll/partition they replace; the window selectors."""
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from sparsevit.ops import window as W
from sparsevit.ops.selection import L2Selector, RandomSelector, TopKSelector, make_selectors


def partition(x, ws):
    """[B, H, W, C] -> [B, nW, N, C], the slow obvious way."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, -1, ws * ws, c)


def test_token_index_equals_roll_and_partition():
    x = torch.randn(2, 14, 21, 3)
    for shift in (0, 3):
        idx = W.window_token_index(14, 21, 7, shift)
        ref = partition(torch.roll(x, (-shift, -shift), (1, 2)), 7)
        assert torch.equal(x.reshape(2, -1, 3)[:, idx], ref)


def test_gather_scatter_roundtrip_touches_only_selected():
    x = torch.randn(3, 14, 14, 4)
    idx = W.window_token_index(14, 14, 7, 3)
    flat = torch.tensor([0, 5, 6, 11])  # image 0 windows 0; image 1 windows 1, 2; image 2 window 3
    rows = W.token_rows(flat, idx, 4, 14 * 14)
    win = W.gather_windows(x, rows, 49)
    ref = partition(torch.roll(x, (-3, -3), (1, 2)), 7).reshape(12, 49, 4)[flat]
    assert torch.equal(win, ref)
    y = x.clone()
    W.scatter_windows_(y, rows, torch.zeros_like(win))
    touched = torch.zeros(3 * 196, dtype=torch.bool)
    touched[rows] = True
    assert torch.equal(y.reshape(-1, 4)[~touched], x.reshape(-1, 4)[~touched])
    assert (y.reshape(-1, 4)[touched] == 0).all()


def test_scores_rank_and_keep():
    imp = torch.rand(2, 14, 14)
    idx = W.window_token_index(14, 14, 7, 0)
    scores = W.window_scores(imp, idx)
    assert_close(scores, partition(imp.unsqueeze(-1), 7).squeeze(-1).norm(dim=-1))
    order = W.rank_windows(scores)
    assert (scores.gather(1, order)[:, :-1] >= scores.gather(1, order)[:, 1:]).all()
    assert W.flat_window_index(order, 2, 4).tolist() == (order[:, :2] + torch.tensor([[0], [4]])).reshape(-1).tolist()
    assert [W.num_kept(100, r) for r in (0.0, 0.3, 0.9, 0.99)] == [100, 70, 10, 1]
    assert W.num_kept(576, 0.6) == 230


def test_shift_mask_and_plain_first():
    mask = W.shift_attn_mask(14, 14, 7, 3)
    assert mask.shape == (4, 49, 49) and not mask[0].any() and mask[3].any()
    boundary = mask.ne(0).flatten(1).any(1)
    assert boundary.tolist() == [False, True, True, True]
    flat, n_plain = W.split_plain_first(torch.tensor([3, 4, 1, 0]), boundary, 4)
    assert n_plain == 2 and set(flat[:2].tolist()) == {4, 0}
    pad = W.padded_token_mask(10, 12, 14, 14, W.window_token_index(14, 14, 7, 0))
    assert int(pad.sum()) == 14 * 14 - 10 * 12
    assert torch.equal(F.pad(torch.ones(10, 12), (0, 2, 0, 4)).reshape(-1)[W.window_token_index(14, 14, 7, 0)] == 0,
                       pad.squeeze(-1))


def test_plain_first_windows_from_the_grid():
    for nwh, nww, batch in ((2, 2, 1), (3, 5, 2), (1, 4, 3), (4, 1, 2)):
        boundary, count = W.boundary_windows(nwh, nww, 3)
        mask = W.shift_attn_mask(nwh * 7, nww * 7, 7, 3).ne(0).flatten(1).any(1)
        assert torch.equal(boundary, mask) and count == int(mask.sum())
        flat, n_plain = W.plain_first_windows(nwh, nww, 3, batch)
        expected, expected_plain = W.split_plain_first(torch.arange(batch * nwh * nww), boundary, nwh * nww)
        assert n_plain == expected_plain and torch.equal(flat, expected)
        flat, n_plain = W.plain_first_windows(nwh, nww, 0, batch)
        assert torch.equal(flat, torch.arange(batch * nwh * nww)) and n_plain == flat.numel()
        scores = torch.rand(batch, nwh * nww)
        k = nwh * nww // 2
        assert torch.equal(W.top_windows(scores, k), W.rank_windows(scores)[:, :k])
        assert torch.equal(W.flat_window_index(W.top_windows(scores, k), k, nwh * nww),
                           W.flat_window_index(W.rank_windows(scores), k, nwh * nww))
        assert W.top_windows(scores, 0).shape == (batch, 0)


def test_shift_mask_equals_mmdet_slices():
    for hp, wp, ws, shift in ((14, 21, 7, 3), (7, 7, 7, 3), (7, 14, 7, 3), (10, 15, 5, 2)):
        img = torch.zeros(hp, wp)
        cnt = 0
        for h in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):  # mmdet's ShiftWindowMSA
            for w in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
                img[h, w] = cnt
                cnt += 1
        win = partition(img[None, :, :, None], ws).reshape(-1, ws * ws)
        expected = (win[:, None, :] - win[:, :, None]).ne(0).float() * -100.0
        assert torch.equal(W.shift_attn_mask(hp, wp, ws, shift), expected)


def test_selectors_eager_and_traced():
    importance = torch.rand(2, 14, 21, generator=torch.Generator().manual_seed(0))  # [B, Hp, Wp]
    index = W.window_token_index(14, 21, 7, 3)  # [nW, N], nW = 6
    where = (4, 2, 1)  # (call, stage, shifted)
    eager, traced = make_selectors('l2', 9)
    assert isinstance(eager, L2Selector) and isinstance(traced, TopKSelector)
    order, scores = eager(importance, index, 4, where)
    assert torch.equal(scores, W.window_scores(importance, index)) and scores.dtype == torch.float32
    assert torch.equal(order, W.rank_windows(scores))  # [B, nW]: later blocks keep a prefix
    top, top_scores = traced(importance, index, 4, where)
    assert torch.equal(top, order[:, :4]) and torch.equal(top_scores, scores)  # [B, k]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch.equal(eager(importance, index, 4, where)[1], scores), 'scores in fp32 under autocast'
    eager, traced = make_selectors('random', 9)
    assert isinstance(eager, RandomSelector)
    order, scores = eager(importance, index, 4, where)
    assert torch.equal(scores, W.random_window_scores(2, 6, (9, 4, 2, 1)))
    assert torch.equal(order, W.rank_windows(scores))
    with pytest.raises(RuntimeError, match="window_selection='random' runs eagerly only"):
        traced(importance, index, 4, where)
