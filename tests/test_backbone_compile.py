"""``torch.compile(backbone, fullgraph=True)``: no graph break, compiled output equals eager, recompiles only when
the pruning ratios or the input size change.

Kept fast: a tiny model; graph breaks are counted by ``torch._dynamo.explain`` (tracing only); the numeric checks use
the ``aot_eager`` backend (AOTAutograd's functionalisation of the in-place window writes, no code generation) and
inductor once, on one small padded configuration.
"""
import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounter

from helpers import build_sparse, images

CONFIGS = {
    'dense': (None, (112, 112)),
    'cfg1': ([[0.3, 0.3], [0, 0], [0.1, 0.1, 0.2, 0.2, 0.2, 0.2], [0, 0]], (112, 112)),
    # padding in every stage (tokens 25x35, 13x18, 7x9, 4x5), dense and pruned blocks mixed, shifted blocks pruned
    'mixed_padded': ([[.4, .5], [0, .4], [.2, .2, .4, .4, .7, .7], [0, .5]], (100, 140)),
}
SMALL_DEPTHS = (2, 2, 2, 2)
SMALL_CFG1 = [[0.3, 0.3], [0, 0], [0.1, 0.2], [0, 0]]  # cfg1's pattern on the shallower model


def assert_outputs_close(actual, expected, rtol: float = 1e-5) -> None:
    """Every output within ``rtol`` of the expected one, relative to its largest magnitude."""
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, f'output {i}'
        rel = float((a - e).abs().max() / e.abs().max())
        assert rel <= rtol, f'output {i}: relative difference {rel:.2e} > {rtol}'


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_no_graph_breaks(name):
    ratios, size = CONFIGS[name]
    model = build_sparse(ratios)
    with torch.no_grad():
        explanation = torch._dynamo.explain(model)(images(2, *size))
    reasons = [b.reason for b in explanation.break_reasons]
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1, reasons


def test_compiled_equals_eager_aot_eager():
    ratios, size = CONFIGS['mixed_padded']
    model = build_sparse(ratios)
    compiled = torch.compile(model, fullgraph=True, backend='aot_eager')
    img = images(2, *size)
    with torch.no_grad():
        assert_outputs_close(compiled(img), model(img))


def test_compiled_equals_eager_inductor():
    ratios = [[.4, .5], [0, .4], [.2, .4], [0, .5]]
    model = build_sparse(ratios, depths=SMALL_DEPTHS)
    compiled = torch.compile(model, fullgraph=True)
    img = images(2, 100, 140)
    with torch.no_grad():
        assert_outputs_close(compiled(img), model(img))


def test_recompiles_only_when_ratios_or_size_change():
    model = build_sparse(SMALL_CFG1, depths=SMALL_DEPTHS)
    counter = CompileCounter()
    compiled = torch.compile(model, fullgraph=True, backend=counter)  # default dynamic=None
    small, padded = images(1, 112, 112), images(1, 100, 140)
    with torch.no_grad():
        for img, frames in ((small, 1), (small, 1), (padded, 2), (padded, 2), (small, 2)):
            assert_outputs_close(compiled(img), model(img))
            assert counter.frame_count == frames, 'a recompile where nothing changed'
        model.set_pruning_ratios([[.7, .7], [.5, .5], [.2, .4], [0, 0]])
        out, expected = compiled(small), model(small)
        assert counter.frame_count == 3, 'new ratios must recompile'
        assert_outputs_close(out, expected)
        compiled(small)
        assert counter.frame_count == 3
    model.set_pruning_ratios(SMALL_CFG1)
    with torch.no_grad():
        previous = model(small)
    assert not torch.allclose(previous[0], out[0], atol=1e-3), 'the new ratios must give a new result'


def test_random_selection_does_not_compile():
    """The ablation draws its windows from a per-call CPU generator: eager only (a documented limit)."""
    model = build_sparse(SMALL_CFG1, depths=SMALL_DEPTHS, window_selection='random')
    compiled = torch.compile(model, fullgraph=True, backend=CompileCounter())
    with torch.no_grad(), pytest.raises(Exception, match='random'):
        compiled(images(1, 112, 112))
