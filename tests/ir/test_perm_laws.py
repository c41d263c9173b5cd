"""Laws of the permutation algebra against torch: pad lists and byte-moving permutes."""
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from layoutopt.ir.perm import Perm, moves_bytes, permuted_pad, reduced_permute


@st.composite
def padded(draw):
    rank = draw(st.integers(1, 5))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank)))
    pads = draw(st.lists(st.integers(0, 2), min_size=2, max_size=2 * rank).filter(lambda p: len(p) % 2 == 0))
    order = tuple(draw(st.permutations(range(rank))))
    return shape, pads, order


@given(padded())
def test_pad_then_permute_is_permute_then_permuted_pad(case):
    shape, pad, order = case
    x = torch.arange(int(torch.tensor(shape).prod())).reshape(shape)
    want = F.pad(x, pad).permute(order)
    assert torch.equal(F.pad(x.permute(order), permuted_pad(pad, order)), want)


@given(st.lists(st.integers(1, 3), min_size=1, max_size=5).flatmap(
    lambda shape: st.tuples(st.just(tuple(shape)), st.permutations(range(len(shape))))))
def test_a_permute_moves_bytes_exactly_when_its_result_is_not_the_dense_sequence(case):
    shape, dims = case
    x = torch.arange(int(torch.tensor(shape).prod())).reshape(shape)
    y = x.permute(tuple(dims))
    same_sequence = torch.equal(y.contiguous().reshape(-1), x.reshape(-1))
    assert moves_bytes(Perm(tuple(dims)), tuple(y.shape)) == (not same_sequence)


@given(st.lists(st.integers(1, 3), min_size=1, max_size=6).flatmap(
    lambda shape: st.tuples(st.just(tuple(shape)), st.permutations(range(len(shape))))))
def test_a_reduced_permute_moves_the_same_elements(case):
    shape, dims = case
    x = torch.arange(int(torch.tensor(shape).prod())).reshape(shape)
    merged, perm = reduced_permute(shape, Perm(tuple(dims)))
    want = x.permute(tuple(dims))
    assert torch.equal(x.reshape(merged).permute(perm.dims).reshape(want.shape), want)
    assert 1 not in merged or merged == (1,)
    # no two merged dims that stay adjacent and in order are left apart
    assert all(b != a + 1 for a, b in zip(perm.dims, perm.dims[1:]))


def test_reduced_permute_of_an_attention_head_split():
    # (batch, tokens, q/k/v, heads, head dim) -> (q/k/v, batch, heads, tokens, head dim)
    assert reduced_permute((1, 8, 3, 4, 8), Perm((2, 0, 3, 1, 4))) == ((8, 12, 8), Perm((1, 0, 2)))
    assert reduced_permute((1, 8, 1, 4, 8), Perm((0, 2, 3, 4, 1))) == ((8, 32), Perm((1, 0)))
    assert reduced_permute((1, 1, 1), Perm((2, 1, 0))) == ((1,), Perm((0,)))
