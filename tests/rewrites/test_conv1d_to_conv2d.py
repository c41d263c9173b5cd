"""conv1d -> conv2d(H=1) alone: exact op counts, equal outputs, one test per rejection reason;
and with cancel_squeeze_unsqueeze as the pipeline runs it, no copy between the convolutions."""
import pytest
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401
import torch.nn.functional as F
from torch import nn

import layoutopt
from helpers import assert_rewrite, check_plan, op_counts
from layoutopt.rewrites import Conv1dToConv2d

CONV1D, CONV2D, CONVOLUTION = "aten.conv1d.default", "aten.conv2d.default", "aten.convolution.default"


class Conv1dStack(nn.Module):
    def __init__(self, act=nn.ReLU, depthwise=False):
        super().__init__()
        self.a = nn.Conv1d(8, 8, 5, padding=2, groups=8 if depthwise else 1)
        self.b = nn.Conv1d(8, 16, 3, stride=2, dilation=2, padding=2)
        self.c = nn.Conv1d(16, 16, 1)
        self.act = act()

    def forward(self, x):
        return self.c(self.act(self.b(self.act(self.a(x)))))


def x3(c=8, length=32):
    return (torch.randn(1, c, length),)


def clones_between_convs(program):
    """Copies on any path from one conv2d to the next."""
    count = 0
    for node in program.graph.nodes:
        if node.target == torch.ops.aten.conv2d.default:
            cur, seen = node.args[0], 0
            while cur.op == "call_function" and cur.target != torch.ops.aten.conv2d.default:
                seen += cur.target == torch.ops.aten.clone.default
                cur = cur.args[0]
            count += seen if cur.op == "call_function" else 0
    return count


RULE = Conv1dToConv2d()
UNSQUEEZE, SQUEEZE = "aten.unsqueeze.default", "aten.squeeze.dim"
STACK_AFTER = {CONV1D: 0, CONV2D: 3, UNSQUEEZE: 3, SQUEEZE: 3}


def conv2d_nodes(program):
    return [n for n in program.graph.nodes if n.target == torch.ops.aten.conv2d.default]


def test_each_conv1d_becomes_a_conv2d_between_views():
    r = assert_rewrite(Conv1dStack().eval(), x3(), RULE, before={CONV1D: 3}, after=STACK_AFTER, applied=3,
                       exact=False)
    for conv in conv2d_nodes(r.program):
        assert conv.args[0].target == torch.ops.aten.unsqueeze.default and conv.args[0].args[1] == 2
        assert conv.args[1].meta["val"].shape[2] == 1  # the weight gained its H dim at compile time
    b = conv2d_nodes(r.program)[1]
    assert b.args[3:6] == ([1, 2], [0, 2], [1, 2])  # stride, padding, dilation


def test_depthwise_stays_depthwise():
    r = assert_rewrite(Conv1dStack(depthwise=True).eval(), x3(), RULE, before={CONV1D: 3}, after=STACK_AFTER,
                       applied=3, exact=False)
    first = conv2d_nodes(r.program)[0]
    assert first.args[6] == 8 and tuple(first.args[1].meta["val"].shape) == (8, 1, 1, 5)


@pytest.mark.parametrize("act,op", [(nn.ReLU6, "aten.hardtanh.default"), (nn.Hardsigmoid, "aten.hardsigmoid.default"),
                                    (nn.ReLU, "aten.relu.default")])
def test_activation_tail_moves_directly_after_the_conv(act, op):
    r = assert_rewrite(Conv1dStack(act).eval(), x3(), RULE, before={CONV1D: 3, op: 2}, after={**STACK_AFTER, op: 2},
                       applied=3, exact=False)
    for node in r.program.graph.nodes:
        if layoutopt.ir.ops.op_name(node.target) == op:
            assert node.args[0].target == torch.ops.aten.conv2d.default, node.args[0]
            assert [u.target for u in node.users] == [torch.ops.aten.squeeze.dim]


def test_quantized_conv1d_keeps_qdq_next_to_the_conv():
    qd = torch.ops.quantized_decomposed

    class Q(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randint(-8, 8, (8, 8, 3)).to(torch.int8), requires_grad=False)
            self.register_buffer("s", torch.rand(8) / 10 + 0.01)
            self.register_buffer("z", torch.zeros(8, dtype=torch.int64))

        def forward(self, x):
            q = qd.quantize_per_tensor(x, 0.05, 0, -128, 127, torch.int8)
            w = qd.dequantize_per_channel(self.w, self.s, self.z, 0, -127, 127, torch.int8)
            y = F.conv1d(qd.dequantize_per_tensor(q, 0.05, 0, -128, 127, torch.int8), w, padding=1)
            return qd.dequantize_per_tensor(qd.quantize_per_tensor(torch.relu(y), 0.1, 0, -128, 127, torch.int8),
                                            0.1, 0, -128, 127, torch.int8)

    r = assert_rewrite(Q().eval(), x3(), RULE, before={CONV1D: 1},
                       after={CONV1D: 0, CONV2D: 1, UNSQUEEZE: 1, SQUEEZE: 1}, applied=1)
    (conv,) = conv2d_nodes(r.program)
    assert layoutopt.ir.ops.is_dequantize_per_tensor(conv.args[0].target)
    assert layoutopt.ir.ops.is_dequantize_per_channel(conv.args[1].target)
    assert r.program.state_dict["w"].dtype == torch.int8 and tuple(r.program.state_dict["w"].shape) == (8, 8, 1, 3)
    relu = next(iter(conv.users))
    assert relu.target == torch.ops.aten.relu.default
    quantize = next(iter(relu.users))
    assert layoutopt.ir.ops.is_quantize_per_tensor(quantize.target)
    assert [u.target for u in quantize.users] == [torch.ops.aten.squeeze.dim]


def test_core_aten_convolution_is_rewritten_too():
    assert_rewrite(Conv1dStack().eval(), x3(), RULE, dialect="core", before={CONV1D: 0, CONVOLUTION: 3},
                   after={**STACK_AFTER, CONVOLUTION: 0}, applied=3, exact=False)


def test_in_an_edge_program_the_views_are_copies_and_the_conv_a_convolution():
    assert_rewrite(Conv1dStack().eval(), x3(), RULE, dialect="edge", before={CONVOLUTION: 3},
                   after={CONVOLUTION: 3, "aten.unsqueeze_copy.default": 3, "aten.squeeze_copy.dims": 3},
                   applied=3, exact=False)


def test_rejects_a_weight_that_is_not_a_constant():
    class M(nn.Module):
        def forward(self, x, w):
            return F.conv1d(x, w)

    assert_rewrite(M(), (torch.randn(1, 4, 8), torch.randn(4, 4, 3)), RULE, before={CONV1D: 1},
                   reason="weight is not a constant")


def test_rejects_a_shared_weight():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4, 3))

        def forward(self, x):
            return F.conv1d(x, self.w) + self.w.sum()

    assert_rewrite(M(), (torch.randn(1, 4, 8),), RULE, before={CONV1D: 1}, reason="weight is shared with another op")


def test_rejects_a_bias_that_is_not_a_constant():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4, 3))

        def forward(self, x, b):
            return F.conv1d(x, self.w, b)

    assert_rewrite(M(), (torch.randn(1, 4, 8), torch.randn(4)), RULE, before={CONV1D: 1},
                   reason="bias is not a constant")


def test_rejects_a_transposed_convolution():
    assert_rewrite(nn.ConvTranspose1d(4, 4, 3).eval(), (torch.randn(1, 4, 8),), RULE, dialect="core",
                   before={CONVOLUTION: 1}, reason="transposed convolution")


def test_a_conv2d_is_not_a_candidate():
    assert_rewrite(nn.Conv2d(4, 4, 3).eval(), (torch.randn(1, 4, 6, 6),), RULE, dialect="core",
                   before={CONVOLUTION: 1}, applied=0)


def test_planned_conv1d_stack_has_no_copies_between_the_convs():
    r = check_plan(Conv1dStack().eval(), x3(), before=6, after=2)
    counts = op_counts(r.program)
    assert counts[CONV1D] == 0 and counts[CONV2D] == 3
    assert counts[UNSQUEEZE] == 1 and counts[SQUEEZE] == 1
    assert clones_between_convs(r.program) == 0
    assert r.report.rewrites == {"cancel_squeeze_unsqueeze": 2, "conv1d_to_conv2d": 3}
