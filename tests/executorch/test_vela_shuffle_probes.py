"""What Vela 5.1.0 makes of the TOSA patterns a channel shuffle can be lowered to, on hand-built
graphs at ShuffleNetV2 x1.0 sizes (int8, 224 px input): the facts the Ethos-U shuffle forms
rest on (``ShuffleForm`` in ``layoutopt.targets``, ``executorch/arm_channel_order.py``)."""
import pytest

pytest.importorskip("executorch", reason="the ExecuTorch flows need the executorch extra "
                                         "(pip install 'layoutopt[executorch]')")

from layoutopt.executorch import vela_probe  # noqa: E402
from layoutopt.executorch.vela_probe import vela_figures  # noqa: E402

pytestmark = pytest.mark.slow  # Vela compiles each graph: seconds


class Probe(vela_probe.Probe):
    """Probe graphs whose CLAMPs cut the int8 range (each one is an op Vela must run)."""

    def clamp(self, x: str, low: int = -100, high: int = 100) -> str:
        return super().clamp(x, low, high)


def _halves(g, shape):
    """Two produced halves of a shuffled concatenation, [1, H, W, k] each."""
    return g.clamp(g.input(shape)), g.clamp(g.input(shape))


def shuffle_by_transpose(h, w, k):
    """concat along channels, then the shuffle as a transpose of [H*W, 2, k]."""
    g = Probe()
    a, b = _halves(g, (1, h, w, k))
    rows = g.reshape(g.concat([a, b], 3), (1, h * w, 2, k))
    g.output(g.clamp(g.reshape(g.transpose(rows, (0, 1, 3, 2)), (1, h, w, 2 * k))))
    return g


def shuffle_by_interleaving_concat(h, w, k, rank):
    """The shuffle as a concatenation along a new innermost axis of 1-wide inputs."""
    g = Probe()
    a, b = _halves(g, (1, h, w, k))
    shape = (1, h * w, k, 1) if rank == 4 else (1, h, w, k, 1)
    joined = g.concat([g.reshape(a, shape), g.reshape(b, shape)], rank - 1)
    g.output(g.clamp(g.reshape(joined, (1, h, w, 2 * k))))
    return g


@pytest.mark.parametrize("target, slower", [("ethos-u55-128", 10), ("ethos-u85-256", 1.5)])
@pytest.mark.parametrize("rank", [4, 5])
def test_an_interleaving_concat_runs_on_the_npu_and_costs_more_than_the_transpose(target, slower, rank):
    """Vela runs a CONCAT of [.., k, 1] inputs along the innermost axis on the NPU, as one
    MemoryCopy per input (rank 4) or per input and outer index (rank 5) writing every other
    byte: 728,030 U55 cycles against 34,104 for the Transpose of the same bytes (21x) at
    28x28x116, 728,176 against 364,133 on U85. A concatenation that interleaves channels as
    it copies does not replace the shuffle's transpose on Ethos-U."""
    h, w, k = 28, 28, 58
    transpose = vela_figures(shuffle_by_transpose(h, w, k).serialize(), target)
    interleave = vela_figures(shuffle_by_interleaving_concat(h, w, k, rank).serialize(), target)
    assert interleave.cpu_operators == transpose.cpu_operators == 0
    assert interleave.kinds()["Concat/MemoryCopy"] == (2 if rank == 4 else 2 * h)
    assert interleave.of("Concat") > slower * transpose.of("Transpose")
    assert interleave.cycles_total > transpose.cycles_total


def channel_runs(h, w, k, runs):
    """y = [1, H, W, 2k]; channel runs of y (start, end) concatenated with a produced [1, H, W, k]."""
    g = Probe()
    y = g.clamp(g.input((1, h, w, 2 * k)))
    f = g.clamp(g.input((1, h, w, k)))
    pieces = [g.slice(y, (0, 0, 0, s), (1, h, w, e - s)) for s, e in runs]
    g.output(g.clamp(g.concat(pieces + [f], 3)))
    return g


def _runs(widths):
    """Runs of the given widths with a one-channel gap after each."""
    out, start = [], 0
    for width in widths:
        out.append((start, start + width))
        start += width + 1
    return out


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u85-256"])
def test_a_concatenation_of_channel_runs_costs_one_copy_per_run(target):
    """SLICEs of channel runs read by a CONCAT become one MemoryCopy per run, and the slices
    nothing of their own; the produced input is written in place (no copy). Splitting k
    channels into 9 runs (8 of them 1 channel wide) adds about 1.6K cycles a run at 14x14x116
    (U55: 24,304 -> 37,192; U85: 13,088 -> 24,872): the copy of a shuffled concatenation's
    passed-through half in 9 runs still costs less than the copy in one run plus the shuffle's
    transpose of both halves (U55: 17,052 cycles; U85 more), though a U55 transpose costs
    less per byte than a copy."""
    h, w, k = 14, 14, 116
    one = vela_figures(channel_runs(h, w, k, [(0, k)]).serialize(), target)
    narrow = _runs([1] * 8 + [k - 8])
    nine = vela_figures(channel_runs(h, w, k, narrow).serialize(), target)
    transpose = vela_figures(shuffle_by_transpose(h, w, k).serialize(), target)
    assert one.cpu_operators == nine.cpu_operators == 0
    assert (one.kinds()["Concat/MemoryCopy"], nine.kinds()["Concat/MemoryCopy"]) == (1, 9)
    assert "Slice" not in nine.originals
    assert nine.of("Concat") - one.of("Concat") < 8 * 2_000
    assert nine.of("Concat") < one.of("Concat") + transpose.of("Transpose")


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u85-256"])
@pytest.mark.parametrize("start", [0, 3, 116])
def test_an_op_reads_a_run_of_channels_in_place(target, start):
    """A SLICE of one run of channels read by an op is no op of its own, at any channel offset:
    the reader reads the run where it is stored. A stored channel order costs nothing where
    the channels an op reads next are stored next to each other."""
    def read(begin):
        g = Probe()
        y = g.clamp(g.input((1, 14, 14, 232)))
        g.output(g.clamp(g.slice(y, (0, 0, 0, begin), (1, 14, 14, 116))))
        return g

    sliced = vela_figures(read(start).serialize(), target)
    assert sliced.cpu_operators == 0
    assert sliced.kinds() == {"Clamp/Clamp": 2}
    assert sliced.cycles_total == vela_figures(read(0).serialize(), target).cycles_total
