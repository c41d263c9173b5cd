"""Probe graphs for Vela: a few int8 TOSA ops built by hand and compiled for an Ethos-U target,
so that a cost layoutopt relies on is a measurement anyone can repeat (the tests rerun each
one: ``tests/executorch/test_vela_probes.py``)::

    probe = Probe()
    x = probe.input((1, 8, 3, 4, 8))
    probe.output(probe.transpose(x, (2, 0, 3, 1, 4)))
    vela_figures(probe.serialize(), "ethos-u85-256").ops   # [("Transpose", cycles), ...]

Vela estimates cycles deterministically, so a probe's figures are exact from run to run.
"""
from __future__ import annotations

import tempfile
from contextlib import redirect_stderr, redirect_stdout
from collections import Counter
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class VelaFigures:
    cycles_total: int
    ops: list[tuple[str, int]]  # Vela's operators in order, with their cycles
    originals: list[str]  # the TOSA op each of ``ops`` was made from
    cpu_operators: int  # operators Vela left to the CPU

    def count(self, op: str) -> int:
        return sum(1 for name, _ in self.ops if name == op)

    def cycles(self, op: str) -> int:
        return sum(c for name, c in self.ops if name == op)

    def of(self, original: str) -> int:
        """Cycles of the Vela operators made from TOSA op ``original`` (e.g. "Concat")."""
        return sum(c for (_, c), o in zip(self.ops, self.originals) if o == original)

    def kinds(self) -> Counter:
        """How many Vela operators of each kind, keyed "TOSA op/Vela op" (e.g. "Concat/MemoryCopy")."""
        return Counter(f"{o}/{name}" for (name, _), o in zip(self.ops, self.originals))


class Probe:
    """A TOSA 1.0 graph of int8 tensors, built op by op; each method returns its output's name."""

    def __init__(self) -> None:
        import tosa_serializer as ts

        self._ts = ts
        self.graph = ts.TosaSerializer("", targetMajor=1, targetMinor=0, targetPatch=0, targetDraft=False)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._names = 0

    def _name(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}{self._names}"

    def input(self, shape: Sequence[int]) -> str:
        name = self._name("input")
        self.graph.addInputTensor(self._ts.TosaSerializerTensor(name, list(shape), self._ts.DType.INT8, data=None))
        self.shapes[name] = tuple(shape)
        return name

    def _op(self, op, inputs: list[str], shape: Sequence[int], attribute) -> str:
        out = self.graph.addIntermediate(list(shape), self._ts.DType.INT8)
        self.graph.addOperator(op, inputs=inputs, outputs=[out.name], attributes=attribute)
        self.shapes[out.name] = tuple(shape)
        return out.name

    def _attribute(self, kind: str, *args, **kwargs):
        attribute = self._ts.TosaSerializerAttribute()
        getattr(attribute, f"{kind}Attribute")(*args, **kwargs)
        return attribute

    def _shape_constant(self, values: Sequence[int]) -> str:
        name = self._name("shape")
        self.graph.addConst([len(values)], self._ts.DType.SHAPE, list(values), name=name)
        return name

    def clamp(self, x: str, low: int = -128, high: int = 127) -> str:
        """An elementwise op (a CLAMP, by default over the whole int8 range)."""
        attribute = self._attribute("Clamp", [low & 0xFF], [high & 0xFF], nan_mode=self._ts.NanPropagationMode.PROPAGATE)
        return self._op(self._ts.Op.CLAMP, [x], self.shapes[x], attribute)

    def transpose(self, x: str, perm: Sequence[int]) -> str:
        shape = [self.shapes[x][d] for d in perm]
        return self._op(self._ts.Op.TRANSPOSE, [x], shape, self._attribute("Transpose", list(perm)))

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        return self._op(self._ts.Op.RESHAPE, [x, self._shape_constant(shape)], shape, self._attribute("Reshape"))

    def concat(self, xs: Sequence[str], axis: int) -> str:
        shape = list(self.shapes[xs[0]])
        shape[axis] = sum(self.shapes[x][axis] for x in xs)
        return self._op(self._ts.Op.CONCAT, list(xs), shape, self._attribute("Concat", axis))

    def slice(self, x: str, start: Sequence[int], size: Sequence[int]) -> str:
        inputs = [x, self._shape_constant(start), self._shape_constant(size)]
        return self._op(self._ts.Op.SLICE, inputs, size, self._attribute("Slice"))

    def output(self, x: str) -> None:
        self.graph.addOutputTensor(self.graph.currRegion.currBasicBlock.tensors[x])

    def serialize(self) -> bytes:
        return self.graph.serialize()


def vela_figures(tosa: bytes, target: str) -> VelaFigures:
    """Compile a TOSA flatbuffer with Vela for ``target`` (e.g. ``ethos-u55-128``) as
    ExecuTorch's Ethos-U backend does, and read its performance estimate."""
    from executorch.backends.arm.arm_vela import vela_compile
    from executorch.backends.arm.ethosu.compile_spec import EthosUCompileSpec

    from .vela import read_layers, read_summary

    flags = EthosUCompileSpec(target, extra_flags=["--verbose-performance"]).compiler_flags
    log = StringIO()
    with tempfile.TemporaryDirectory() as folder:
        with redirect_stdout(log), redirect_stderr(StringIO()):
            vela_compile(tosa, list(flags), intermediate_path=folder)
        summary = read_summary([Path(folder)])
        layers = read_layers(Path(folder))
    return VelaFigures(summary["cycles_total"], [(row["NNG Operator"], int(float(row["Op Cycles"]))) for row in layers],
                       [row["Original Operator"] for row in layers], _cpu_operators(log.getvalue()))


def _cpu_operators(log: str) -> int:
    for line in log.splitlines():
        if line.strip().startswith("CPU operators"):
            return int(line.split("=")[1].split("(")[0])
    raise ValueError("Vela's log names no count of CPU operators")
