"""layoutopt inside ExecuTorch's deployment flows, measured by the backends' own tools.

Each ``compile_*`` runs the backend's standard flow: ``torch.export`` -> PT2E int8 with the
backend's quantizer (seeded random calibration batches unless ``calibration`` is given) ->
``to_edge_transform_and_lower`` with its partitioner (Cortex-M: ``to_edge`` and its pass
manager) -> ``to_executorch``. With ``optimize=False`` that flow is untouched; with
``optimize=True`` layoutopt works on the float ATen program before quantization, where the
backend's quantizer then annotates the ops layoutopt chose:

* Ethos-U: the Arm backend lays tensors out itself from the ops it sees (dim orders inside
  the program do not reach its decisions), so op-form rewrites run before quantization and
  the layout is planned inside the backend's pipeline (``arm_layout``), where channel
  shuffles are first carried as stored channel orders (the target's
  ``ShuffleForm.CHANNEL_ORDER``; the ATen rules leave shuffles and channel gathers to it). The
  conv1d rules are left out: the backend converts conv1d itself, and Vela measures its form
  cheaper on the transposes it needs at the model's edges.
* Cortex-M: the backend's default pass list lowers a convolution to a CMSIS-NN kernel only
  when its input is channels-last in memory, and lowers every int8 permute to a copy, also
  one that only restates the layout of channels-last data. So layoutopt runs the backend's
  explicit-layout pipeline, where every layout is physical and conv1d becomes conv2d, and
  places its permutes exactly there (``cortex_m_layout``); before quantization only op-form
  rewrites run (the conv1d rules are left out: the pipeline converts conv1d itself).
* XNNPACK: like the Arm backend, its partitioner lays out delegated tensors itself (a planned
  dim order only adds a CPU copy at the delegate's edge), so only op-form rewrites run; and
  it runs conv1d itself, while the squeeze/unsqueeze pair of the conv2d form would stay on the
  CPU and split the delegate, so the conv1d rules are left out here too.

Importing this module does not import ExecuTorch; each function does, and says how to install
it when it is missing.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError
from .arm_hook import ArmHookError, arm_layout
from .stages import CompileError, require_executorch

#: rules each flow leaves out, and why (see the module docstring)
_CONV1D_RULES = ("conv1d_to_conv2d", "sink_squeeze", "cancel_squeeze_unsqueeze")
SKIP_RULES = {"ethos-u": _CONV1D_RULES, "cortex-m": _CONV1D_RULES, "xnnpack": _CONV1D_RULES}
#: whether a layout plan of the ATen program reaches the backend's decisions
PLAN = {"ethos-u": False, "cortex-m": False, "xnnpack": False}


def _program(model, example_inputs):
    import torch

    from ..api import source_program

    if example_inputs is None:
        raise InputError("the ExecuTorch flows need example_inputs (they calibrate and trace with them)")
    return source_program(model.eval() if isinstance(model, torch.nn.Module) else model, example_inputs,
                          edge=False)


def _prepare(model, example_inputs, backend: str, layout_target: str, optimize: bool, out_dir,
             plan: bool | None = None, skip_rules: Sequence[str] | None = None):
    """The program the backend flow starts from, and what layoutopt did to it (``plan`` and
    ``skip_rules`` override the backend's defaults)."""
    require_executorch()
    from .. import api

    program, inputs = _program(model, example_inputs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = None
    if optimize:
        result = api.optimize(program, inputs, target=layout_target, plan=PLAN[backend] if plan is None else plan,
                              skip_rules=SKIP_RULES[backend] if skip_rules is None else skip_rules)
        program, report = result.program, result.report.to_dict()
    return program, inputs, out, report


def _layout_target(target: str) -> str:
    lowered = target.lower()
    for family in ("ethos-u55", "ethos-u85"):
        if lowered.startswith(family):
            return family
    if lowered.startswith("ethos-u65"):
        return "ethos-u55"  # the U65 runs the U55's TOSA profile
    raise InputError(f"unknown Ethos-U target '{target}'; e.g. ethos-u55-128, ethos-u85-256")


def compile_ethos_u(model, example_inputs: Sequence[Any], target: str = "ethos-u55-128", optimize: bool = True,
                    out_dir: "str | Path" = "out", calibration: Sequence[tuple] | None = None) -> dict:
    """Quantize, lower to TOSA and compile with Vela for ``target`` (e.g. ``ethos-u85-256``).

    Returns ``pte``, ``tosa_files`` (one per delegated partition, as handed to Vela),
    ``tosa_ops`` (op histogram over them), ``vela`` (cycles_total, cycles_npu, transposes,
    transpose_cycles, SRAM/DRAM/flash bytes, summed over partitions), ``cpu_ops`` (ops left
    outside the delegate), ``partitions``, ``layoutopt`` (the report, or None) and ``seconds``.
    """
    from . import ethos_u

    from ..targets import ShuffleForm, get_target

    start = time.perf_counter()
    layout_target = _layout_target(target)
    program, inputs, out, report = _prepare(model, example_inputs, "ethos-u", layout_target, optimize, out_dir)
    channel_order = optimize and get_target(layout_target).channel_shuffle is ShuffleForm.CHANNEL_ORDER
    figures = ethos_u.build(program, inputs, target, out, calibration, plan_layout=optimize,
                            channel_order=channel_order)
    if figures["partitions"] == 0:
        raise CompileError(f"{target}: nothing was delegated to the NPU; ops left on the CPU: "
                           f"{', '.join(figures['cpu_ops']) or 'none'}")
    return {"backend": "ethos-u", "target": target, "optimized": optimize, **figures, "layoutopt": report,
            "seconds": time.perf_counter() - start}


def compile_xnnpack(model, example_inputs: Sequence[Any], optimize: bool = True, out_dir: "str | Path" = "out",
                    calibration: Sequence[tuple] | None = None) -> dict:
    """Quantize (int8, per-channel weights) and delegate to XNNPACK; the ``.pte`` is run once
    here on ``example_inputs`` (``outputs``) through ExecuTorch's runtime."""
    from . import xnnpack

    start = time.perf_counter()
    program, inputs, out, report = _prepare(model, example_inputs, "xnnpack", "xnnpack", optimize, out_dir)
    figures = xnnpack.build(program, inputs, out, calibration)
    if figures["partitions"] == 0:
        raise CompileError(f"xnnpack: nothing was delegated; ops left on the CPU: "
                           f"{', '.join(figures['cpu_ops']) or 'none'}")
    outputs = xnnpack.run(xnnpack.load(figures["pte"]), inputs)
    return {"backend": "xnnpack", "target": "xnnpack", "optimized": optimize, **figures, "outputs": outputs,
            "layoutopt": report, "seconds": time.perf_counter() - start}


def compile_cortex_m(model, example_inputs: Sequence[Any], optimize: bool = True, out_dir: "str | Path" = "out",
                     calibration: Sequence[tuple] | None = None, explicit_layout: bool | None = None) -> dict:
    """Quantize with the CMSIS-NN quantizer and lower to ``cortex_m::`` kernels (with
    ``optimize``: the backend's explicit-layout pipeline, permutes placed by layoutopt; without,
    the backend's default pass list, or its explicit-layout pipeline untouched when
    ``explicit_layout``). Returns the lowered program's ops, how many are CMSIS-NN kernels
    (``compute_kernels`` for convolutions and linears), the float compute ops left over, the
    ``cortex_m`` transposes and the bytes they move, the layout copies left to portable kernels
    (``portable_copies``, ``portable_copy_bytes``), ``outputs`` (the lowered program run on the
    example inputs), ``lower_seconds`` and ``cortex_m_layout`` (what the pass planned)."""
    from . import cortex_m

    if optimize and explicit_layout is False:
        raise InputError("layoutopt plans Cortex-M layouts in the explicit-layout pipeline; "
                         "explicit_layout=False needs optimize=False")
    start = time.perf_counter()
    program, inputs, out, report = _prepare(model, example_inputs, "cortex-m", "cortex-m", optimize, out_dir)
    try:
        figures = cortex_m.build(program, inputs, out, calibration, plan_layout=optimize,
                                 explicit_layout=optimize or bool(explicit_layout))
        pipeline = figures.pop("pipeline")
    except CompileError as exc:
        if not optimize or "ValidateCortexMExplicitLayoutPass" not in str(exc):
            raise
        # the explicit-layout pipeline refuses a layer (e.g. a convolution whose fused activation
        # lost its output qparams): the legacy list, with the ATen layout plan it needs
        program, inputs, out, report = _prepare(model, example_inputs, "cortex-m", "cortex-m", optimize, out_dir,
                                                plan=True, skip_rules=())
        figures = cortex_m.build(program, inputs, out, calibration, plan_layout=False)
        figures.pop("pipeline")
        pipeline = f"legacy (the explicit-layout pipeline refused the program: {exc})"
    return {"backend": "cortex-m", "target": "cortex-m", "optimized": optimize, "pipeline": pipeline, **figures,
            "layoutopt": report, "seconds": time.perf_counter() - start}


#: the flows by name: an Ethos-U configuration, "cortex-m" or "xnnpack"
FLOWS = ("ethos-u55-128", "ethos-u85-256", "cortex-m", "xnnpack")
#: the flow that deploys each of layoutopt's targets
FLOW_OF_TARGET = {"ethos-u55": "ethos-u55-128", "ethos-u85": "ethos-u85-256", "cortex-m": "cortex-m",
                  "xnnpack": "xnnpack"}


def compile_flow(flow: str, model, example_inputs, optimize: bool, out_dir: "str | Path") -> dict:
    """``compile_ethos_u`` for an Ethos-U configuration name, else the named backend's compile."""
    if flow.startswith("ethos-u"):
        return compile_ethos_u(model, example_inputs, target=flow, optimize=optimize, out_dir=out_dir)
    if flow == "cortex-m":
        return compile_cortex_m(model, example_inputs, optimize=optimize, out_dir=out_dir)
    if flow == "xnnpack":
        return compile_xnnpack(model, example_inputs, optimize=optimize, out_dir=out_dir)
    raise InputError(f"unknown flow '{flow}'; choose an Ethos-U configuration (e.g. ethos-u55-128), "
                     "cortex-m or xnnpack")


__all__ = ["ArmHookError", "CompileError", "FLOWS", "arm_layout", "compile_cortex_m", "compile_ethos_u", "compile_flow", "compile_xnnpack"]
