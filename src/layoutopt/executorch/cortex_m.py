"""Cortex-M: PT2E int8 with the CMSIS-NN quantizer, ``to_edge``, then the backend's pass
manager rewrites edge ops into ``cortex_m::`` kernels in place (no delegate). The ``.pte``
needs the Cortex-M kernels to run, so the figures are counted in the lowered program."""
from __future__ import annotations

from pathlib import Path

from .stages import cpu_ops, quantize, stage, write_pte

#: float ops that should have become CMSIS-NN kernels; left over, they run as portable float code
COMPUTE_OPS = ("aten.convolution", "aten.linear", "aten.addmm", "aten.mm", "aten.bmm")


def build(program, inputs, out_dir: Path, calibration) -> dict:
    from executorch.backends.cortex_m.edge_compile_config import cortex_m_edge_compile_config
    from executorch.backends.cortex_m.passes.cortex_m_pass_manager import CortexMPassManager
    from executorch.backends.cortex_m.quantizer.quantizer import CortexMQuantizer
    from executorch.exir import to_edge

    backend = "cortex-m"
    quantized = quantize(program, inputs, CortexMQuantizer(), calibration, backend)
    with stage(backend, "lower"):
        edge = to_edge(quantized, compile_config=cortex_m_edge_compile_config())
        # the backend's own entry point: its pass manager replaces the program it transforms
        edge._edge_programs["forward"] = CortexMPassManager(edge.exported_program()).transform()
    ops = cpu_ops(edge)
    pte = write_pte(edge, out_dir, backend)
    return {"pte": str(pte), "ops": ops, **kernel_coverage(ops)}


def kernel_coverage(ops: dict[str, int]) -> dict:
    kernels = {name: n for name, n in ops.items() if name.startswith("cortex_m.")}
    transposes = sum(n for name, n in kernels.items() if "transpose" in name or "permute" in name)
    float_compute = {name: n for name, n in ops.items() if name in COMPUTE_OPS}
    compute_kernels = sum(n for name, n in kernels.items()
                          if any(k in name for k in ("conv", "linear", "matmul", "bmm")))
    return {"cortex_m_kernels": sum(kernels.values()), "compute_kernels": compute_kernels,
            "float_compute_ops": float_compute, "cortex_m_transposes": transposes}
