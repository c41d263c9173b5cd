"""The stages every ExecuTorch flow shares: export, PT2E int8 quantization, lowering, writing
the ``.pte``; a failure in any of them becomes one ``CompileError`` line naming the stage (and
the op, when ExecuTorch's message names one)."""
from __future__ import annotations

import re
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch.export import ExportedProgram

from ..api import as_inputs
from ..errors import LayoutoptError

_OP = re.compile(r"((?:aten|quantized_decomposed|cortex_m|dim_order_ops|tosa)\.[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?)")


class CompileError(LayoutoptError):
    """An ExecuTorch stage (quantize, lower, serialize) failed on the model."""


@contextmanager
def stage(backend: str, name: str) -> Iterator[None]:
    """Turn any failure inside ``name`` into one line: backend, stage, op (if named), cause."""
    try:
        yield
    except LayoutoptError:
        raise
    except Exception as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        op = _OP.search(str(exc))
        where = f" at {op.group(1)}" if op else ""
        raise CompileError(f"{backend}: {name} failed{where}: {type(exc).__name__}: {text[:300]}") from exc


def require_executorch() -> None:
    try:
        import executorch  # noqa: F401
    except ImportError as exc:
        raise LayoutoptError("the ExecuTorch flows need the executorch extra: "
                             "pip install 'layoutopt[executorch]'") from exc


def calibration_batches(inputs: tuple, count: int = 4, seed: int = 0) -> list[tuple]:
    """Seeded random batches shaped like ``inputs`` (standard normal floats; ints kept as given)."""
    gen = torch.Generator().manual_seed(seed)
    return [tuple(torch.randn(x.shape, generator=gen, dtype=x.dtype) if x.is_floating_point() else x
                  for x in inputs) for _ in range(count)]


def quantize(program: ExportedProgram, inputs: tuple, quantizer, calibration: Sequence[tuple] | None,
             backend: str) -> ExportedProgram:
    """PT2E int8: prepare with the backend's quantizer, calibrate, convert, export again."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    with stage(backend, "quantize"):
        prepared = prepare_pt2e(program.module(check_guards=False), quantizer)
        for batch in calibration if calibration is not None else calibration_batches(inputs):
            prepared(*as_inputs(batch))
        converted = convert_pt2e(prepared)
        return torch.export.export(converted, inputs)


def lower(program: ExportedProgram, partitioners: list, backend: str):
    """``to_edge_transform_and_lower`` with the backend's partitioner."""
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    with stage(backend, "lower"):
        return to_edge_transform_and_lower(program, partitioner=partitioners,
                                           compile_config=EdgeCompileConfig(_check_ir_validity=False))


def write_pte(edge, out_dir: Path, backend: str) -> Path:
    with stage(backend, "to_executorch"):
        program = edge.to_executorch()
    path = out_dir / "model.pte"
    with open(path, "wb") as f:
        program.write_to_file(f)
    return path


def cpu_ops(edge) -> dict[str, int]:
    """Ops of the lowered program that stay outside any delegate, by name."""
    counts: Counter[str] = Counter()
    for node in edge.exported_program().graph.nodes:
        if node.op != "call_function" or node.target.__name__ in ("getitem", "executorch_call_delegate", "alloc"):
            continue
        counts[_name(node.target)] += 1
    return dict(sorted(counts.items()))


def delegated_partitions(edge) -> int:
    return sum(1 for n in edge.exported_program().graph.nodes
               if n.op == "call_function" and getattr(n.target, "__name__", "") == "executorch_call_delegate")


def _name(target: Callable) -> str:
    name = getattr(target, "_name", None) or getattr(target, "__name__", str(target))
    return str(name).replace("::", ".")
