"""Run TOSA files in the TOSA reference model (``tosa_reference_model``, shipped with
tosa-tools) and compare two lowerings of one model partition by partition."""
from __future__ import annotations

from pathlib import Path

import numpy as np

_NUMPY = {"INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "UINT8": np.uint8, "BOOL": np.bool_,
          "FP32": np.float32, "FP16": np.float16}


def graph_inputs(path: "str | Path") -> list[tuple[tuple[int, ...], type]]:
    """Shape and numpy dtype of each input of a TOSA file's main block, in order."""
    from tosa.DType import DType
    from tosa.TosaGraph import TosaGraph

    names = {v: k for k, v in vars(DType).items() if not k.startswith("_")}
    block = TosaGraph.GetRootAs(Path(path).read_bytes(), 0).Regions(0).Blocks(0)
    tensors = {block.Tensors(i).Name(): block.Tensors(i) for i in range(block.TensorsLength())}
    out = []
    for i in range(block.InputsLength()):
        t = tensors[block.Inputs(i)]
        out.append((tuple(int(s) for s in t.ShapeAsNumpy()), _NUMPY[names[t.Type()]]))
    return out


def seeded_inputs(path: "str | Path", seed: int = 0) -> list[np.ndarray]:
    """Random inputs over each input's whole range (integers) or standard normal (floats)."""
    rng = np.random.default_rng(seed)
    out = []
    for shape, dtype in graph_inputs(path):
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            out.append(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype))
        elif dtype is np.bool_:
            out.append(rng.integers(0, 2, size=shape).astype(np.bool_))
        else:
            out.append(rng.standard_normal(shape).astype(dtype))
    return out


def run(path: "str | Path", inputs: list[np.ndarray]) -> list[np.ndarray]:
    import tosa_reference_model as reference

    outputs, status = reference.run(Path(path).read_bytes(), inputs)
    if status != reference.GraphStatus.TOSA_VALID:
        raise RuntimeError(f"the TOSA reference model rejected {path}: {status}")
    return outputs


def compare(stock: "list[str | Path]", optimized: "list[str | Path]", seeds: int = 2) -> dict:
    """Run each pair of partitions on the same seeded inputs: ``bit_exact``, the largest
    difference over every output element (in the outputs' integer units, i.e. quantization
    steps) and the fraction of elements that are equal."""
    if len(stock) != len(optimized):
        return {"bit_exact": False, "max_abs_diff": None,
                "reason": f"{len(stock)} partitions in the stock lowering, {len(optimized)} in layoutopt's"}
    worst = 0.0
    equal = total = 0
    for a, b in _pairs(stock, optimized):
        if a is None:
            return {"bit_exact": False, "max_abs_diff": None, "reason": f"no stock partition has the inputs of {b}"}
        for seed in range(seeds):
            inputs = seeded_inputs(a, seed)
            for x, y in zip(*_aligned(run(a, inputs), run(b, inputs))):
                if x.shape != y.shape:
                    return {"bit_exact": False, "max_abs_diff": None, "reason": f"output shapes of {b} differ"}
                diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
                worst = max(worst, float(np.max(diff, initial=0.0)))
                equal += int(np.count_nonzero(diff == 0))
                total += diff.size
    return {"bit_exact": worst == 0.0, "max_abs_diff": worst, "equal_fraction": equal / total if total else 1.0}


def _aligned(xs: list[np.ndarray], ys: list[np.ndarray]) -> tuple[list, list]:
    """Two partitions' outputs in a common order: as they come when their shapes agree,
    else each sorted by shape (a partition's outputs are numbered in no fixed order from one
    lowering to the next; the program that calls it binds them by name)."""
    if [x.shape for x in xs] == [y.shape for y in ys]:
        return xs, ys

    def key(t: np.ndarray) -> tuple:
        return (t.shape, t.dtype.str)

    return sorted(xs, key=key), sorted(ys, key=key)


def _pairs(stock: list, optimized: list) -> list[tuple]:
    """Each optimized partition with the stock partition of the same inputs (the backend does
    not number partitions in the same order in every run); ``(None, b)`` where none matches."""
    left = list(stock)
    out = []
    for b in optimized:
        signature = graph_inputs(b)
        match = next((a for a in left if graph_inputs(a) == signature), None)
        if match is not None:
            left.remove(match)
        out.append((match, b))
    return out


def verdict(check: dict) -> str:
    """``bit-exact``, ``within 1 step (99.2 % equal)`` or what differs, for tables."""
    if check.get("bit_exact"):
        return "bit-exact"
    if check.get("max_abs_diff") is None:
        return f"not comparable: {check.get('reason')}"
    return f"within {check['max_abs_diff']:g} step ({100 * check['equal_fraction']:.1f} % equal)"
