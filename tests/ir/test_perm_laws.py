"""Laws of the permutation algebra against torch: pad lists and byte-moving permutes."""
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from layoutopt.ir.perm import Perm, moves_bytes, permuted_pad


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
