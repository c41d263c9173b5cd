"""XNNPACK: PT2E int8 with the XNNPACK quantizer (per-channel weights), delegated with the
XNNPACK partitioner; the ``.pte`` runs here through ExecuTorch's Python runtime."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from .stages import cpu_ops, delegated_partitions, lower, quantize, stage, write_pte


def quantizer():
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))


def build(program, inputs, out_dir: Path, calibration) -> dict:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    backend = "xnnpack"
    quantized = quantize(program, inputs, quantizer(), calibration, backend)
    edge = lower(quantized, [XnnpackPartitioner()], backend)
    left = cpu_ops(edge)
    partitions = delegated_partitions(edge)
    pte = write_pte(edge, out_dir, backend)
    return {"pte": str(pte), "partitions": partitions, "cpu_ops": left}


def load(pte: "str | Path"):
    """The ``forward`` method of a ``.pte`` (loaded from its path, which the runtime keeps)."""
    from executorch.runtime import Runtime

    with stage("xnnpack", "load .pte"):
        return Runtime.get().load_program(str(pte)).load_method("forward")


def run(method, inputs: tuple) -> list[torch.Tensor]:
    with stage("xnnpack", "run .pte"):
        return list(method.execute([x.contiguous() for x in inputs]))


def seconds_per_run(method, inputs: tuple) -> float:
    start = time.perf_counter()
    run(method, inputs)
    return time.perf_counter() - start
