"""Hand-built TOSA graphs compiled by Vela with the flags ExecuTorch's Ethos-U backend passes:
what a TOSA op pattern costs on the NPU, read from Vela's per-layer figures, without a model.

    g = TosaProbe()
    a = g.clamp(g.input((1, 8, 8, 16)))
    g.output(g.transpose(a, (0, 2, 1, 3)))
    figures = compile_probe(g, "ethos-u55-128", tmp_path)

Tensors are int8; CLAMP stands in for a producer or consumer the NPU runs itself (it fuses a
copy or a transpose around it where it can, as it would a convolution's output stage).
"""
from __future__ import annotations

import contextlib
import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Tensor = tuple[str, tuple[int, ...]]  # name and shape


class TosaProbe:
    """A TOSA 1.0 INT graph built op by op."""

    def __init__(self) -> None:
        import tosa_serializer as ts

        self.ts = ts
        self.graph = ts.TosaSerializer("", targetMajor=1, targetMinor=0, targetPatch=0, targetDraft=False)
        self.count = 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def _tensor(self, shape) -> str:
        name = self._name("t")
        self.graph.currRegion.currBasicBlock.addTensor(name, list(shape), self.ts.DType.INT8)
        return name

    def _shape(self, values) -> str:
        name = self._name("shape")
        self.graph.addConst([len(values)], dtype=self.ts.DType.SHAPE, vals=list(values), name=name)
        return name

    def _op(self, op, inputs: list[str], shape, attribute) -> Tensor:
        out = self._tensor(shape)
        self.graph.addOperator(op, inputs, [out], attribute)
        return out, tuple(shape)

    def input(self, shape) -> Tensor:
        name = self._name("input")
        self.graph.addInputTensor(self.ts.TosaSerializerTensor(name, list(shape), self.ts.DType.INT8))
        return name, tuple(shape)

    def output(self, x: Tensor) -> None:
        self.graph.addOutputTensor(self.graph.currRegion.currBasicBlock.tensors[x[0]])

    def clamp(self, x: Tensor, low: int = -100, high: int = 100) -> Tensor:
        attr = self.ts.TosaSerializerAttribute()
        as_bytes = lambda v: list(np.array([v], np.int8).view(np.uint8))  # noqa: E731
        attr.ClampAttribute(as_bytes(low), as_bytes(high), self.ts.NanPropagationMode.PROPAGATE)
        return self._op(self.ts.Op.CLAMP, [x[0]], x[1], attr)

    def concat(self, xs: list[Tensor], axis: int) -> Tensor:
        shape = list(xs[0][1])
        shape[axis] = sum(x[1][axis] for x in xs)
        attr = self.ts.TosaSerializerAttribute()
        attr.ConcatAttribute(axis)
        return self._op(self.ts.Op.CONCAT, [x[0] for x in xs], shape, attr)

    def reshape(self, x: Tensor, shape) -> Tensor:
        attr = self.ts.TosaSerializerAttribute()
        attr.ReshapeAttribute()
        return self._op(self.ts.Op.RESHAPE, [x[0], self._shape(shape)], shape, attr)

    def transpose(self, x: Tensor, perm) -> Tensor:
        attr = self.ts.TosaSerializerAttribute()
        attr.TransposeAttribute(list(perm))
        return self._op(self.ts.Op.TRANSPOSE, [x[0]], [x[1][p] for p in perm], attr)

    def slice(self, x: Tensor, start, size) -> Tensor:
        attr = self.ts.TosaSerializerAttribute()
        attr.SliceAttribute()
        return self._op(self.ts.Op.SLICE, [x[0], self._shape(start), self._shape(size)], size, attr)

    def serialize(self) -> bytes:
        return bytes(self.graph.serialize())


@dataclass
class ProbeFigures:
    cycles_total: int
    cpu_operators: int  # operators Vela left to the CPU
    cycles: Counter  # op cycles by "Original Operator/NNG Operator"
    ops: Counter  # Vela operators by the same key

    def of(self, original: str) -> int:
        """Cycles of the Vela operators made from TOSA op ``original`` (e.g. "Concat")."""
        return sum(c for key, c in self.cycles.items() if key.split("/")[0] == original)


def compile_probe(graph: TosaProbe, target: str, folder: Path) -> ProbeFigures:
    """Compile ``graph`` with Vela for ``target`` (e.g. ``ethos-u55-128``) as the Ethos-U backend would."""
    from executorch.backends.arm.arm_vela import vela_compile

    from layoutopt.executorch.ethos_u import compile_spec

    folder.mkdir(parents=True, exist_ok=True)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        vela_compile(graph.serialize(), list(compile_spec(target).compiler_flags), intermediate_path=str(folder))
    (layers_csv,) = folder.glob("output/*_per-layer.csv")
    (summary_csv,) = folder.glob("output/*_summary_*.csv")
    with open(summary_csv, newline="") as f:
        (summary,) = list(csv.DictReader(f))
    cycles, counts = Counter(), Counter()
    with open(layers_csv, newline="") as f:
        for row in csv.DictReader(f):
            key = f"{row['Original Operator']}/{row['NNG Operator']}"
            cycles[key] += int(float(row["Op Cycles"]))
            counts[key] += 1
    return ProbeFigures(int(float(summary["cycles_total"])), _cpu_operators(log.getvalue()), cycles, counts)


def _cpu_operators(log: str) -> int:
    for line in log.splitlines():
        if line.strip().startswith("CPU operators"):
            return int(line.split("=")[1].split("(")[0])
    raise ValueError("Vela's log names no count of CPU operators")
