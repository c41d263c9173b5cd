"""Whether a data-movement op lists its source's elements in another memory sequence
(``layout/cost.py``): the slice shortcut agrees with replaying the slice on element indices."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from layoutopt.ir.perm import Perm
from layoutopt.layout.cost import _freeze, _sequence_changed_by_replay, sequence_changed

aten = torch.ops.aten


def _strided(shape, order):
    """An empty tensor of ``shape`` laid out in dim ``order`` (outermost first)."""
    base = torch.empty([shape[d] for d in order])
    return base.permute(Perm(tuple(order)).inverse().dims)


@settings(max_examples=150, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=3, max_size=4), data=st.data())
def test_slice_shortcut_agrees_with_the_index_replay(shape, data):
    rank = len(shape)
    dim = data.draw(st.integers(0, rank - 1))
    start = data.draw(st.integers(0, shape[dim] - 1))
    end = data.draw(st.integers(start + 1, shape[dim]))
    step = data.draw(st.integers(1, 2))
    in_order = data.draw(st.permutations(range(rank)))
    out_order = data.draw(st.permutations(range(rank)))
    source = _strided(shape, in_order)
    sliced = aten.slice.Tensor(source, dim, start, end, step)
    out = _strided(tuple(sliced.shape), out_order)
    args = (source, dim, start, end, step)
    replayed = _sequence_changed_by_replay(aten.slice.Tensor, tuple(shape), tuple(in_order), tuple(out_order), -1,
                                           _freeze(args, {}, source))
    assert sequence_changed(aten.slice.Tensor, args, {}, source, out, -1) == replayed


def test_a_channel_run_of_an_nhwc_tensor_kept_nhwc_is_the_same_sequence():
    source = _strided((1, 8, 3, 3), (0, 2, 3, 1))
    run = _strided((1, 3, 3, 3), (0, 2, 3, 1))
    nchw = _strided((1, 3, 3, 3), (0, 1, 2, 3))
    args = (source, 1, 2, 5)
    assert not sequence_changed(aten.slice.Tensor, args, {}, source, run, -1)
    assert sequence_changed(aten.slice.Tensor, args, {}, source, nchw, -1)
