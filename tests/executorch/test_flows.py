"""The ExecuTorch flows, stock and with layoutopt, measured by the backends' own outputs:
TOSA op counts and Vela cycles (Ethos-U), CMSIS-NN kernel coverage (Cortex-M), the .pte's
outputs through ExecuTorch's runtime (XNNPACK). Small models, so each flow takes seconds."""
import sys

import pytest
import torch
from torch import nn

pytest.importorskip("executorch", reason="the ExecuTorch flows need the executorch extra "
                                         "(pip install 'layoutopt[executorch]')")

from layoutopt.errors import LayoutoptError  # noqa: E402
from layoutopt.executorch import CompileError, compile_cortex_m, compile_ethos_u, compile_xnnpack  # noqa: E402
from layoutopt.executorch.reference import compare  # noqa: E402
from layoutopt.zoo.models import ShuffleUnit, Wav2LetterNano  # noqa: E402

pytestmark = pytest.mark.slow  # whole ExecuTorch flows, each lowering and compiling


def tiny_shufflenet():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), ShuffleUnit(16), ShuffleUnit(16),
                          nn.Conv2d(16, 8, 1)).eval()
    return model, (torch.randn(1, 3, 16, 16),)


def side_by_side(compile_fn, model, inputs, tmp_path, **kw):
    stock = compile_fn(model, inputs, optimize=False, out_dir=tmp_path / "stock", **kw)
    ours = compile_fn(model, inputs, optimize=True, out_dir=tmp_path / "layoutopt", **kw)
    return stock, ours


def test_ethos_u55_channel_shuffles_cost_fewer_transposes_and_cycles(tmp_path):
    stock, ours = side_by_side(compile_ethos_u, *tiny_shufflenet(), tmp_path, target="ethos-u55-128")
    assert stock["layoutopt"] is None
    # shuffles stay as written before quantization; the backend's graph stores the channels of
    # both in the order the shuffle would give them (the last one's, read by a 1x1 conv only,
    # goes into that conv's weights): only the input's and the output's transposes remain
    assert ours["layoutopt"]["rewrites"] == {}
    assert [r["channel_order"]["carried_gathers"] for r in ours["arm_layout"]] == [2]
    assert stock["tosa_ops"]["TRANSPOSE"] == 6
    assert {op: n for op, n in ours["tosa_ops"].items() if not op.startswith("CONST")} == {
        "CONCAT": 2, "CONV2D": 6, "DEPTHWISE_CONV2D": 2, "RESCALE": 8, "SLICE": 5, "TRANSPOSE": 2}
    assert compare(stock["tosa_files"], ours["tosa_files"])["bit_exact"]
    assert ours["vela"]["cycles_total"] < stock["vela"]["cycles_total"]
    assert ours["vela"]["transpose_cycles"] < stock["vela"]["transpose_cycles"]
    for r in (stock, ours):
        assert r["partitions"] == 1 and len(r["tosa_files"]) == 1
        assert r["tosa_ops"]["CONV2D"] == 6 and r["tosa_ops"]["DEPTHWISE_CONV2D"] == 2
        assert (tmp_path / ("layoutopt" if r["optimized"] else "stock") / "model.pte").stat().st_size > 0
        assert r["vela"]["cycles_npu"] <= r["vela"]["cycles_total"]


def test_ethos_u85_channel_shuffles_are_carried_as_channel_orders_too(tmp_path):
    stock, ours = side_by_side(compile_ethos_u, *tiny_shufflenet(), tmp_path, target="ethos-u85-256")
    assert ours["layoutopt"]["rewrites"] == {}
    assert ours["tosa_ops"]["CONV2D"] == stock["tosa_ops"]["CONV2D"]
    assert ours["tosa_ops"]["TRANSPOSE"] == 2 < stock["tosa_ops"]["TRANSPOSE"]
    assert compare(stock["tosa_files"], ours["tosa_files"])["bit_exact"]
    assert ours["vela"]["cycles_total"] < stock["vela"]["cycles_total"]


def test_cortex_m_convolutions_of_an_nchw_model_become_cmsis_nn_kernels(tmp_path):
    torch.manual_seed(0)
    stock, ours = side_by_side(compile_cortex_m, Wav2LetterNano().eval(), (torch.randn(1, 16, 64),), tmp_path)
    assert stock["float_compute_ops"] == {"aten.convolution": 5} and stock["compute_kernels"] == 0
    assert ours["float_compute_ops"] == {} and ours["ops"]["cortex_m.quantized_conv2d_nhwc"] == 5
    # 16 input features: NCW -> NWC at the input and back at the output (the stock
    # explicit-layout pipeline needs the same two)
    assert ours["cortex_m_transposes"] == 2 and ours["cortex_m_transpose_bytes"] == 16 * 64 + 12 * 32


def test_xnnpack_pte_runs_and_matches_the_stock_pte(tmp_path):
    model, inputs = tiny_shufflenet()
    stock, ours = side_by_side(compile_xnnpack, model, inputs, tmp_path)
    expected = model(*inputs)
    stock_err = float((stock["outputs"][0] - expected).abs().max())
    ours_err = float((ours["outputs"][0] - expected).abs().max())
    # XNNPACK lays out its delegate itself and runs shuffles fastest as written; only the
    # shuffle read by the last 1x1 conv alone goes, into that conv's weights
    assert ours["layoutopt"]["rewrites"] == {"fold_channel_permutation": 1}
    assert ours["partitions"] == stock["partitions"] >= 1 and ours["cpu_ops"] == stock["cpu_ops"]
    assert float((ours["outputs"][0] - stock["outputs"][0]).abs().max()) < 0.05
    assert ours_err < 0.05 and stock_err < 0.05


def test_nothing_delegated_is_one_clear_error(tmp_path):
    class Sort(nn.Module):
        def forward(self, x):
            return torch.sort(x).values

    with pytest.raises(CompileError, match=r"^ethos-u55-128: nothing was delegated to the NPU; ops left on the "
                                           r"CPU: aten.sort, "):
        compile_ethos_u(Sort(), (torch.rand(8),), optimize=False, out_dir=tmp_path)


def test_a_failing_stage_is_named(tmp_path):
    model, inputs = tiny_shufflenet()
    with pytest.raises(CompileError, match=r"^xnnpack: quantize failed"):
        compile_xnnpack(model, inputs, optimize=False, out_dir=tmp_path, calibration=[(torch.randn(1, 5, 16, 16),)])


def test_missing_extra_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "executorch", None)
    with pytest.raises(LayoutoptError, match=r"pip install 'layoutopt\[executorch\]'"):
        compile_cortex_m(*tiny_shufflenet(), out_dir=tmp_path)
