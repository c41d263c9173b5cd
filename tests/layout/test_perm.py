"""The permutation algebra against torch.permute and real strides."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from layoutopt.layout.perm import (
    Perm, channels_last_order, identity_order, layout_key, order_after_permute, order_of, same_layout, strides_for,
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
