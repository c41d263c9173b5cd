"""Replays by meta kernel alone: a view's meta kernel gives the strides of the eager-corrected
fake replay (and of eager itself) and aliases its source as that replay does, a clone's gives
the replay's and eager's strides in every memory format; vector products on meta tensors give
eager's strides; only views and clones take the path."""
import itertools

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings, strategies as st
from torch import nn

from layoutopt.ir import ops, propagate
from layoutopt.ir.meta_kernel import fresh_fake, replays_by_meta_kernel, run_meta_kernel
from layoutopt.ir.perm import strides_for
from layoutopt.ir.propagate import fake_mode_of, meta_kernel_replays

aten = torch.ops.aten


def _mode():
    return fake_mode_of(torch.export.export(nn.ReLU(), (torch.randn(2, 3),)).graph_module)


def _meta(t):
    return tuple(t.shape), t.stride(), t.storage_offset(), t.dtype


def _views(shape):
    """View calls valid on any tensor of ``shape``: (op, arguments after the tensor)."""
    rank = len(shape)
    permutes = itertools.islice(itertools.permutations(range(rank)), 0, 24, 5)
    calls = [(aten.permute.default, (list(p),)) for p in permutes]
    calls += [(aten.transpose.int, (0, rank - 1)), (aten.unsqueeze.default, (1,)), (aten.select.int, (1, 0)),
              (aten.flatten.using_ints, (1, rank - 1)), (aten.reshape.default, ([-1],)),
              (aten.reshape.default, ([shape[0], -1],)),
              (aten.squeeze.dims, ([d for d, n in enumerate(shape) if n == 1],)),
              (aten.view.default, ([-1],)), (aten.slice.Tensor, (rank - 1, 0, 1))]
    return calls


shapes = st.lists(st.sampled_from([1, 2, 3, 4]), min_size=3, max_size=5).map(tuple)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, data=st.data())
@example(shape=(1, 4, 1, 1), data=None)
@example(shape=(2, 1, 3, 1, 2), data=None)
def test_a_views_meta_kernel_gives_the_corrected_replays_metadata(shape, data):
    """For every source layout of ``shape`` (size-1 dims included, where fake and eager
    disagree) and every view: same shape, strides, offset and dtype as the fake replay
    corrected by eager and as eager, and the source's storage where the replay aliases it;
    where eager refuses the view, the kernel refuses it too (fake mode can let it through)."""
    mode = _mode()
    orders = list(itertools.permutations(range(len(shape))))
    order = orders[0] if data is None else data.draw(st.sampled_from(orders))
    with mode:
        x = torch.empty_strided(shape, strides_for(shape, order))
    for op, rest in _views(shape):
        assert replays_by_meta_kernel(op)
        with meta_kernel_replays(False):
            try:
                replay = propagate._run_fake(mode, op, (x, *rest), {})
            except Exception:
                replay = None
        try:
            kernel = run_meta_kernel(mode, op, (x, *rest), {})
        except Exception:
            kernel = None
        try:
            eager = op(torch.empty_strided(shape, strides_for(shape, order)), *rest)
        except RuntimeError:  # the kernel refuses what eager refuses (a fake view may not)
            assert kernel is None, (op, shape, order)
            continue
        assert kernel is not None and replay is not None, (op, shape, order)
        assert _meta(kernel) == _meta(replay) and kernel.stride() == eager.stride(), (op, shape, order)
        assert kernel.fake_mode is mode
        shares = [t.untyped_storage()._cdata == x.untyped_storage()._cdata for t in (kernel, replay)]
        assert shares[0] == shares[1], (op, shape, order)  # a reshape that cannot view copies


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, data=st.data())
@example(shape=(1, 4, 1, 1), data=None)
@example(shape=(2, 1, 3, 1, 2), data=None)
def test_a_clones_meta_kernel_gives_the_replays_and_eagers_strides(shape, data):
    mode = _mode()
    orders = list(itertools.permutations(range(len(shape))))
    order = orders[-1] if data is None else data.draw(st.sampled_from(orders))
    with mode:
        x = torch.empty_strided(shape, strides_for(shape, order))
    formats = [torch.contiguous_format, torch.preserve_format]
    formats += {4: [torch.channels_last], 5: [torch.channels_last_3d]}.get(len(shape), [])
    assert replays_by_meta_kernel(aten.clone.default)
    for memory_format in formats:
        kwargs = {"memory_format": memory_format}
        with meta_kernel_replays(False):
            replay = propagate._run_fake(mode, aten.clone.default, (x,), kwargs)
        kernel = run_meta_kernel(mode, aten.clone.default, (x,), kwargs)
        eager = torch.empty_strided(shape, strides_for(shape, order)).clone(**kwargs)
        assert _meta(kernel) == _meta(replay) and kernel.stride() == eager.stride(), (shape, order, memory_format)
        assert kernel.untyped_storage()._cdata != x.untyped_storage()._cdata


def test_only_views_and_clones_are_replayed_by_their_meta_kernel():
    assert replays_by_meta_kernel(aten.permute.default) and replays_by_meta_kernel(aten.reshape.default)
    for op in (aten.add.Tensor, aten.conv2d.default, aten.contiguous.default, aten.batch_norm.default,
               aten.add_.Tensor, aten.relu_.default, aten.scaled_dot_product_attention.default):
        assert not replays_by_meta_kernel(op), op
    assert not replays_by_meta_kernel(torch.empty_strided)


def test_a_fake_tensor_carrying_a_constant_goes_through_fake_dispatch():
    mode = _mode()
    constant = mode.from_tensor(torch.arange(6.0).reshape(2, 3), static_shapes=True)
    constant.constant = torch.arange(6.0).reshape(2, 3)
    assert not propagate._plain_fakes(mode, ((constant, [1, 0]), {}))
    with mode:
        x = torch.empty(2, 3)
    assert propagate._plain_fakes(mode, ((x, [1, 0]), {}))
    assert not propagate._plain_fakes(mode, ((torch.empty(2, 3), [1, 0]), {}))  # a real tensor


def test_a_fresh_fake_is_what_empty_strided_gives_under_the_mode():
    mode = _mode()
    made = fresh_fake(mode, (1, 4, 3, 3), (36, 1, 12, 4), torch.float16, torch.device("cpu"))
    with mode:
        dispatched = torch.empty_strided((1, 4, 3, 3), (36, 1, 12, 4), dtype=torch.float16)
    assert _meta(made) == _meta(dispatched) and made.device == dispatched.device
    assert made.untyped_storage().nbytes() == dispatched.untyped_storage().nbytes()
    assert made.fake_mode is mode and not made.requires_grad


dims = st.sampled_from([1, 2, 3, 8])


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(dims, min_size=0, max_size=2), m=dims, k=dims, n=dims, flip_a=st.booleans(),
       flip_b=st.booleans(), op=st.sampled_from(["matmul", "linear", "bmm", "mm"]))
def test_vector_products_on_meta_tensors_give_eagers_strides(batch, m, k, n, flip_a, flip_b, op):
    """``ops.meta_answers``: the result's strides on meta tensors are eager's on CPU, for
    operands laid out with their last two dims swapped or not."""
    if op == "bmm":
        batch = [2]
    if op == "mm":
        batch = []

    def operand(shape, flip, device):
        shape = tuple(shape)
        if not flip:
            return torch.empty(shape, device=device)
        return torch.empty(shape[:-2] + shape[-1:] + shape[-2:-1], device=device).transpose(-1, -2)

    a_shape, b_shape = [*batch, m, k], ([n, k] if op == "linear" else [*batch, k, n])
    target = getattr(aten, op).default
    assert ops.meta_answers(target)
    outs = [target(operand(a_shape, flip_a, d), operand(b_shape, flip_b, d)) for d in ("cpu", "meta")]
    assert outs[0].shape == outs[1].shape and outs[0].stride() == outs[1].stride()
    assert not ops.meta_answers(aten.scaled_dot_product_attention.default)


def test_a_replay_that_records_autograd_history_goes_through_fake_dispatch():
    """With grad on, a view of a tensor that requires grad is a non-leaf that an in-place op
    takes (a wrapped kernel result would be a leaf refusing it); without grad (as the problem
    builder runs) views and clones take the meta kernel, with the replay's metadata and grad
    flag, and in-place ops take their results."""
    mode = _mode()
    with mode:
        leaf = torch.empty(2, 3, 4, requires_grad=True)
    y = propagate._run_fake(mode, aten.mul.Tensor, (leaf, 2.0), {})
    with torch.enable_grad():
        assert not propagate._plain_fakes(mode, ((y, [2, 0, 1]), {}))
        view = propagate._run_fake(mode, aten.permute.default, (y, [2, 0, 1]), {})
        assert view.requires_grad and view.grad_fn is not None
        propagate._run_fake(mode, aten.relu_.default, (view,), {})
    with torch.no_grad():
        assert propagate._plain_fakes(mode, ((y, [2, 0, 1]), {}))
        for op, rest in ((aten.permute.default, ([2, 0, 1],)), (aten.clone.default, ())):
            kernel = propagate._run_fake(mode, op, (y, *rest), {})
            with meta_kernel_replays(False):
                replay = propagate._run_fake(mode, op, (y, *rest), {})
            assert (_meta(kernel), kernel.requires_grad) == (_meta(replay), replay.requires_grad)
            propagate._run_fake(mode, aten.relu_.default, (kernel,), {})
