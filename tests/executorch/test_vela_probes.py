"""The Vela 5.1.0 facts layoutopt's Arm-stage costs and forms rely on, measured again on probe
graphs of a few int8 TOSA ops (each compiles in well under a second): a transpose's fixed cost
and cost per byte (``Target.transpose_overhead_bytes``), rank-5 transposes split into many
(``arm_vela_forms.lower_transpose_rank``), the U85 fusion that makes lower ranks better left
alone, and concatenations copied when read through reshapes
(``arm_vela_forms.concatenate_before_reshapes``)."""
import pytest

pytest.importorskip("executorch", reason="Vela comes with the executorch extra (pip install 'layoutopt[executorch]')")

from layoutopt.executorch.vela_probe import Probe, vela_figures  # noqa: E402
from layoutopt.targets import get_target  # noqa: E402

TARGETS = {"ethos-u55": "ethos-u55-128", "ethos-u85": "ethos-u85-256"}


def transpose_alone(shape, perm) -> bytes:
    probe = Probe()
    probe.output(probe.transpose(probe.input(shape), perm))
    return probe.serialize()


@pytest.mark.parametrize("name", TARGETS)
def test_a_transpose_costs_a_fixed_setup_then_its_bytes(name):
    target = get_target(name)
    # four bytes: the op's fixed cost
    assert vela_figures(transpose_alone((2, 2), (1, 0)), TARGETS[name]).cycles_total == target.transpose_setup_cycles
    # 32 KiB NHWC -> NWHC: one Vela op, its bytes at the stated rate
    figures = vela_figures(transpose_alone((1, 32, 32, 32), (0, 2, 1, 3)), TARGETS[name])
    assert figures.ops == [("Transpose", round(32768 * target.transpose_cycles_per_byte))]
    # one more transpose costs as much as this many more bytes moved
    assert target.transpose_overhead_bytes == {"ethos-u55": 91, "ethos-u85": 151}[name]


@pytest.mark.parametrize("name", TARGETS)
def test_a_rank5_transpose_is_split_unless_written_at_its_lowest_rank(name):
    # an attention block's head split: (batch, tokens, q/k/v, heads, head dim) -> (q/k/v, batch, heads, tokens, head dim)
    split = vela_figures(transpose_alone((1, 8, 3, 4, 8), (2, 0, 3, 1, 4)), TARGETS[name])
    lowest = vela_figures(transpose_alone((8, 12, 8), (1, 0, 2)), TARGETS[name])
    assert split.count("Transpose") == 13 and lowest.count("Transpose") == 1
    assert (split.cycles_total, lowest.cycles_total) == {"ethos-u55": (5376, 192), "ethos-u85": (26028, 1248)}[name]


def _clamp_transpose_clamp(reshaped: bool) -> bytes:
    probe = Probe()
    x = probe.clamp(probe.input((1, 32, 32, 32)))
    if reshaped:  # the same data movement at rank 2
        x = probe.reshape(probe.transpose(probe.reshape(x, (1024, 32)), (1, 0)), (1, 32, 32, 32))
    else:
        x = probe.transpose(x, (0, 3, 1, 2))
    probe.output(probe.clamp(x))
    return probe.serialize()


def test_u85_writes_a_4d_transpose_with_the_op_before_it_but_not_through_a_reshape():
    fused = vela_figures(_clamp_transpose_clamp(reshaped=False), "ethos-u85-256")
    apart = vela_figures(_clamp_transpose_clamp(reshaped=True), "ethos-u85-256")
    assert fused.cycles("Transpose") == 0 < apart.cycles("Transpose")
    assert fused.cycles_total < apart.cycles_total


def _concatenation(through_reshapes: bool) -> bytes:
    probe = Probe()
    parts = [probe.clamp(probe.input((1, 1, 200, 8))) for _ in range(2)]
    if through_reshapes:
        joined = probe.concat([probe.reshape(p, (1, 200, 8)) for p in parts], 2)
    else:
        joined = probe.reshape(probe.concat(parts, 3), (1, 200, 16))
    probe.output(probe.clamp(joined))
    return probe.serialize()


@pytest.mark.parametrize("name", TARGETS)
def test_a_concatenation_read_through_reshapes_is_copied(name):
    copied = vela_figures(_concatenation(through_reshapes=True), TARGETS[name])
    in_place = vela_figures(_concatenation(through_reshapes=False), TARGETS[name])
    assert copied.count("MemoryCopy") == 2 and in_place.count("MemoryCopy") == 0
    assert in_place.cycles_total < copied.cycles_total


def _head_splits(batched: bool) -> bytes:
    """Two attention head splits (tokens, heads, head dim) -> (heads, tokens, head dim), as a
    transpose each or as one transpose of their concatenation along the heads (the fewest TOSA
    transposes an attention block's q and v could take) read through two slices."""
    tokens, heads, dim = 197, 3, 64
    probe = Probe()
    xs = [probe.clamp(probe.input((1, tokens, heads, dim)), -100, 100) for _ in range(2)]
    if batched:
        both = probe.transpose(probe.concat(xs, 2), (0, 2, 1, 3))
        xs = [probe.slice(both, (0, i * heads, 0, 0), (1, heads, tokens, dim)) for i in range(2)]
    else:
        xs = [probe.transpose(x, (0, 2, 1, 3)) for x in xs]
    for x in xs:
        probe.output(probe.clamp(x, -90, 90))
    return probe.serialize()


@pytest.mark.parametrize("name", TARGETS)
def test_one_transpose_for_two_head_splits_costs_more_than_two(name):
    """Why the Arm-stage plan keeps a ViT's head splits apart: batched, the concatenation is
    free (its inputs are written in place), but the ops after the slices no longer run with the
    transpose (U55 fuses the clamp after it, U85 also writes it with the op before it)."""
    apart = vela_figures(_head_splits(batched=False), TARGETS[name])
    batched = vela_figures(_head_splits(batched=True), TARGETS[name])
    assert (apart.count("Transpose"), batched.count("Transpose"), batched.count("MemoryCopy")) == (2, 1, 0)
    assert (apart.cycles_total, batched.cycles_total) == {"ethos-u55": (131472, 208688),
                                                         "ethos-u85": (38872, 133632)}[name]
