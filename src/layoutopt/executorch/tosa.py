"""Read TOSA flatbuffers (as the Arm backend hands them to Vela): an op histogram."""
from __future__ import annotations

from collections import Counter
from pathlib import Path


def _op_names() -> dict[int, str]:
    from tosa.Op import Op

    return {value: name for name, value in vars(Op).items() if not name.startswith("_") and isinstance(value, int)}


def op_histogram(paths: "list[str | Path]") -> dict[str, int]:
    """Operators of every basic block of every region of the given TOSA files, by name."""
    from tosa.TosaGraph import TosaGraph

    names = _op_names()
    counts: Counter[str] = Counter()
    for path in paths:
        graph = TosaGraph.GetRootAs(Path(path).read_bytes(), 0)
        for r in range(graph.RegionsLength()):
            region = graph.Regions(r)
            for b in range(region.BlocksLength()):
                block = region.Blocks(b)
                for o in range(block.OperatorsLength()):
                    code = block.Operators(o).Op()
                    counts[names.get(code, f"OP_{code}")] += 1
    return dict(sorted(counts.items()))
