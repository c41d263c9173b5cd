"""Comparing two lowerings' TOSA outputs: partitions and outputs paired however each lowering
numbered them, differences counted in quantization steps."""
import numpy as np
import pytest

pytest.importorskip("executorch", reason="the ExecuTorch flows need the executorch extra")

from layoutopt.executorch.reference import _aligned, verdict  # noqa: E402


def test_outputs_numbered_differently_are_compared_by_shape():
    a, b = np.zeros((1, 4), np.int8), np.ones((2,), np.int8)
    xs, ys = _aligned([a, b], [b, a])
    assert [x.shape for x in xs] == [y.shape for y in ys]
    assert all(np.array_equal(x, y) for x, y in zip(xs, ys))


def test_verdicts():
    assert verdict({"bit_exact": True, "max_abs_diff": 0.0, "equal_fraction": 1.0}) == "bit-exact"
    assert verdict({"bit_exact": False, "max_abs_diff": 1.0, "equal_fraction": 0.995}) == "within 1 step (99.5 % equal)"
    assert verdict({"bit_exact": False, "max_abs_diff": None, "reason": "2 partitions"}) == "not comparable: 2 partitions"
