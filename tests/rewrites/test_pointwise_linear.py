"""Channel-axis linear through permutes/reshapes -> 1x1 conv, alone; one test per rejection."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import assert_rewrite, check_plan, op_counts
from layoutopt.rewrites import PointwiseLinearToConv

RULE = PointwiseLinearToConv()
PERMUTE, TRANSPOSE, ADD = "aten.permute.default", "aten.transpose.int", "aten.add.Tensor"
LINEAR, CONV2D = "aten.linear.default", "aten.conv2d.default"


class Pointwise(nn.Module):
    """``form`` picks how the model reaches the channel axis."""

    def __init__(self, form="permute", c=8, o=12, bias=True):
        super().__init__()
        self.form = form
        self.fc = nn.Linear(c, o, bias=bias)
        self.extra = nn.Parameter(torch.randn(o))

    def forward(self, x):
        n, c, h, w = x.shape
        if self.form == "permute":
            return self.fc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if self.form == "tokens":  # transformer-style [N, HW, C]
            t = x.flatten(2).transpose(1, 2)
            return self.fc(t).transpose(1, 2).reshape(n, -1, h, w)
        if self.form == "bias_add":
            return (self.fc(x.permute(0, 2, 3, 1)) + self.extra).permute(0, 3, 1, 2)
        raise AssertionError(self.form)


def x4(c=8, h=5, w=6):
    return (torch.randn(1, c, h, w),)


FORMS = {"permute": {PERMUTE: 2, LINEAR: 1},
         "tokens": {TRANSPOSE: 2, "aten.flatten.using_ints": 1, "aten.reshape.default": 1, LINEAR: 1},
         "bias_add": {PERMUTE: 2, LINEAR: 1, ADD: 1}}


def gone(before):
    return {**{op: 0 for op in before}, CONV2D: 1}


@pytest.mark.parametrize("form", FORMS)
def test_channel_linear_becomes_a_pointwise_conv(form):
    r = assert_rewrite(Pointwise(form).eval(), x4(), RULE, before=FORMS[form], after=gone(FORMS[form]), applied=1,
                       exact=False)
    (conv,) = [n for n in r.program.graph.nodes if n.target == torch.ops.aten.conv2d.default]
    assert conv.args[0].op == "placeholder" and tuple(conv.args[1].meta["val"].shape) == (12, 8, 1, 1)


def test_a_constant_added_after_the_linear_is_folded_into_its_bias():
    model = Pointwise("bias_add").eval()
    r = assert_rewrite(model, x4(), RULE, before=FORMS["bias_add"], after=gone(FORMS["bias_add"]), applied=1,
                       exact=False)
    assert torch.equal(r.program.state_dict["fc.bias"], model.fc.bias.detach() + model.extra.detach())


def test_linear_without_bias():
    assert_rewrite(Pointwise(bias=False).eval(), x4(), RULE, before=FORMS["permute"], after=gone(FORMS["permute"]),
                   applied=1, exact=False)


@pytest.mark.parametrize("form", ["permute", "tokens"])
def test_in_an_edge_program_the_decomposed_linear_becomes_a_convolution(form):
    before = {"aten.bmm.default": 1, "aten.expand_copy.default": 2, "aten.permute_copy.default": 3}
    assert_rewrite(Pointwise(form).eval(), x4(), RULE, dialect="edge", before=before,
                   after={**{op: 0 for op in before}, "aten.view_copy.default": 0, ADD: 0,
                          "aten.convolution.default": 1}, applied=1, exact=False)


def test_in_an_edge_program_a_declined_linear_is_put_back_as_it_was():
    # lifted to one linear for the rule, then restored: the same ops reading the same values
    assert_rewrite(Pointwise("permute").eval(), x4(c=8, h=8, w=5), RULE, dialect="edge",
                   before={"aten.bmm.default": 1, "aten.permute_copy.default": 3},
                   reason="several axes have the size of the channel axis")


def test_in_an_edge_program_linears_that_are_not_candidates_are_put_back_as_they_were():
    class Mlp(nn.Module):  # matmul's batched form and a 2-D addmm
        def __init__(self):
            super().__init__()
            self.a, self.head = nn.Linear(6, 5), nn.Linear(5 * 4, 3)

        def forward(self, x):
            return self.head(torch.relu(self.a(x.transpose(1, 2))).flatten(1))

    assert_rewrite(Mlp().eval(), (torch.randn(2, 6, 4),), RULE, dialect="edge",
                   before={"aten.bmm.default": 1, "aten.addmm.default": 1}, applied=0)


def test_rejects_ambiguous_channel_axis():
    assert_rewrite(Pointwise().eval(), x4(c=8, h=8, w=5), RULE, before=FORMS["permute"],
                   reason="several axes have the size of the channel axis")


def test_rejects_a_second_reader_on_the_chain():
    class M(Pointwise):
        def forward(self, x):
            t = x.permute(0, 2, 3, 1)
            return self.fc(t).permute(0, 3, 1, 2), t.sum()

    assert_rewrite(M().eval(), x4(), RULE, before=FORMS["permute"],
                   reason="a layout op on the input chain has another reader")


def test_rejects_a_layout_op_outside_the_allow_list():
    class M(Pointwise):
        def forward(self, x):
            n, c, h, w = x.shape
            t = x.permute(0, 2, 3, 1).contiguous().view(n, h * w, c)
            return self.fc(t).view(n, h, w, -1).permute(0, 3, 1, 2)

    assert_rewrite(M().eval(), x4(), RULE, before={LINEAR: 1, "aten.contiguous.default": 1},
                   reason="layout op aten.contiguous.default is not allow-listed")


def test_rejects_a_residual_add():
    class M(Pointwise):
        def forward(self, x):
            residual = x.mean(1, keepdim=True).permute(0, 2, 3, 1)
            return (self.fc(x.permute(0, 2, 3, 1)) + residual).permute(0, 3, 1, 2)

    assert_rewrite(M().eval(), x4(), RULE, before={LINEAR: 1, ADD: 1},
                   reason="the add after the linear is a residual, not a bias")


def test_rejects_a_weight_that_is_not_a_constant():
    class M(nn.Module):
        def forward(self, x, w):
            return F.linear(x.permute(0, 2, 3, 1), w).permute(0, 3, 1, 2)

    assert_rewrite(M(), (x4()[0], torch.randn(12, 8)), RULE, before=FORMS["permute"],
                   reason="weight is not a constant")


def test_rejects_a_shared_weight():
    class M(Pointwise):
        def forward(self, x):
            return self.fc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) + self.fc.weight.sum()

    assert_rewrite(M().eval(), x4(), RULE, before=FORMS["permute"], reason="weight is shared with another op")


def test_rejects_a_bias_that_is_not_a_constant():
    class M(Pointwise):
        def forward(self, x, b):
            return F.linear(x.permute(0, 2, 3, 1), self.fc.weight, b).permute(0, 3, 1, 2)

    assert_rewrite(M().eval(), (x4()[0], torch.randn(12)), RULE, before=FORMS["permute"],
                   reason="bias is not a constant read only here")


def test_rejects_an_output_chain_that_does_not_return_to_nchw():
    class M(Pointwise):
        def forward(self, x):  # (N, H, W, O) -> (N, O, W, H)
            return self.fc(x.permute(0, 2, 3, 1)).permute(0, 3, 2, 1)

    assert_rewrite(M().eval(), x4(), RULE, before=FORMS["permute"], reason="the output chain does not return to NCHW")


def test_a_linear_on_a_1x1_input_is_not_a_candidate():
    assert_rewrite(Pointwise().eval(), x4(h=1, w=1), RULE, before=FORMS["permute"], applied=0)


def test_planned_pointwise_linear_needs_no_transpose():
    r = check_plan(Pointwise("tokens").eval(), x4(), target="ethos-u55", after=2)
    assert r.report.rewrites == {RULE.name: 1}


def test_convnext_block_keeps_its_layer_norm_and_has_no_internal_transposes():
    from layoutopt.zoo.models import ConvNeXtBlock

    r = check_plan(ConvNeXtBlock(8).eval(), x4(), target="ethos-u55", after=2)
    assert op_counts(r.program)["aten.layer_norm.default"] == 1
