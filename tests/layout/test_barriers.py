"""Which ops the planner lays out: in-place variants as their functional ops, ops outside the
op table as elementwise where replay shows their output follows their input, else barriers."""
import torch
from torch import nn

from helpers import check_plan
from layoutopt.layout.cost import op_charges
from layoutopt.targets import get_target

aten = torch.ops.aten
BARRIER = "op not in the layout table and its output does not follow its input's layout: operands kept as exported"


class SqueezeExcite(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(c // r, c, 1)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x):
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


def conv_bn(i, o, k=1, s=1, groups=1, act=True):
    layers = [nn.Conv2d(i, o, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(o)]
    return nn.Sequential(*layers, nn.Hardswish(inplace=True)) if act else nn.Sequential(*layers)


class MobileNetV3Nano(nn.Module):
    """torchvision's MobileNetV3 in miniature: in-place Hardswish, ReLU and Hardsigmoid, an
    inverted residual with squeeze-excite, a pooled linear classifier."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2)
        self.expand = conv_bn(16, 32)
        self.dw = conv_bn(32, 32, 3, groups=32)
        self.se = SqueezeExcite(32)
        self.project = conv_bn(32, 16, act=False)
        self.head = conv_bn(16, 48)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(48, 32), nn.Hardswish(inplace=True), nn.Dropout(0.2, inplace=True),
                                        nn.Linear(32, 10))

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.se(self.dw(self.expand(x))))
        return self.classifier(self.pool(self.head(x)).flatten(1))


def _targets(program):
    return {n.target for n in program.graph.nodes if n.op == "call_function"}


def test_inplace_activations_stay_in_the_graph_and_are_planned():
    model, x = MobileNetV3Nano().eval(), torch.randn(1, 3, 32, 32)
    assert {aten.hardswish_.default, aten.relu_.default, aten.hardsigmoid_.default} <= _targets(
        torch.export.export(model, (x,)))
    # before: each conv, pool and elementwise op between them converts (12); after: the input
    r = check_plan(model, (x,), before=12, after=1)
    assert r.report.declined == []
    assert r.report.conversions_after[0]["bytes"] == 3 * 32 * 32


def test_inplace_activations_with_channels_last_io_cost_nothing():
    r = check_plan(MobileNetV3Nano().eval(), (torch.randn(1, 3, 32, 32),), io_layout="channels_last",
                   before=13, after=0)
    assert r.report.declined == []


@torch.library.custom_op("layoutopt_test::twice", mutates_args=())
def twice(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@twice.register_fake
def _(x):
    return torch.empty_like(x)  # like eager: the output follows the input's layout


class Between(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return self.b(self.f(self.a(x)))


def test_unknown_op_that_follows_its_input_is_planned_like_relu():
    x = (torch.randn(1, 3, 8, 8),)
    for f in (twice, torch.relu):
        r = check_plan(Between(f).eval(), x, before=4, after=2)
        assert r.report.declined == []
        r = check_plan(Between(f).eval(), x, io_layout="channels_last", before=6, after=0)
        assert r.report.declined == []


def test_unknown_op_whose_output_is_contiguous_is_a_barrier():
    # triu returns contiguous whatever its input: around it, the exported layout stays
    x = (torch.randn(1, 3, 8, 8),)
    r = check_plan(Between(torch.triu).eval(), x, before=4, after=4)
    assert [(d["op"], d["reason"]) for d in r.report.declined] == [("aten.triu.default", BARRIER)]
    triu = next(n for n in r.program.graph.nodes if n.target == aten.triu.default)
    assert triu.args[0].meta["val"].is_contiguous()
    r = check_plan(Between(torch.triu).eval(), x, io_layout="channels_last", before=6, after=2)
    assert [d["reason"] for d in r.report.declined] == [BARRIER]


def test_unknown_unary_op_is_charged_as_elementwise():
    # read channels-last, written contiguous: the op itself transposes on an NHWC backend
    target = get_target("ethos-u55")
    x = torch.randn(1, 4, 5, 5).to(memory_format=torch.channels_last)
    (charge,) = op_charges("triu", aten.triu.default, (x,), {}, torch.triu(x), target)
    assert (charge.kind, charge.bytes) == ("forced", 100)
    assert op_charges("twice", twice._opoverload, (x,), {}, twice(x), target) == []


def test_explain_says_how_an_unknown_op_was_planned():
    from layoutopt.explain import explain

    x = (torch.randn(1, 3, 8, 8),)
    r = check_plan(Between(twice).eval(), x, io_layout="channels_last", after=0)
    assert "replay shows its output follows its input's layout: it is planned as elementwise" in explain(r, "twice")
    r = check_plan(Between(torch.triu).eval(), x, io_layout="channels_last", after=2)
    assert f"why: {BARRIER}\n" in explain(r, "triu")
