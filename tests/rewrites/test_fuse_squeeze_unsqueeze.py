"""Unit-dim view pairs, each rule alone: ``unsqueeze(squeeze(x, d), d)`` cancels, and a squeeze
sinks past an elementwise op or a batch norm toward it. Neither rule has a rejection reason:
what they do not rewrite is not a candidate, and the graph is left as it was."""
import torch
from torch import nn

from helpers import assert_rewrite, check_plan
from layoutopt.rewrites import CancelUnsqueezeOfSqueeze, SinkSqueeze

SQUEEZE, SQUEEZE_DIMS, UNSQUEEZE = "aten.squeeze.dim", "aten.squeeze.dims", "aten.unsqueeze.default"
RELU, BATCH_NORM = "aten.relu.default", "aten.batch_norm.default"
CORE_BATCH_NORM = "aten._native_batch_norm_legit_no_training.default"


class SqueezeThen(nn.Module):
    """``x[N, C, 1, L]`` squeezed at ``dim``, through ``op``, unsqueezed at ``back`` (or not)."""

    def __init__(self, op="relu", dim=2, back=2):
        super().__init__()
        self.op, self.dim, self.back = op, dim, back
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x):
        y = x.squeeze(self.dim)
        if self.op == "relu":
            y = torch.relu(y)
        elif self.op == "scale":
            y = y * 0.5 + 1
        elif self.op == "bn":
            y = self.bn(y)
        return y.unsqueeze(self.back) if self.back is not None else y


def x4():
    return (torch.randn(1, 4, 1, 6),)


def squeeze_after(program, op):
    """The squeeze now follows ``op``, which reads the 4-D tensor."""
    (node,) = [n for n in program.graph.nodes if n.target == op]
    assert node.args[0].meta["val"].dim() == 4
    return [u.target for u in node.users]


# -- cancel_squeeze_unsqueeze

def test_unsqueeze_of_a_squeeze_cancels():
    assert_rewrite(SqueezeThen(op=None), x4(), CancelUnsqueezeOfSqueeze(), before={SQUEEZE: 1, UNSQUEEZE: 1},
                   after={SQUEEZE: 0, UNSQUEEZE: 0}, applied=1)


def test_a_negative_dim_is_the_same_dim():
    assert_rewrite(SqueezeThen(op=None, dim=-2, back=2), x4(), CancelUnsqueezeOfSqueeze(),
                   before={SQUEEZE: 1, UNSQUEEZE: 1}, after={SQUEEZE: 0, UNSQUEEZE: 0}, applied=1)


def test_an_unsqueeze_at_another_dim_is_not_a_candidate():
    assert_rewrite(SqueezeThen(op=None, back=1), x4(), CancelUnsqueezeOfSqueeze(), before={SQUEEZE: 1, UNSQUEEZE: 1},
                   applied=0)


def test_an_unsqueeze_after_an_op_is_not_a_candidate():
    assert_rewrite(SqueezeThen(), x4(), CancelUnsqueezeOfSqueeze(), before={SQUEEZE: 1, UNSQUEEZE: 1}, applied=0)


def test_in_an_edge_program_the_copies_cancel():
    assert_rewrite(SqueezeThen(op=None), x4(), CancelUnsqueezeOfSqueeze(), dialect="edge",
                   before={"aten.squeeze_copy.dims": 1, "aten.unsqueeze_copy.default": 1},
                   after={"aten.squeeze_copy.dims": 0, "aten.unsqueeze_copy.default": 0}, applied=1)


# -- sink_squeeze

def test_a_squeeze_sinks_past_an_activation():
    r = assert_rewrite(SqueezeThen(back=None), x4(), SinkSqueeze(), before={SQUEEZE: 1, RELU: 1},
                       after={SQUEEZE: 1, RELU: 1}, applied=1)
    assert squeeze_after(r.program, torch.ops.aten.relu.default) == [torch.ops.aten.squeeze.dim]


def test_a_squeeze_sinks_past_a_chain_of_scalar_ops():
    r = assert_rewrite(SqueezeThen("scale"), x4(), SinkSqueeze(), before={SQUEEZE: 1}, after={SQUEEZE: 1}, applied=2)
    assert squeeze_after(r.program, torch.ops.aten.add.Tensor) == [torch.ops.aten.squeeze.dim]


def test_a_squeeze_sinks_past_a_batch_norm():
    r = assert_rewrite(SqueezeThen("bn", back=None).eval(), x4(), SinkSqueeze(), before={SQUEEZE: 1, BATCH_NORM: 1},
                       after={SQUEEZE: 1, BATCH_NORM: 1}, applied=1)
    assert squeeze_after(r.program, torch.ops.aten.batch_norm.default) == [torch.ops.aten.squeeze.dim]


def test_a_squeeze_sinks_past_a_core_aten_batch_norm_and_its_item():
    r = assert_rewrite(SqueezeThen("bn", back=None).eval(), x4(), SinkSqueeze(), dialect="core",
                       before={SQUEEZE_DIMS: 1, SQUEEZE: 0, CORE_BATCH_NORM: 1, "getitem": 1},
                       after={SQUEEZE_DIMS: 0, SQUEEZE: 1, CORE_BATCH_NORM: 1, "getitem": 1}, applied=1)
    (item,) = [n for n in r.program.graph.nodes if n.op == "call_function" and n.target.__name__ == "getitem"]
    assert item.args[1] == 0 and [u.target for u in item.users] == [torch.ops.aten.squeeze.dim]


def test_a_batch_norm_over_the_squeezed_channel_dim_is_not_a_candidate():
    class Leading(SqueezeThen):  # dim 0 is squeezed: the batch norm's channel dim would move
        def forward(self, x):
            return self.bn(x.squeeze(0))

    assert_rewrite(Leading().eval(), (torch.randn(1, 2, 4, 6),), SinkSqueeze(), before={SQUEEZE: 1, BATCH_NORM: 1},
                   applied=0)


def test_a_squeeze_read_twice_is_not_a_candidate():
    class Twice(nn.Module):  # sinking it would duplicate the view
        def forward(self, x):
            y = x.squeeze(2)
            return torch.relu(y), torch.sigmoid(y)

    assert_rewrite(Twice(), x4(), SinkSqueeze(), before={SQUEEZE: 1, RELU: 1}, applied=0)


def test_an_op_with_a_second_tensor_is_not_a_candidate():
    class Add(nn.Module):
        def forward(self, x, y):
            return x.squeeze(2) + y

    assert_rewrite(Add(), (*x4(), torch.randn(1, 4, 6)), SinkSqueeze(), before={SQUEEZE: 1}, applied=0)


# -- both, with conv1d_to_conv2d, as the pipeline runs them

def test_planned_batch_norm_between_conv1ds_meets_in_4d():
    model = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(),
                          nn.Conv1d(8, 8, 3, padding=1)).eval()
    r = check_plan(model, (torch.randn(1, 4, 16),), target="ethos-u55", after=2)
    assert r.report.rewrites == {"conv1d_to_conv2d": 2, "sink_squeeze": 2, "cancel_squeeze_unsqueeze": 1}
