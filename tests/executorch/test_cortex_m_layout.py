"""layoutopt's exact layout pass in ExecuTorch's Cortex-M explicit-layout pipeline: every
convolution and linear a CMSIS-NN kernel, permutes that only restate the layout of NHWC data
gone, and the same int8 outputs as the pipeline without the pass (only data moves)."""
import logging
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("executorch.backends.cortex_m")

from layoutopt.errors import InputError  # noqa: E402
from layoutopt.executorch import _prepare, compile_cortex_m  # noqa: E402
from layoutopt.executorch.cortex_m_layout import pass_list  # noqa: E402
from layoutopt.executorch.stages import quantize  # noqa: E402
from layoutopt.zoo.models import ShuffleUnit, Wav2LetterNano  # noqa: E402

pytestmark = pytest.mark.slow  # ExecuTorch's Cortex-M lowering: a minute


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    logging.disable(logging.NOTSET)


class SqueezeExcite(nn.Module):
    """A stem, a squeeze-excite block (pool, two 1x1 convs, sigmoid gate) and a 1x1 head."""

    def __init__(self, c: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.ReLU())
        self.fc1, self.fc2, self.head = nn.Conv2d(c, 4, 1), nn.Conv2d(4, c, 1), nn.Conv2d(c, 8, 1)

    def forward(self, x):
        x = self.stem(x)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.head(x * gate)


def shuffle_units():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), ShuffleUnit(16), ShuffleUnit(16),
                          nn.Conv2d(16, 8, 1)).eval()
    return model, (torch.randn(1, 3, 16, 16),)


def squeeze_excite():
    torch.manual_seed(0)
    return SqueezeExcite().eval(), (torch.randn(1, 3, 16, 16),)


def conv1d_stack():
    torch.manual_seed(0)
    return Wav2LetterNano(features=1).eval(), (torch.randn(1, 1, 64),)


def test_shuffle_units(tmp_path):
    stock = compile_cortex_m(*shuffle_units(), optimize=False, out_dir=tmp_path / "stock")
    ours = compile_cortex_m(*shuffle_units(), optimize=True, out_dir=tmp_path / "ours")
    assert stock["float_compute_ops"] == {"aten.convolution": 8} and stock["compute_kernels"] == 0
    # the first shuffle interleaves its cat as it copies; the second is folded into the head
    assert ours["layoutopt"]["rewrites"] == {"fold_channel_permutation": 1, "view_into_cat": 1}
    assert ours["ops"] == {
        "aten.cat": 2, "aten.slice_copy.Tensor": 4, "aten.view_copy": 5,
        "cortex_m.dequantize_per_tensor": 1, "cortex_m.quantize_per_tensor": 1,
        "cortex_m.quantized_conv2d_nhwc": 6, "cortex_m.quantized_depthwise_conv2d_nhwc": 2,
        "cortex_m.transpose": 2}
    # one transpose into NHWC at the input, one back at the NCHW output
    assert ours["cortex_m_transpose_bytes"] == 3 * 16 * 16 + 8 * 8 * 8
    (planned,) = ours["cortex_m_layout"]
    assert planned["applied"] and planned["solver_status"] == "optimal"
    # no fixed cost per transpose on Cortex-M: the objective is the bytes, at its bound
    assert planned["transpose_bytes_after"] == planned["cost_after"] == planned["cost_lower_bound"] < \
        planned["transpose_bytes_before"]


def test_the_explicit_pipeline_alone_is_a_third_flow(tmp_path):
    """``optimize=False, explicit_layout=True``: ExecuTorch's explicit-layout pipeline without
    layoutopt, whose int8 outputs the planned program reproduces bit for bit (the conv1d stack
    has no rewrite before quantization, so only data moves); on shuffle units it leaves more
    transposes than the plan."""
    explicit = compile_cortex_m(*conv1d_stack(), optimize=False, explicit_layout=True, out_dir=tmp_path / "e")
    ours = compile_cortex_m(*conv1d_stack(), optimize=True, out_dir=tmp_path / "ours")
    assert explicit["pipeline"] == ours["pipeline"] == "explicit-layout"
    assert explicit["layoutopt"] is None and explicit["cortex_m_layout"] is None
    assert explicit["float_compute_ops"] == {} and explicit["portable_copies"] == 0
    assert explicit["cortex_m_transposes"] == ours["cortex_m_transposes"] == 1
    assert torch.equal(explicit["outputs"][0], ours["outputs"][0])
    explicit = compile_cortex_m(*shuffle_units(), optimize=False, explicit_layout=True, out_dir=tmp_path / "s")
    assert explicit["compute_kernels"] == 8 and explicit["cortex_m_transposes"] == 10  # the plan: 2
    with pytest.raises(InputError, match="explicit-layout pipeline"):
        compile_cortex_m(*conv1d_stack(), optimize=True, explicit_layout=False, out_dir=tmp_path / "x")


def test_legacy_float_permutes_are_counted_as_portable_copies(tmp_path):
    stock = compile_cortex_m(*shuffle_units(), optimize=False, out_dir=tmp_path)
    # the legacy list leaves the float shuffles' permutes to portable kernels
    assert stock["pipeline"] == "legacy"
    assert stock["portable_copies"] == stock["ops"].get("aten.permute_copy", 0) + stock["ops"].get(
        "dim_order_ops._clone_dim_order", 0) > 0
    assert stock["portable_copy_bytes"] > 0


def test_squeeze_excite(tmp_path):
    ours = compile_cortex_m(*squeeze_excite(), optimize=True, out_dir=tmp_path)
    assert ours["layoutopt"]["rewrites"] == {"conv1x1_to_fc": 2}
    # the broadcast gate stays a float mul (no CMSIS-NN kernel broadcasts it); it runs on NHWC
    # data, so no transpose surrounds it
    assert ours["ops"] == {
        "aten.mul.Tensor": 1, "aten.view_copy": 3,
        "cortex_m.dequantize_per_tensor": 3, "cortex_m.quantize_per_tensor": 2,
        "cortex_m.quantized_activation": 1, "cortex_m.quantized_avg_pool2d_nhwc": 1,
        "cortex_m.quantized_conv2d_nhwc": 2, "cortex_m.quantized_linear": 2, "cortex_m.transpose": 2}
    assert ours["float_compute_ops"] == {}


def test_conv1d_stack_with_one_input_channel(tmp_path):
    stock = compile_cortex_m(*conv1d_stack(), optimize=False, out_dir=tmp_path / "stock")
    ours = compile_cortex_m(*conv1d_stack(), optimize=True, out_dir=tmp_path / "ours")
    assert stock["float_compute_ops"] == {"aten.convolution": 5}
    # C=1 input: NCW and NWC are the same bytes, so only the NCW output is a transpose
    assert ours["ops"] == {
        "aten._log_softmax": 1, "aten.view_copy": 2,
        "cortex_m.dequantize_per_tensor": 2, "cortex_m.quantize_per_tensor": 2,
        "cortex_m.quantized_conv2d_nhwc": 4, "cortex_m.quantized_depthwise_conv2d_nhwc": 1,
        "cortex_m.transpose": 1}
    assert ours["float_compute_ops"] == {} and ours["cortex_m_transpose_bytes"] == 12 * 32


def _lowered(model, inputs, passes):
    from executorch.backends.cortex_m.edge_compile_config import cortex_m_edge_compile_config
    from executorch.backends.cortex_m.passes.cortex_m_pass_manager import CortexMPassManager
    from executorch.backends.cortex_m.quantizer.quantizer import CortexMQuantizer
    from executorch.exir import to_edge

    program, inputs, _, _ = _prepare(model, inputs, "cortex-m", "cortex-m", True, "unused")
    quantized = quantize(program, inputs, CortexMQuantizer(use_explicit_layout=True), None, "cortex-m")
    edge = to_edge(quantized, compile_config=cortex_m_edge_compile_config())
    return CortexMPassManager(edge.exported_program(), passes=passes, use_explicit_layout=True).transform()


@pytest.mark.parametrize("build", [shuffle_units, squeeze_excite, conv1d_stack])
def test_only_data_moves(build):
    """The pipeline with and without the pass computes the same outputs bit for bit."""
    model, inputs = build()
    planned = _lowered(model, inputs, pass_list())
    stock = _lowered(model, inputs, None)
    x = torch.randn(*inputs[0].shape, generator=torch.Generator().manual_seed(1)) * 3
    a, b = stock.module()(x), planned.module()(x)
    assert torch.equal(a, b), f"max abs diff {float((a - b).abs().max())}"


def test_idempotent():
    records = []
    passes = pass_list(records)
    planning = passes[passes.index(next(p for p in passes if p.__name__ == "PlanCortexMLayout"))]
    _lowered(*shuffle_units(), passes[:passes.index(planning) + 1] + [planning] + passes[passes.index(planning) + 1:])
    first, second = records
    assert first["applied"] and not second["applied"]
    assert second["transpose_bytes_before"] == first["transpose_bytes_after"]


class BroadcastScale(nn.Module):
    """A mul whose second operand is computed with a lower rank than the first (as ViT's
    attention scales are)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 16), nn.Linear(16, 8)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h * h.mean((0, 1)))


def test_an_operand_of_lower_rank_is_read_as_it_stands(tmp_path):
    torch.manual_seed(0)
    ours = compile_cortex_m(BroadcastScale().eval(), (torch.randn(1, 8, 16),), optimize=True, out_dir=tmp_path)
    assert ours["float_compute_ops"] == {} and ours["compute_kernels"] == 2
    assert ours["cortex_m_transposes"] == 0


def test_a_program_the_explicit_pipeline_refuses_falls_back_to_the_legacy_list(tmp_path):
    # a lone shuffle unit: its last conv's ReLU shares the input's qparams through the cat, so
    # the activation cannot be fused and the pipeline's validation refuses the convolution
    torch.manual_seed(0)
    ours = compile_cortex_m(ShuffleUnit(16).eval(), (torch.randn(1, 16, 8, 8),), optimize=True, out_dir=tmp_path)
    assert ours["pipeline"].startswith("legacy (the explicit-layout pipeline refused the program")
    assert ours["cortex_m_layout"] is None and ours["compute_kernels"] >= 2
