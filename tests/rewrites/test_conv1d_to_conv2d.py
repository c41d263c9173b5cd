"""conv1d -> conv2d(H=1): exact op counts, equal outputs, one test per rejection reason."""
import pytest
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401
import torch.nn.functional as F
from torch import nn

import layoutopt
from helpers import check_plan, op_counts

CONV1D, CONV2D = "aten.conv1d.default", "aten.conv2d.default"


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


def test_conv1d_stack_becomes_conv2d_with_no_copies_between():
    r = check_plan(Conv1dStack().eval(), x3(), before=6, after=2)
    counts = op_counts(r.program)
    assert counts[CONV1D] == 0 and counts[CONV2D] == 3
    assert counts["aten.unsqueeze.default"] == 1 and counts["aten.squeeze.dim"] == 1
    assert clones_between_convs(r.program) == 0
    assert r.report.rewrites == {"cancel_squeeze_unsqueeze": 2, "conv1d_to_conv2d": 3}


def test_depthwise_stays_depthwise():
    r = check_plan(Conv1dStack(depthwise=True).eval(), x3())
    first = next(n for n in r.program.graph.nodes if n.target == torch.ops.aten.conv2d.default)
    assert first.args[6] == 8 and tuple(first.args[1].meta["val"].shape) == (8, 1, 1, 5)


@pytest.mark.parametrize("act,op", [(nn.ReLU6, "aten.hardtanh.default"), (nn.Hardsigmoid, "aten.hardsigmoid.default"),
                                    (nn.ReLU, "aten.relu.default")])
def test_activation_tail_stays_directly_after_the_conv(act, op):
    r = check_plan(Conv1dStack(act).eval(), x3())
    for node in r.program.graph.nodes:
        if layoutopt.ir.ops.op_name(node.target) == op:
            assert node.args[0].target == torch.ops.aten.conv2d.default, node.args[0]


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

    r = check_plan(Q().eval(), x3(), exact=True)
    conv = next(n for n in r.program.graph.nodes if n.target == torch.ops.aten.conv2d.default)
    assert layoutopt.ir.ops.is_dequantize_per_tensor(conv.args[0].target)
    assert layoutopt.ir.ops.is_dequantize_per_channel(conv.args[1].target)
    relu = next(iter(conv.users))
    assert relu.target == torch.ops.aten.relu.default
    assert layoutopt.ir.ops.is_quantize_per_tensor(next(iter(relu.users)).target)


def _rejected(model, inputs, reason):
    exported = torch.export.export(model, inputs)
    r = layoutopt.optimize(exported, inputs)
    assert op_counts(r.program)[CONV2D] == 0
    assert op_counts(r.program)[CONV1D] + op_counts(r.program)["aten.convolution.default"] == 1
    assert any(d["reason"] == f"conv1d_to_conv2d: {reason}" for d in r.report.declined), r.report.declined
    assert r.report.rewrites == {}


def test_rejects_a_weight_that_is_not_a_constant():
    class M(nn.Module):
        def forward(self, x, w):
            return F.conv1d(x, w)

    _rejected(M(), (torch.randn(1, 4, 8), torch.randn(4, 4, 3)), "weight is not a constant")


def test_rejects_a_shared_weight():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4, 3))

        def forward(self, x):
            return F.conv1d(x, self.w) + self.w.sum()

    _rejected(M(), (torch.randn(1, 4, 8),), "weight is shared with another op")


def test_rejects_a_bias_that_is_not_a_constant():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4, 3))

        def forward(self, x, b):
            return F.conv1d(x, self.w, b)

    _rejected(M(), (torch.randn(1, 4, 8), torch.randn(4)), "bias is not a constant")


def test_rejects_a_transposed_convolution():
    m = nn.ConvTranspose1d(4, 4, 3).eval()
    inputs = (torch.randn(1, 4, 8),)
    core = torch.export.export(m, inputs).run_decompositions()
    r = layoutopt.optimize(core, inputs)
    assert any(d["reason"] == "conv1d_to_conv2d: transposed convolution" for d in r.report.declined)
    assert op_counts(r.program)["aten.convolution.default"] == 1


def test_core_aten_convolution_is_rewritten_too():
    inputs = x3()
    core = torch.export.export(Conv1dStack().eval(), inputs).run_decompositions()
    r = check_plan(core, inputs, after=2)
    assert op_counts(r.program)[CONV2D] == 3


def test_idempotent():
    once = layoutopt.optimize(Conv1dStack().eval(), x3())
    twice = layoutopt.optimize(once.program)
    assert twice.report.rewrites == {} and op_counts(twice.program) == op_counts(once.program)
