"""ExecuTorch edge programs: planned in the edge dialect with dim-order copies, lowered to a .pte;
and an optimized ATen program lowered through to_edge."""
import pytest
import torch

import layoutopt
from helpers import check_plan, op_counts
from layoutopt.zoo import build

pytest.importorskip("executorch", reason="edge programs come with the executorch extra")
from executorch.exir import EdgeProgramManager, to_edge  # noqa: E402

CLONE = "dim_order_ops._clone_dim_order.default"


def test_edge_program_is_planned_with_dim_order_copies_and_lowers():
    model, inputs = build("mobilenet_v2_nano")
    edge = to_edge(torch.export.export(model, inputs))
    r = check_plan(edge.exported_program(), inputs, before=26, after=1)
    assert op_counts(r.program)[CLONE] == 1
    clone = next(n for n in r.program.graph.nodes if layoutopt.ir.ops.op_name(n.target) == CLONE)
    assert clone.kwargs["dim_order"] == [0, 2, 3, 1]
    assert len(EdgeProgramManager({"forward": r.program}).to_executorch().buffer) > 0


def test_edge_program_manager_is_accepted_and_left_unchanged():
    model, inputs = build("shufflenet_nano")
    edge = to_edge(torch.export.export(model, inputs))
    code = edge.exported_program().graph_module.code
    r = layoutopt.optimize(edge, inputs, target="ethos-u55")
    assert r.report.transposes_after < r.report.transposes_before
    # the shuffles are carried into the weights that read them, as in ATen (the slices and
    # concatenations they leave spelled as edge ops)
    assert r.report.rewrites == {"carry_channel_order": 1}
    # what is left are dim-order clones ExecuTorch runs eagerly (10 with the shuffles kept)
    assert (r.report.transposes_after, r.report.transpose_bytes_after) == (4, 28672)
    assert edge.exported_program().graph_module.code == code


def test_optimized_aten_program_lowers_through_to_edge():
    model, inputs = build("wav2letter_nano")
    r = layoutopt.optimize(model, inputs, target="xnnpack")
    edge = to_edge(r.program)
    counts = op_counts(edge.exported_program())
    assert counts[CLONE] == 2 and counts["aten.convolution.default"] == 5
    assert len(edge.to_executorch().buffer) > 0
