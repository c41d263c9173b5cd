"""The Vela forms alone, on hand-built graphs of the Arm backend's edge ops: how often each
applies, the ops they leave, exact equality with the graph before (only reshapes change), what
each declines, and idempotence. What each form saves in Vela is measured in
test_vela_probes.py, and on whole lowerings in test_arm_layout.py."""
import pytest
import torch
from torch.fx import Graph, GraphModule

pytest.importorskip("executorch", reason="the Arm backend's edge ops need the executorch extra")

from executorch.exir.dialects._ops import ops as exir_ops  # noqa: E402

from layoutopt.executorch.arm_vela_forms import (_concat_axis, concatenate_before_reshapes,  # noqa: E402
                                                 lower_transpose_rank, merge_adjacent_sums)

PERMUTE = exir_ops.edge.aten.permute_copy.default
VIEW = exir_ops.edge.aten.view_copy.default
CAT = exir_ops.edge.aten.cat.default
RELU = exir_ops.edge.aten.relu.default


class Builder:
    """A graph of edge ops with real tensors as their values."""

    def __init__(self, *shapes):
        self.graph = Graph()
        self.inputs = [torch.randint(-128, 128, s, dtype=torch.int8) for s in shapes]
        self.placeholders = []
        for i, x in enumerate(self.inputs):
            node = self.graph.placeholder(f"x{i}")
            node.meta["val"] = x
            self.placeholders.append(node)

    def op(self, target, *args):
        node = self.graph.call_function(target, args)

        def val(a):
            if isinstance(a, list):
                return [val(x) for x in a]
            return a.meta["val"] if hasattr(a, "meta") else a

        node.meta["val"] = target(*[val(a) for a in args])
        return node

    def module(self, out) -> GraphModule:
        self.graph.output(out)
        return GraphModule(torch.nn.Module(), self.graph)


def histogram(gm):
    counts = {}
    for n in gm.graph.nodes:
        if n.op == "call_function":
            name = n.target.__name__.split(".")[1]  # aten.<name>.<overload>
            counts[name] = counts.get(name, 0) + 1
    return counts


def assert_same_values(gm, b, before):
    gm.recompile()
    assert torch.equal(gm(*b.inputs), before)


def test_a_rank5_head_split_is_written_at_rank_3():
    b = Builder((1, 8, 3, 4, 8))
    gm = b.module(b.op(PERMUTE, b.op(RELU, b.placeholders[0]), [2, 0, 3, 1, 4]))
    before = gm(*b.inputs)
    assert lower_transpose_rank(gm) == 1
    assert histogram(gm) == {"relu": 1, "view_copy": 2, "permute_copy": 1}
    (permute,) = [n for n in gm.graph.nodes if n.target == PERMUTE]
    assert tuple(permute.args[0].meta["val"].shape) == (8, 12, 8) and permute.args[1] == [1, 0, 2]
    assert_same_values(gm, b, before)
    assert lower_transpose_rank(gm) == 0  # idempotent


@pytest.mark.parametrize("shape,perm", [
    ((1, 8, 4, 8), [0, 2, 1, 3]),  # rank 4: U85 writes it with the op before
    ((2, 3, 4, 5, 6), [4, 2, 0, 3, 1]),  # no two dims stay together: still rank 5
])
def test_transposes_vela_runs_as_one_op_or_cannot_lower_are_left_alone(shape, perm):
    b = Builder(shape)
    gm = b.module(b.op(PERMUTE, b.placeholders[0], perm))
    assert lower_transpose_rank(gm) == 0
    assert histogram(gm) == {"permute_copy": 1}


def test_a_concatenation_of_reshapes_becomes_a_reshape_of_the_concatenation():
    # wav2vec2's grouped positional convolution: per-group outputs (1, 1, 200, 8) reshaped to
    # (1, 200, 8) and concatenated on the channels
    b = Builder((1, 1, 200, 8), (1, 1, 200, 8))
    parts = [b.op(VIEW, b.op(RELU, x), [1, 200, 8]) for x in b.placeholders]
    gm = b.module(b.op(RELU, b.op(CAT, parts, 2)))
    before = gm(*b.inputs)
    assert concatenate_before_reshapes(gm) == 1
    assert histogram(gm) == {"relu": 3, "cat": 1, "view_copy": 1}
    (cat,) = [n for n in gm.graph.nodes if n.target == CAT]
    assert cat.args[1] == 3 and [a.target for a in cat.args[0]] == [RELU, RELU]
    assert_same_values(gm, b, before)
    assert concatenate_before_reshapes(gm) == 0  # idempotent


def test_a_concatenation_with_an_input_that_is_not_a_reshape_is_left_alone():
    b = Builder((1, 1, 200, 8), (1, 200, 8))
    gm = b.module(b.op(CAT, [b.op(VIEW, b.placeholders[0], [1, 200, 8]), b.op(RELU, b.placeholders[1])], 2))
    assert concatenate_before_reshapes(gm) == 0


@pytest.mark.parametrize("sources,views,axis,want", [
    ([(1, 1, 200, 8)] * 2, [(1, 200, 8)] * 2, 2, 3),  # size-1 dims dropped: channels stay innermost
    ([(2, 3, 4)] * 2, [(6, 4)] * 2, 1, 2),  # leading dims merged, the axis kept
    ([(2, 3, 4)] * 2, [(2, 12)] * 2, 1, None),  # the reshape merges the axis with another dim
    ([(1, 1, 5, 8), (1, 1, 7, 8)], [(1, 5, 8), (1, 7, 8)], 1, 2),  # inputs of different lengths
])
def test_the_concatenation_axis_through_reshapes(sources, views, axis, want):
    assert _concat_axis(sources, views, axis) == want
    if want is not None:
        xs = [torch.randn(s) for s in sources]
        shape = list(views[0])
        shape[axis] = sum(v[axis] for v in views)
        assert torch.equal(torch.cat(xs, want).reshape(shape), torch.cat([x.reshape(v) for x, v in zip(xs, views)], axis))


SUM = exir_ops.edge.aten.sum.dim_IntList


def _sums(dims, dtype=torch.int32, shape=(1, 6, 5, 8)):
    b = Builder(shape)
    x = b.placeholders[0]
    b.inputs[0] = b.inputs[0].to(dtype)
    x.meta["val"] = b.inputs[0]
    for d in dims:
        x = b.op(SUM, x, [d], True)
    return b, b.module(x)


def test_sums_over_h_then_w_become_one_sum_over_their_merged_dim():
    b, gm = _sums([1, 2])  # the backend's mean over H and W of an NHWC tensor
    before = gm(*b.inputs)
    assert merge_adjacent_sums(gm) == 1
    assert histogram(gm) == {"view_copy": 1, "sum": 1}
    (view,) = [n for n in gm.graph.nodes if n.target == VIEW]
    assert view.args[1] == [1, 1, 30, 8]
    assert_same_values(gm, b, before)
    assert merge_adjacent_sums(gm) == 0  # idempotent


def test_three_adjacent_sums_become_one():
    b, gm = _sums([1, 2, 3], shape=(2, 3, 4, 5))
    before = gm(*b.inputs)
    assert merge_adjacent_sums(gm) == 2
    assert histogram(gm) == {"view_copy": 2, "sum": 1}
    assert_same_values(gm, b, before)


@pytest.mark.parametrize("dims,dtype", [
    ([1, 3], torch.int32),  # not adjacent: the merged dim would interleave
    ([1, 2], torch.float32),  # float sums round differently in another order
])
def test_sums_that_would_change_values_or_meaning_stay(dims, dtype):
    b, gm = _sums(dims, dtype)
    assert merge_adjacent_sums(gm) == 0
    assert histogram(gm) == {"sum": 2}
