"""Q/DQ-quantized graphs: quantize/dequantize are planned like elementwise ops, int8 exact."""
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers quantized_decomposed ops)
from torch import nn

from helpers import check_plan, op_counts

qd = torch.ops.quantized_decomposed


class QConvNet(nn.Module):
    """The shape PT2E quantization gives a conv chain: dq -> conv -> q around every conv,
    with a per-channel dequantized weight."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randint(-8, 8, (8, 3, 3, 3)).to(torch.int8), requires_grad=False)
        self.w2 = nn.Parameter(torch.randint(-8, 8, (8, 8, 1, 1)).to(torch.int8), requires_grad=False)
        self.register_buffer("s1", torch.rand(8) / 10 + 0.01)
        self.register_buffer("z1", torch.zeros(8, dtype=torch.int64))

    def forward(self, x):
        q = qd.quantize_per_tensor(x, 0.05, 0, -128, 127, torch.int8)
        w1 = qd.dequantize_per_channel(self.w1, self.s1, self.z1, 0, -127, 127, torch.int8)
        y = nn.functional.conv2d(qd.dequantize_per_tensor(q, 0.05, 0, -128, 127, torch.int8), w1, padding=1)
        y = qd.quantize_per_tensor(torch.relu(y), 0.1, -128, -128, 127, torch.int8)
        w2 = qd.dequantize_per_channel(self.w2, self.s1, self.z1, 0, -127, 127, torch.int8)
        y = nn.functional.conv2d(qd.dequantize_per_tensor(y, 0.1, -128, -128, 127, torch.int8), w2)
        return qd.quantize_per_tensor(y.mean((2, 3)), 0.1, 0, -128, 127, torch.int8)


def test_qdq_chain_plans_channels_last_and_keeps_every_qdq_pair():
    model = QConvNet().eval()
    inputs = (torch.randn(1, 3, 8, 8),)
    exported = torch.export.export(model, inputs)
    r = check_plan(model, inputs, before=4, after=1, exact=True)
    counts = op_counts(r.program)
    for name in ["quantized_decomposed.quantize_per_tensor.default",
                 "quantized_decomposed.dequantize_per_tensor.default",
                 "quantized_decomposed.dequantize_per_channel.default"]:
        assert counts[name] == op_counts(exported)[name], name
    assert r.report.declined == []
    # the one conversion moves the float input before it is quantized, at one byte an element
    assert r.report.conversions_after[0]["bytes"] == 3 * 8 * 8
