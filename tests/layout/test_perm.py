"""The permutation algebra against torch.permute and real strides."""
import itertools

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from layoutopt.ir.perm import (
    Perm, channels_last_order, identity_order, layout_key, order_after_permute, order_before_permute, order_of,
    reshape_order, same_layout, strides_for,
)


@st.composite
def perms(draw, min_rank=1, max_rank=5):
    rank = draw(st.integers(min_rank, max_rank))
    return Perm(tuple(draw(st.permutations(range(rank)))))


@st.composite
def shapes_and_perms(draw):
    p = draw(perms())
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=p.rank, max_size=p.rank)))
    return shape, p


@given(shapes_and_perms(), st.data())
@settings(max_examples=150, deadline=None)
def test_then_composes_like_torch_permute(sp, data):
    shape, p = sp
    q = Perm(tuple(data.draw(st.permutations(range(p.rank)))))
    x = torch.arange(int(torch.tensor(shape).prod())).reshape(shape)
    assert torch.equal(x.permute(p.dims).permute(q.dims), x.permute(p.then(q).dims))
    assert p.apply(shape) == tuple(x.permute(p.dims).shape)


@given(perms())
def test_inverse_cancels(p):
    assert p.then(p.inverse()).is_identity()
    assert p.inverse().then(p).is_identity()


@given(shapes_and_perms(), st.data())
@settings(max_examples=150, deadline=None)
def test_order_after_permute_matches_strides(sp, data):
    shape, p = sp
    order = tuple(data.draw(st.permutations(range(len(shape)))))
    x = torch.empty_strided(shape, strides_for(shape, order))
    y = x.permute(p.dims)
    predicted = order_after_permute(order_of(shape, x.stride()), p)
    assert layout_key(y.shape, predicted) == layout_key(y.shape, order_of(y.shape, y.stride()))


@given(shapes_and_perms())
def test_strides_for_roundtrips_through_order_of(sp):
    shape, p = sp
    strides = strides_for(shape, p.dims)
    assert same_layout(shape, order_of(shape, strides), p.dims)
    x = torch.empty_strided(shape, strides)
    assert x.is_contiguous() == same_layout(shape, p.dims, identity_order(len(shape)))


def test_channels_last_orders_match_torch_memory_formats():
    x = torch.empty(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    assert order_of(x.shape, x.stride()) == channels_last_order(4)
    y = torch.empty(2, 3, 4, 5, 6).contiguous(memory_format=torch.channels_last_3d)
    assert order_of(y.shape, y.stride()) == channels_last_order(5)
    assert channels_last_order(3) == (0, 2, 1)
    assert channels_last_order(2) is None


def test_unit_dims_do_not_distinguish_layouts():
    assert same_layout((1, 8, 1, 1), identity_order(4), channels_last_order(4))
    assert not same_layout((1, 8, 2, 1), identity_order(4), channels_last_order(4))


def _memory(x: torch.Tensor, order) -> torch.Tensor:
    """The elements of ``x`` in the memory sequence of dim order ``order``."""
    return x.permute(tuple(order)).reshape(-1)


@st.composite
def reshapes(draw):
    """A shape, a dim order of it, and another shape with as many elements (dims split or merged)."""
    factors = draw(st.lists(st.sampled_from([1, 2, 3]), min_size=2, max_size=6))
    cut = draw(st.integers(1, len(factors) - 1))
    shape = (int(torch.tensor(factors[:cut]).prod()), *factors[cut:])
    out = tuple(draw(st.permutations(factors)))
    order = tuple(draw(st.permutations(range(len(shape)))))
    return shape, order, out


@given(reshapes())
def test_reshape_order_is_exactly_the_order_that_keeps_the_memory_sequence(case):
    shape, order, out = case
    x = torch.arange(int(torch.tensor(shape).prod())).reshape(shape)
    y = x.reshape(out)
    found = reshape_order(shape, order, out)
    keeps = [o for o in itertools.permutations(range(len(out))) if torch.equal(_memory(y, o), _memory(x, order))]
    if found is None:
        assert keeps == []
    else:
        assert found in keeps


def test_reshape_order_of_a_channel_split_under_channels_last():
    # NCHW data stored NHWC, channels split into (groups, channels per group): h, w, then both
    assert reshape_order((1, 16, 4, 4), (0, 2, 3, 1), (1, 4, 4, 4, 4)) == (0, 3, 4, 1, 2)
    assert reshape_order((1, 16, 16, 16), identity_order(4), (256, 1, 1, 16)) == identity_order(4)
    assert reshape_order((2, 3), (1, 0), (6,)) is None
    assert order_before_permute(order_after_permute((0, 2, 3, 1), Perm((0, 3, 1, 2))), Perm((0, 3, 1, 2))) == (0, 2, 3, 1)
