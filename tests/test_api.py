"""optimize(): inputs never mutated, idempotent, errors a user can act on."""

import pytest
import torch
from torch import nn

import layoutopt
from helpers import op_counts
from layoutopt.zoo import build


def test_optimize_never_mutates_the_module_or_the_program():
    model, inputs = build("mobilenet_v2_nano")
    params = {k: (v.clone(), v.stride()) for k, v in model.state_dict().items()}
    ep = torch.export.export(model, inputs)
    code = ep.graph_module.code
    state = {k: v.clone() for k, v in ep.state_dict.items()}
    layoutopt.optimize(model, inputs)
    layoutopt.optimize(ep)
    assert ep.graph_module.code == code
    assert all(torch.equal(ep.state_dict[k], v) for k, v in state.items())
    for k, v in model.state_dict().items():
        assert torch.equal(v, params[k][0]) and v.stride() == params[k][1], k


@pytest.mark.parametrize("name", ["mobilenet_v2_nano", "shufflenet_nano", "convnext_nano"])
def test_optimizing_twice_changes_nothing(name):
    model, inputs = build(name)
    once = layoutopt.optimize(model, inputs)
    twice = layoutopt.optimize(once.program)
    assert op_counts(twice.program) == op_counts(once.program)
    assert twice.report.transposes_before == twice.report.transposes_after == once.report.transposes_after
    assert twice.report.bit_exact


def test_result_program_runs_through_module_and_matches_eager():
    model, inputs = build("mobilenet_v2_nano")
    result = layoutopt.optimize(model, inputs)
    got = result.program.module()(*inputs)
    torch.testing.assert_close(got, model(*inputs), rtol=1e-5, atol=1e-5)


def test_report_dict_has_the_documented_fields():
    model, inputs = build("mobilenet_v2_nano")
    d = layoutopt.optimize(model, inputs, target="xnnpack").report.to_dict()
    for key in ["target", "transposes_before", "transposes_after", "transpose_bytes_before",
                "transpose_bytes_after", "lower_bound_bytes", "optimality_gap", "max_abs_diff",
                "declined", "seconds", "schema_version"]:
        assert key in d, key
    assert d["target"] == "xnnpack" and d["optimality_gap"] == 0.0


def test_unknown_target_is_a_target_error():
    model, inputs = build("mobilenet_v2_nano")
    with pytest.raises(layoutopt.TargetError, match="unknown target 'npu9000'"):
        layoutopt.optimize(model, inputs, target="npu9000")


def test_module_that_fails_to_export_is_an_export_error():
    class DataDependent(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x * 2
            return x

    with pytest.raises(layoutopt.ExportError, match="torch.export failed on DataDependent"):
        layoutopt.optimize(DataDependent(), (torch.randn(1, 3, 4, 4),))


def test_dynamic_shapes_are_refused_by_node_name():
    model, inputs = build("mobilenet_v2_nano")
    batch = torch.export.Dim("batch", min=2, max=8)
    ep = torch.export.export(model, (torch.randn(2, 3, 64, 64),), dynamic_shapes=({0: batch},))
    with pytest.raises(layoutopt.UnsupportedError, match="dynamic size"):
        layoutopt.optimize(ep)


def test_module_without_inputs_is_an_input_error():
    model, _ = build("mobilenet_v2_nano")
    with pytest.raises(layoutopt.InputError, match="needs example_inputs"):
        layoutopt.optimize(model)


def test_bad_io_layout_is_an_input_error():
    model, inputs = build("mobilenet_v2_nano")
    with pytest.raises(layoutopt.InputError, match="io_layout"):
        layoutopt.optimize(model, inputs, io_layout="nhwc")


def test_example_inputs_of_the_wrong_shape_or_dtype_are_input_errors():
    model, inputs = build("mobilenet_v2_nano")
    ep = torch.export.export(model, inputs)
    with pytest.raises(layoutopt.InputError, match=r"input 0 \('x'\) is \(1, 3, 32, 32\)"):
        layoutopt.optimize(ep, (torch.randn(1, 3, 32, 32),))
    with pytest.raises(layoutopt.InputError, match="torch.float64"):
        layoutopt.optimize(ep, (inputs[0].double(),))
    with pytest.raises(layoutopt.InputError, match="takes 1 input"):
        layoutopt.optimize(ep, (inputs[0], inputs[0]))


def test_graph_of_unknown_ops_only_comes_back_unchanged_with_reasons():
    class OnlyUnknown(nn.Module):
        def forward(self, x):
            return torch.sort(torch.cumprod(x, 1), dim=2).values

    x = torch.randn(1, 3, 4, 4)
    ep = torch.export.export(OnlyUnknown(), (x,))
    result = layoutopt.optimize(ep, (x,))
    assert op_counts(result.program) == op_counts(ep)
    assert {d["op"] for d in result.report.declined} == {"aten.cumprod.default", "aten.sort.default"}
    assert result.report.bit_exact


def test_a_result_that_fails_to_run_is_an_error_not_a_program(monkeypatch):
    import layoutopt.api as api

    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(api, "compare", broken)
    model, inputs = build("mobilenet_v2_nano")
    with pytest.raises(layoutopt.LayoutoptError, match="verification failed: RuntimeError: kernel exploded"):
        layoutopt.optimize(model, inputs)
