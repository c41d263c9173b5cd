"""A permute moved past elementwise ops meets the next permute: round trips around
activations and q/dq pairs disappear, bit for bit."""
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers quantized_decomposed ops)
from torch import nn

import layoutopt
from helpers import check_plan, op_counts

RULE = "permute_through_elementwise"
PERMUTES = ("aten.permute.default", "aten.transpose.int")


def permutes(program):
    return sum(op_counts(program)[p] for p in PERMUTES)


class RoundTrip(nn.Module):
    def forward(self, x):
        y = x.permute(0, 2, 3, 1)
        y = torch.nn.functional.hardtanh(torch.relu(y) * 0.5, 0.0, 6.0)
        return y.permute(0, 3, 1, 2)


def test_round_trip_around_activations_disappears():
    r = check_plan(RoundTrip(), (torch.randn(1, 3, 4, 5),), target="xnnpack", after=0, exact=True)
    assert r.report.rewrites == {RULE: 1, "compose_permutes": 1}
    assert permutes(r.program) == 0
    assert op_counts(r.program)["aten.relu.default"] == 1


def test_quantize_dequantize_pair_is_moved_past():
    class QDQ(nn.Module):
        def forward(self, x):
            y = x.permute(0, 2, 1)
            q = torch.ops.quantized_decomposed.quantize_per_tensor.default(y, 0.05, 0, -128, 127, torch.int8)
            d = torch.ops.quantized_decomposed.dequantize_per_tensor.default(q, 0.05, 0, -128, 127, torch.int8)
            return d.permute(0, 2, 1)

    r = check_plan(QDQ(), (torch.randn(2, 3, 4),), target="xnnpack", exact=True)
    assert r.report.rewrites[RULE] == 1 and permutes(r.program) == 0


def test_two_permutes_that_are_not_inverse_become_one():
    class Twist(nn.Module):
        def forward(self, x):
            return torch.sigmoid(x.permute(0, 2, 3, 1)).permute(0, 2, 1, 3)

    r = check_plan(Twist(), (torch.randn(1, 2, 3, 4),), target="xnnpack", exact=True)
    assert r.report.rewrites[RULE] == 1 and permutes(r.program) == 1


def test_an_op_with_a_tensor_operand_is_left_to_permute_through_join():
    class Bias(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Parameter(torch.randn(3))

        def forward(self, x):
            return (x.permute(0, 2, 3, 1) + self.b).permute(0, 3, 1, 2)

    r = layoutopt.optimize(Bias(), (torch.randn(1, 3, 4, 5),))
    assert RULE not in r.report.rewrites and r.report.rewrites["permute_through_join"] == 1
    assert permutes(r.program) == 0


def test_declined_when_a_tensor_in_the_chain_has_another_reader():
    class Shared(nn.Module):
        def forward(self, x):
            y = torch.relu(x.permute(0, 2, 1))
            return y.permute(0, 2, 1), y.sum()

    r = layoutopt.optimize(Shared(), (torch.randn(2, 3, 4),))
    assert [d["reason"] for d in r.report.declined if d["reason"].startswith(RULE)] == [
        f"{RULE}: a tensor in the elementwise chain is also read by another op"]
    assert permutes(r.program) == 2


def test_idempotent():
    first = layoutopt.optimize(RoundTrip(), (torch.randn(1, 3, 4, 5),))
    second = layoutopt.optimize(first.program, (torch.randn(1, 3, 4, 5),))
    assert RULE not in second.report.rewrites and op_counts(second.program) == op_counts(first.program)
