"""layoutopt's layout pass inside ExecuTorch's Cortex-M explicit-layout pipeline.

That pipeline makes every layout physical: convolutions and pooling become ``channels_last::``
ops on NHWC tensors wrapped in ``channels_last::permute_copy``, conv1d becomes conv2d, and
then greedy passes cancel adjacent permutes and permutes around elementwise islands before
each remaining int8 permute becomes one ``cortex_m::transpose`` copy
(``AtenToCortexMPass``). layoutopt's pass runs at that point, after the greedy passes and
before ``ValidateCortexMExplicitLayoutPass``: it states the graph as the integer program the
Arm-stage pass solves (``arm_plan``, with the Cortex-M op table ``ir.ops.cortex_m_kind``),
places every permute exactly (fewest bytes moved), and writes the plan back
(``arm_physical``). Float values (around ops left unquantized) may run in any order too, but
a conversion of one is priced prohibitively (``NON_INT8_ELEMENT_BYTES``): layout copies move
int8 tensors. Before planning, a channel split
(``split_with_sizes_copy``, a tuple the plan cannot lay out) becomes one ``slice_copy`` per
piece, which copies the same bytes and takes any layout, and clones into the default dim
order (a model's ``.contiguous()``, a copy of contiguous data here) go.
"""
from __future__ import annotations

import operator

import torch
from torch.fx import GraphModule, Node

from ..ir import ops
from ..ir.access import fake_value


def _split_to_slices(gm: GraphModule) -> bool:
    """``getitem(split_with_sizes_copy(x, sizes, d), i) -> slice_copy(x, d, s_i, s_i + sizes[i])``."""
    from executorch.exir.dialects._ops import ops as exir_ops

    split_op = exir_ops.edge.aten.split_with_sizes_copy.default
    slice_op = exir_ops.edge.aten.slice_copy.Tensor
    changed = False
    for split in list(gm.graph.nodes):
        if split.op != "call_function" or split.target != split_op:
            continue
        if not all(u.op == "call_function" and u.target is operator.getitem for u in split.users):
            continue
        x, sizes = split.args[0], list(split.args[1])
        dim = split.args[2] if len(split.args) > 2 else split.kwargs.get("dim", 0)
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        for item in list(split.users):
            i = item.args[1]
            with gm.graph.inserting_before(item):
                piece = gm.graph.call_function(slice_op, (x, dim, starts[i], starts[i] + sizes[i]))
            piece.meta = {k: dict(v) if isinstance(v, dict) else v for k, v in item.meta.items()}
            if "input_qparams" in split.meta:
                piece.meta["input_qparams"] = dict(split.meta["input_qparams"])
            piece.meta["val"] = fake_value(item)
            item.replace_all_uses_with(piece)
            gm.graph.erase_node(item)
        gm.graph.erase_node(split)
        changed = True
    return changed


def _drop_contiguous_copies(gm: GraphModule) -> bool:
    """``clone(x, dim_order=identity) -> x``: in this pipeline every tensor is contiguous, so the
    clone (a model's ``.contiguous()``) is a copy of the same bytes. Kept where it separates a
    graph input from an output (ExecuTorch does not alias them)."""
    changed = False
    output = gm.graph.output_node()
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or not ops.is_contiguous_copy(node):
            continue
        src = node.args[0]
        if not isinstance(src, Node) or src.op == "placeholder" or output in node.users:
            continue
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        changed = True
    return changed


#: the price of converting a non-int8 element: the pipeline's layout copies move int8 only, and
#: a float permute would be a portable float copy of four bytes per element; priced so that the
#: plan never chooses one where an int8 conversion (or none) will do
NON_INT8_ELEMENT_BYTES = 64


def element_bytes(dtype: torch.dtype) -> int:
    return 1 if dtype == torch.int8 else NON_INT8_ELEMENT_BYTES


def make_pass_class(records: list[dict] | None = None) -> type:
    """The pass as a class, the form Cortex-M's pass manager instantiates (with the
    ExportedProgram it lowers); each run appends what it planned to ``records``."""
    from torch.fx.passes.infra.pass_base import PassBase, PassResult

    from .arm_physical import plan_and_write

    class PlanCortexMLayout(PassBase):
        """Place every permute of the Cortex-M explicit-layout graph exactly (bytes moved, minimal)."""

        def __init__(self, exported_program=None) -> None:
            super().__init__()
            self.exported_program = exported_program

        def call(self, graph_module: GraphModule) -> PassResult:
            split = _split_to_slices(graph_module) | _drop_contiguous_copies(graph_module)
            _, record = plan_and_write(graph_module, self.exported_program, element_bytes=element_bytes,
                                       kind_of=ops.cortex_m_kind)
            if records is not None:
                records.append(record)
            changed = record["applied"] or split
            if changed:
                graph_module.recompile()
            return PassResult(graph_module, changed)

    return PlanCortexMLayout


def pass_list(records: list[dict] | None = None) -> list[type]:
    """Cortex-M's explicit-layout pass list with layoutopt's pass just before its validation
    (after which each int8 permute is one ``cortex_m::transpose``)."""
    from executorch.backends.cortex_m.passes.cortex_m_pass_manager import CortexMPassManager
    from executorch.backends.cortex_m.passes.explicit_layout_pass import ValidateCortexMExplicitLayoutPass

    passes = list(CortexMPassManager.explicit_layout_pass_list)
    passes.insert(passes.index(ValidateCortexMExplicitLayoutPass), make_pass_class(records))
    return passes
