"""Cortex-M: PT2E int8 with the CMSIS-NN quantizer, ``to_edge``, then the backend's pass
manager rewrites edge ops into ``cortex_m::`` kernels in place (no delegate). The ``.pte``
needs the Cortex-M kernels to run, so the figures are counted in the lowered program.

Stock is the backend's default (legacy) pass list. With ``explicit_layout`` the backend's
explicit-layout pipeline runs (its quantizer mode and pass list); with ``plan_layout`` too,
layoutopt's exact layout pass goes into it where each remaining permute becomes one
``cortex_m::transpose`` (``cortex_m_layout``)."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from .stages import cpu_ops, quantize, stage, write_pte

#: float ops that should have become CMSIS-NN kernels; left over, they run as portable float code
COMPUTE_OPS = ("aten.convolution", "aten.linear", "aten.addmm", "aten.mm", "aten.bmm")
#: layout changes left to ExecuTorch's portable kernels (each a copy of its input)
PORTABLE_COPIES = ("aten.permute_copy", "dim_order_ops._clone_dim_order", "dim_order_ops._to_dim_order_copy")


def build(program, inputs, out_dir: Path, calibration, plan_layout: bool = False,
          explicit_layout: bool | None = None) -> dict:
    from executorch.backends.cortex_m.edge_compile_config import cortex_m_edge_compile_config
    from executorch.backends.cortex_m.passes.cortex_m_pass_manager import CortexMPassManager
    from executorch.backends.cortex_m.quantizer.quantizer import CortexMQuantizer
    from executorch.exir import to_edge

    from .cortex_m_layout import pass_list

    backend = "cortex-m"
    explicit_layout = plan_layout if explicit_layout is None else explicit_layout
    if plan_layout and not explicit_layout:
        raise ValueError("layoutopt's Cortex-M pass runs in the explicit-layout pipeline")
    quantized = quantize(program, inputs, CortexMQuantizer(use_explicit_layout=explicit_layout), calibration,
                         backend)
    planned: list[dict] = []
    with stage(backend, "lower"):
        start = time.perf_counter()
        edge = to_edge(quantized, compile_config=cortex_m_edge_compile_config())
        manager = CortexMPassManager(edge.exported_program(), passes=pass_list(planned) if plan_layout else None,
                                     use_explicit_layout=explicit_layout)
        # the backend's own entry point: its pass manager replaces the program it transforms
        edge._edge_programs["forward"] = manager.transform()
        lower_seconds = time.perf_counter() - start
    ops = cpu_ops(edge)
    lowered = edge.exported_program()
    outputs, outputs_error = run_lowered(lowered, inputs)
    pte = write_pte(edge, out_dir, backend)
    return {"pte": str(pte), "ops": ops, **kernel_coverage(ops),
            "cortex_m_transpose_bytes": copied_bytes(lowered, ("cortex_m.transpose",)),
            "portable_copy_bytes": copied_bytes(lowered, PORTABLE_COPIES),
            "outputs": outputs, "outputs_error": outputs_error,
            "lower_seconds": lower_seconds, "cortex_m_layout": planned or None,
            "pipeline": "explicit-layout" if explicit_layout else "legacy"}


def run_lowered(ep, inputs) -> tuple[list | None, str | None]:
    """The lowered program's outputs on ``inputs`` through the ``cortex_m`` kernels' reference
    implementations, or None and why it cannot run in Python (an op without a kernel for its
    dtype, as an int8 ``hardswish`` the legacy pass list leaves)."""
    try:
        with torch.no_grad():
            outputs = ep.module()(*inputs)
    except Exception as exc:  # the program's figures stand; only its outputs are unknown
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    return (list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]), None


def copied_bytes(ep, names: tuple[str, ...]) -> int:
    """Bytes the program's copies named ``names`` move (each reads and writes its input once)."""
    total = 0
    for node in ep.graph.nodes:
        if node.op == "call_function" and any(name in str(node.target) for name in names):
            val = node.args[0].meta["val"]
            total += val.numel() * val.element_size()
    return total


def kernel_coverage(ops: dict[str, int]) -> dict:
    kernels = {name: n for name, n in ops.items() if name.startswith("cortex_m.")}
    transposes = sum(n for name, n in kernels.items() if "transpose" in name or "permute" in name)
    float_compute = {name: n for name, n in ops.items() if name in COMPUTE_OPS}
    portable = sum(n for name, n in ops.items() if name in PORTABLE_COPIES)
    compute_kernels = sum(n for name, n in kernels.items()
                          if any(k in name for k in ("conv", "linear", "matmul", "bmm")))
    return {"cortex_m_kernels": sum(kernels.values()), "compute_kernels": compute_kernels,
            "float_compute_ops": float_compute, "cortex_m_transposes": transposes, "portable_copies": portable}
