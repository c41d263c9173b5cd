"""The rules on ExecuTorch edge programs: the same rewrites as on the ATen program, spelled in
the edge dialect (no ATen op left), outputs equal, and the program still lowers to a .pte."""
import copy
import operator

import pytest
import torch
from torch import nn

import layoutopt
from helpers import check_plan, op_counts
from layoutopt.ir import ops
from layoutopt.zoo import build
from test_channel_shuffle import U85 as U85_CONV
from test_channel_shuffle import Shuffle
from test_conv1d_to_conv2d import Conv1dStack
from test_flatten_linear_to_nhwc import LeNet
from test_fold_channel_permutation import ShuffleThen
from test_fuse_permute_chains import Chain
from test_permute_through_join import Join
from test_pointwise_linear import Pointwise

pytest.importorskip("executorch", reason="edge programs come with the executorch extra")
from executorch.exir import EdgeProgramManager, to_edge  # noqa: E402

EDGE_PERMUTE, EDGE_VIEW = "aten.permute_copy.default", "aten.view_copy.default"


def edge_of(model, inputs):
    return to_edge(torch.export.export(model, inputs)).exported_program()


def check_edge(model, inputs, target, rewrites, **expect):
    """The edge program gets exactly ``rewrites`` (as the ATen program does), every op is an
    edge op, the plan is at its bound, outputs are equal, and it lowers."""
    aten = layoutopt.optimize(model, inputs, target=target)
    assert aten.report.rewrites == rewrites, aten.report.rewrites
    r = check_plan(edge_of(model, inputs), inputs, target=target, **expect)
    assert r.report.rewrites == rewrites, r.report.to_dict()
    for node in r.program.graph.nodes:
        if node.op == "call_function" and node.target is not operator.getitem:
            assert ops.aten_overload(node.target) is not node.target, f"{node.name} is not an edge op"
    assert lowers(r.program)
    return r


def lowers(program) -> bool:
    """Whether ``program`` lowers to a non-empty .pte (on a copy: lowering edits in place)."""
    return len(EdgeProgramManager({"forward": copy.deepcopy(program)}).to_executorch().buffer) > 0


@pytest.mark.parametrize("model,inputs,target,rewrites", [
    (Conv1dStack(), (torch.randn(1, 8, 32),), "ethos-u55", {"conv1d_to_conv2d": 3, "cancel_squeeze_unsqueeze": 2}),
    (Conv1dStack(depthwise=True), (torch.randn(1, 8, 32),), "cortex-m",
     {"conv1d_to_conv2d": 3, "cancel_squeeze_unsqueeze": 2}),
    (Pointwise("permute"), (torch.randn(1, 8, 5, 6),), "ethos-u55", {"pointwise_linear_to_conv": 1}),
    (Pointwise("tokens"), (torch.randn(1, 8, 5, 6),), "ethos-u55", {"pointwise_linear_to_conv": 1}),
    (Pointwise("bias_add"), (torch.randn(1, 8, 5, 6),), "ethos-u55", {"pointwise_linear_to_conv": 1}),
    (Pointwise("permute", bias=False), (torch.randn(1, 8, 5, 6),), "ethos-u55", {"pointwise_linear_to_conv": 1}),
    (LeNet(), (torch.randn(1, 1, 28, 28),), "ethos-u55", {"flatten_linear_to_nhwc": 1}),
    (Shuffle(2), (torch.randn(1, 8, 5, 6),), U85_CONV, {"channel_shuffle_to_conv": 1}),
    (Chain([("p", (0, 2, 3, 1)), ("t", (1, 2)), ("p", (0, 2, 1, 3))]), (torch.randn(1, 3, 4, 5),), "ethos-u55",
     {"compose_permutes": 2}),
    (Join("cat"), (torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5)), "xnnpack",
     {"permute_through_join": 1, "compose_permutes": 1}),
    (Join("scale"), (torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5)), "xnnpack",
     {"permute_through_join": 1, "compose_permutes": 1}),
    (ShuffleThen(("conv", "head")), (torch.randn(1, 8, 5, 6),), "ethos-u55", {"carry_channel_order": 1}),
], ids=["conv1d", "conv1d_depthwise", "pointwise_permute", "pointwise_tokens", "pointwise_bias_add",
        "pointwise_no_bias", "lenet_head", "shuffle_u85", "permute_chain", "join_cat", "join_constant",
        "fold_shuffle"])
def test_edge_program_gets_the_same_rewrites(model, inputs, target, rewrites):
    check_edge(model.eval(), inputs, target, rewrites)


def test_conv1d_stack_in_edge_has_no_views_between_the_convs():
    r = check_edge(Conv1dStack().eval(), (torch.randn(1, 8, 32),), "ethos-u55",
                   {"conv1d_to_conv2d": 3, "cancel_squeeze_unsqueeze": 2}, before=6, after=2)
    counts = op_counts(r.program)
    assert counts["aten.convolution.default"] == 3
    assert counts["aten.unsqueeze_copy.default"] == 1 and counts["aten.squeeze_copy.dims"] == 1
    for node in r.program.graph.nodes:
        if ops.op_name(node.target) == "aten.convolution.default":
            assert node.args[0].meta["val"].dim() == 4


def test_conv1d_with_batch_norm_in_core_aten_form_meets_in_4d():
    model = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(),
                          nn.Conv1d(8, 8, 3, padding=1)).eval()
    r = check_edge(model, (torch.randn(1, 4, 16),), "cortex-m",
                   {"conv1d_to_conv2d": 2, "sink_squeeze": 2, "cancel_squeeze_unsqueeze": 1})
    counts = op_counts(r.program)
    assert counts["aten.unsqueeze_copy.default"] == 1 and counts["aten.squeeze_copy.dims"] == 1


def test_the_pointwise_conv_replaces_the_decomposed_linear():
    r = check_edge(Pointwise("permute").eval(), (torch.randn(1, 8, 5, 6),), "ethos-u55",
                   {"pointwise_linear_to_conv": 1}, after=2)
    counts = op_counts(r.program)
    assert counts["aten.convolution.default"] == 1
    assert counts["aten.bmm.default"] + counts["aten.mm.default"] + counts["aten.addmm.default"] == 0
    assert counts[EDGE_PERMUTE] + counts["aten.expand_copy.default"] == 0


class Mlp(nn.Module):
    """Linears no rule rewrites: a token MLP on a transposed input (matmul's batched form in
    edge) and a 2-D head (addmm)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 12), nn.Linear(12, 5, bias=False)
        self.head = nn.Linear(5 * 4, 3)

    def forward(self, x):
        y = self.b(torch.relu(self.a(x.transpose(1, 2))))
        return self.head(y.flatten(1))


def test_linears_no_rule_touches_are_put_back_as_they_were():
    inputs = (torch.randn(2, 6, 4),)
    source = edge_of(Mlp().eval(), inputs)
    r = layoutopt.optimize(source, inputs, target="ethos-u55", plan=False)
    assert r.report.rewrites == {}
    assert op_counts(r.program) == op_counts(source)
    assert [op_counts(source)[f"aten.{op}.default"] for op in ("bmm", "mm", "addmm")] == [1, 1, 1]
    assert r.report.bit_exact


def test_channels_last_shuffle_is_declined_in_edge_with_its_reason():
    inputs = (torch.randn(1, 8, 5, 6),)
    r = layoutopt.optimize(edge_of(Shuffle(2).eval(), inputs), inputs, target="ethos-u55")
    assert r.report.rewrites == {}
    assert any(d["reason"].startswith("channel_shuffle_to_channels_last: in an edge program the permute back")
               for d in r.report.declined), r.report.declined


def test_quantized_edge_conv1d_keeps_qdq_next_to_the_conv():
    from test_pt2e import ethos_u_quantizer
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model, inputs = build("wav2letter_nano")
    prepared = prepare_pt2e(torch.export.export(model, inputs).module(check_guards=False), ethos_u_quantizer())
    prepared(*inputs)
    edge = to_edge(torch.export.export(convert_pt2e(prepared), inputs)).exported_program()
    r = check_plan(edge, inputs, target="cortex-m", atol=0.0)
    assert r.report.rewrites["conv1d_to_conv2d"] == 5
    for node in r.program.graph.nodes:
        if ops.op_name(node.target) == "aten.convolution.default":
            weight = node.args[1].args[0] if ops.family(node.args[1].target) is ops.Family.COPY else node.args[1]
            assert ops.is_dequantize_per_tensor(node.args[0].target)
            assert ops.is_dequantize_per_channel(weight.target)
    assert lowers(r.program)


def test_idempotent_on_edge():
    inputs = (torch.randn(1, 8, 32),)
    once = layoutopt.optimize(edge_of(Conv1dStack().eval(), inputs), inputs, target="ethos-u55")
    twice = layoutopt.optimize(once.program, inputs, target="ethos-u55")
    assert twice.report.rewrites == {} and op_counts(twice.program) == op_counts(once.program)
