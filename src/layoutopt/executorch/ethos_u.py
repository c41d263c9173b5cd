"""Ethos-U: PT2E int8 with the Arm quantizer, TOSA lowering, Vela; every partition's TOSA file
and Vela's performance summary kept in a folder of its own."""
from __future__ import annotations

import shutil
import time
from contextlib import ExitStack, contextmanager, redirect_stdout
from pathlib import Path
from typing import Iterator

from .stages import cpu_ops, delegated_partitions, lower, quantize, write_pte
from .tosa import op_histogram
from .vela import read_summary


@contextmanager
def partition_folders(root: Path) -> Iterator[list[Path]]:
    """Give each partition the backend compiles with Vela a folder of its own under ``root``
    (the backend's default intermediate path is shared by all partitions of a model)."""
    import executorch.backends.arm.ethosu.backend as backend

    original = backend.vela_compile
    folders: list[Path] = []

    def compile_partition(tosa_flatbuffer, args, verbose=False, intermediate_path=None, block_placements=None):
        folder = root / f"partition_{len(folders)}"
        shutil.rmtree(folder, ignore_errors=True)  # figures of an earlier run must not be read back
        folder.mkdir(parents=True)
        folders.append(folder)
        with open(folder / "vela.log", "w") as log, redirect_stdout(log):
            return original(tosa_flatbuffer, list(args), verbose=verbose, intermediate_path=str(folder),
                            block_placements=block_placements)

    backend.vela_compile = compile_partition
    try:
        yield folders
    finally:
        backend.vela_compile = original


def compile_spec(target: str):
    from executorch.backends.arm.ethosu import EthosUCompileSpec

    return EthosUCompileSpec(target, extra_flags=["--verbose-performance"])


def quantizer_for(spec):
    from executorch.backends.arm.quantizer import EthosUQuantizer, get_symmetric_quantization_config

    return EthosUQuantizer(spec).set_global(get_symmetric_quantization_config(is_per_channel=True))


def build(program, inputs, target: str, out_dir: Path, calibration, plan_layout: bool = False,
          channel_order: bool = False) -> dict:
    """The stock flow; with ``plan_layout`` layoutopt's pass places the backend's permutes (with
    ``channel_order`` after carrying channel shuffles as stored channel orders)."""
    from executorch.backends.arm.ethosu import EthosUPartitioner

    from .arm_hook import arm_layout

    backend = target
    spec = compile_spec(target)
    quantized = quantize(program, inputs, quantizer_for(spec), calibration, backend)
    planned: list[dict] = []
    with partition_folders(out_dir / "partitions") as folders, ExitStack() as stack:
        if plan_layout:
            planned = stack.enter_context(arm_layout(channel_order))
        start = time.perf_counter()
        edge = lower(quantized, [EthosUPartitioner(spec)], backend)
        lower_seconds = time.perf_counter() - start
    left = cpu_ops(edge)
    partitions = delegated_partitions(edge)
    pte = write_pte(edge, out_dir, backend)
    tosa_files = [folder / "out.tosa" for folder in folders]
    return {
        "pte": str(pte),
        "partitions": partitions,
        "tosa_files": [str(p) for p in tosa_files],
        "tosa_ops": op_histogram(tosa_files),
        "vela": read_summary(folders),
        "cpu_ops": left,
        "arm_layout": planned if plan_layout else None,
        "lower_seconds": lower_seconds,
    }
