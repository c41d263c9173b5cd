"""A permute moved past elementwise ops meets the next permute: round trips around
activations and q/dq pairs disappear, bit for bit."""
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers quantized_decomposed ops)
from torch import nn

from helpers import assert_rewrite, check_plan, op_counts
from layoutopt.rewrites import PermuteThroughElementwise

PERMUTE, TRANSPOSE = "aten.permute.default", "aten.transpose.int"
RULE = PermuteThroughElementwise()


def permutes(program):
    return op_counts(program)[PERMUTE] + op_counts(program)[TRANSPOSE]


class RoundTrip(nn.Module):
    def forward(self, x):
        y = x.permute(0, 2, 3, 1)
        y = torch.nn.functional.hardtanh(torch.relu(y) * 0.5, 0.0, 6.0)
        return y.permute(0, 3, 1, 2)


def the_permute(program):
    (permute,) = [n for n in program.graph.nodes if n.target == torch.ops.aten.permute.default]
    return permute


def test_round_trip_around_activations_becomes_an_identity_permute_after_them():
    r = assert_rewrite(RoundTrip(), (torch.randn(1, 3, 4, 5),), RULE, before={PERMUTE: 2}, after={PERMUTE: 1},
                       applied=1)
    permute = the_permute(r.program)
    assert permute.args[1] == [0, 1, 2, 3]  # compose_permutes removes it
    assert permute.args[0].target == torch.ops.aten.hardtanh.default
    assert tuple(permute.args[0].meta["val"].shape) == (1, 3, 4, 5)  # the chain runs on the unpermuted input


def test_quantize_dequantize_pair_is_moved_past():
    qd = torch.ops.quantized_decomposed

    class QDQ(nn.Module):
        def forward(self, x):
            q = qd.quantize_per_tensor.default(x.permute(0, 2, 1), 0.05, 0, -128, 127, torch.int8)
            return qd.dequantize_per_tensor.default(q, 0.05, 0, -128, 127, torch.int8).permute(0, 2, 1)

    r = assert_rewrite(QDQ(), (torch.randn(2, 3, 4),), RULE, before={PERMUTE: 2}, after={PERMUTE: 1}, applied=1)
    assert the_permute(r.program).args[1] == [0, 1, 2]


def test_two_permutes_that_are_not_inverse_become_one():
    class Twist(nn.Module):
        def forward(self, x):
            return torch.sigmoid(x.permute(0, 2, 3, 1)).permute(0, 2, 1, 3)

    r = assert_rewrite(Twist(), (torch.randn(1, 2, 3, 4),), RULE, before={PERMUTE: 2}, after={PERMUTE: 1},
                       applied=1)
    assert the_permute(r.program).args[1] == [0, 3, 2, 1]


def test_a_transpose_after_the_chain_becomes_a_permute():
    class M(nn.Module):
        def forward(self, x):
            return torch.relu(x.permute(0, 2, 3, 1)).transpose(1, 3)

    assert_rewrite(M(), (torch.randn(1, 2, 3, 4),), RULE, before={PERMUTE: 1, TRANSPOSE: 1},
                   after={PERMUTE: 1, TRANSPOSE: 0}, applied=1)


def test_declined_when_a_tensor_in_the_chain_has_another_reader():
    class Shared(nn.Module):
        def forward(self, x):
            y = torch.relu(x.permute(0, 2, 1))
            return y.permute(0, 2, 1), y.sum()

    assert_rewrite(Shared(), (torch.randn(2, 3, 4),), RULE, before={PERMUTE: 2},
                   reason="a tensor in the elementwise chain is also read by another op")


def test_declined_when_the_inner_permute_has_another_reader():
    class Shared(nn.Module):
        def forward(self, x):
            y = x.permute(0, 2, 1)
            return torch.relu(y).permute(0, 2, 1), y * 3

    assert_rewrite(Shared(), (torch.randn(2, 3, 4),), RULE, before={PERMUTE: 2},
                   reason="a tensor in the elementwise chain is also read by another op")


def test_an_op_with_a_tensor_operand_is_not_a_candidate():
    class Bias(nn.Module):  # left to permute_through_join
        def __init__(self):
            super().__init__()
            self.b = nn.Parameter(torch.randn(3))

        def forward(self, x):
            return (x.permute(0, 2, 3, 1) + self.b).permute(0, 3, 1, 2)

    assert_rewrite(Bias(), (torch.randn(1, 3, 4, 5),), RULE, before={PERMUTE: 2}, applied=0)


def test_a_copy_between_permutes_is_not_a_candidate():
    class Copy(nn.Module):  # the copy is a layout conversion: moving the permutes would undo it
        def forward(self, x):
            return x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)

    assert_rewrite(Copy(), (torch.randn(1, 3, 4, 5),), RULE, before={PERMUTE: 2}, applied=0)


def test_planned_round_trip_disappears():
    r = check_plan(RoundTrip(), (torch.randn(1, 3, 4, 5),), target="xnnpack", after=0, exact=True)
    assert r.report.rewrites == {"permute_through_elementwise": 1, "compose_permutes": 1}
    assert permutes(r.program) == 0 and op_counts(r.program)["aten.relu.default"] == 1
