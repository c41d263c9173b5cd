"""Channel shuffles carried as stored channel orders in the Arm backend's graph
(``executorch/arm_channel_order.py``): which chains are gathers, and what the Ethos-U55 flow
emits with and without the pass (exact TOSA op histograms, the TOSA reference model bit-exact
against the stock lowering: only data moves and integer weights are re-laid out)."""
import pytest
import torch
from torch import nn

from layoutopt.zoo.models import ShuffleUnit, channel_shuffle

TARGET = "ethos-u55-128"


def _exported_chain(module, shape):
    """The module's ops as exported, less ``contiguous`` (the Arm backend's graph has none)."""
    from layoutopt.ir import ops

    program = torch.export.export(module, (torch.randn(shape),))
    return [n for n in program.graph.nodes if n.op == "call_function" and not ops.is_contiguous_copy(n)]


class Shuffle(nn.Module):
    def forward(self, x):
        return channel_shuffle(x, 2)


def test_a_channel_shuffle_replays_to_a_gather_of_channels():
    pytest.importorskip("executorch")
    from layoutopt.executorch.arm_channel_order import gather_of

    chain = _exported_chain(Shuffle(), (1, 6, 2, 2))
    axis, pi = gather_of(chain, (1, 6, 2, 2))
    # y[i*g + j] = x[j*k + i] with g = 2, k = 3
    assert (axis, pi) == (1, (0, 3, 1, 4, 2, 5))


def test_its_channels_last_form_is_the_same_gather():
    pytest.importorskip("executorch")
    from layoutopt.executorch.arm_channel_order import gather_of

    class ChannelsLast(nn.Module):
        def forward(self, x):
            rows = x.permute(0, 2, 3, 1).reshape(4, 2, 3)
            return rows.transpose(1, 2).reshape(1, 2, 2, 6).permute(0, 3, 1, 2)

    assert gather_of(_exported_chain(ChannelsLast(), (1, 6, 2, 2)), (1, 6, 2, 2)) == (1, (0, 3, 1, 4, 2, 5))


def test_a_permute_of_two_equal_dims_is_not_a_gather():
    pytest.importorskip("executorch")
    from layoutopt.executorch.arm_channel_order import gather_of

    class Transposed(nn.Module):  # same shape, but elements move across dims
        def forward(self, x):
            return x.permute(0, 1, 3, 2)

    assert gather_of(_exported_chain(Transposed(), (1, 4, 3, 3)), (1, 4, 3, 3)) is None


def test_view_axis_follows_the_channel_axis_through_reshapes():
    pytest.importorskip("executorch")
    from layoutopt.layout.channel_order import view_axis as _view_axis

    assert _view_axis((1, 32, 1, 1), 1, (1, 32)) == 1
    assert _view_axis((1, 8, 8, 32), 3, (64, 32)) == 1
    assert _view_axis((1, 8, 8, 32), 3, (64, 2, 16)) is None  # split: a shuffle's view


class Stem(nn.Module):
    def __init__(self, block, dim=16):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 3, padding=1)
        self.block = block

    def forward(self, x):
        return self.block(self.stem(x))


class DownUnit(nn.Module):
    """ShuffleNetV2's stride-2 unit: both halves computed, concatenated, shuffled."""

    def __init__(self, cin, cout):
        super().__init__()
        half = cout // 2
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cin, 3, 2, 1, groups=cin), nn.Conv2d(cin, half, 1), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(cin, half, 1), nn.ReLU(), nn.Conv2d(half, half, 3, 2, 1, groups=half),
                                    nn.Conv2d(half, half, 1), nn.ReLU())

    def forward(self, x):
        return channel_shuffle(torch.cat((self.shortcut(x), self.branch(x)), 1), 2)


def _lower(model, inputs, tmp_path):
    """The stock lowering, and the lowering with the layout pass alone and with channel orders."""
    pytest.importorskip("executorch", reason="the ExecuTorch flows need the executorch extra")
    from layoutopt.executorch import compile_ethos_u
    from layoutopt.executorch.arm_hook import arm_layout
    from layoutopt.executorch.reference import compare

    torch.manual_seed(0)
    model = model.eval()
    stock = compile_ethos_u(model, inputs, target=TARGET, optimize=False, out_dir=tmp_path / "stock")
    with arm_layout() as planned:
        plan = compile_ethos_u(model, inputs, target=TARGET, optimize=False, out_dir=tmp_path / "plan")
    with arm_layout(channel_order=True) as records:
        ours = compile_ethos_u(model, inputs, target=TARGET, optimize=False, out_dir=tmp_path / "order")
    for other in (plan, ours):
        check = compare(stock["tosa_files"], other["tosa_files"])
        assert check["bit_exact"], check
    (record,) = records
    return stock, plan, ours, record["channel_order"]


def _ops(result):
    return {op: n for op, n in result["tosa_ops"].items() if not op.startswith("CONST")}


@pytest.mark.slow
def test_three_shuffle_units_keep_only_the_transposes_at_the_graph_edges(tmp_path):
    model = Stem(nn.Sequential(ShuffleUnit(16), ShuffleUnit(16), ShuffleUnit(16), nn.Conv2d(16, 8, 1)))
    stock, plan, ours, record = _lower(model, (torch.randn(1, 3, 16, 16),), tmp_path)
    assert record == {"carried_gathers": 3, "declined_gathers": {}, "copy_runs": 9}
    assert (stock["tosa_ops"]["TRANSPOSE"], plan["tosa_ops"]["TRANSPOSE"]) == (9, 5)
    # the model's input and output transposes stay; each unit's shuffle is gone, its
    # concatenation copies channel runs (9 slices where the stock chunks take 6)
    assert _ops(ours) == {"CONCAT": 3, "CONV2D": 8, "DEPTHWISE_CONV2D": 3, "RESCALE": 11, "SLICE": 9,
                          "TRANSPOSE": 2}
    assert ours["vela"]["cycles_total"] < plan["vela"]["cycles_total"] < stock["vela"]["cycles_total"]


@pytest.mark.slow
def test_a_stride_two_unit_carries_through_its_depthwise_shortcut(tmp_path):
    """Both halves of the first concatenation are convolution outputs: their stored orders are
    chosen, the second unit's branch reads one run; the shortcut's depthwise convolution of
    the next unit runs on the stored order with its weights permuted."""
    model = Stem(nn.Sequential(DownUnit(16, 32), ShuffleUnit(32), DownUnit(32, 32), nn.Conv2d(32, 8, 1)))
    stock, plan, ours, record = _lower(model, (torch.randn(1, 3, 16, 16),), tmp_path)
    assert record["carried_gathers"] == 3 and not record["declined_gathers"]
    assert ours["tosa_ops"]["TRANSPOSE"] == 2
    assert ours["vela"]["cycles_total"] < plan["vela"]["cycles_total"]


@pytest.mark.slow
def test_a_shuffle_read_by_the_graph_output_is_left_as_it_stands(tmp_path):
    model = Stem(nn.Sequential(ShuffleUnit(16), ShuffleUnit(16)))
    stock, plan, ours, record = _lower(model, (torch.randn(1, 3, 16, 16),), tmp_path)
    assert record["carried_gathers"] == 0
    assert all("read by the graph output" in reason for reason in record["declined_gathers"].values())
    assert len(record["declined_gathers"]) == 2
    assert ours["tosa_ops"] == plan["tosa_ops"]


@pytest.mark.slow
def test_a_second_run_finds_no_gather_left(tmp_path):
    pytest.importorskip("executorch", reason="the ExecuTorch flows need the executorch extra")
    from executorch.backends.arm._passes import arm_pass_manager as manager

    from layoutopt.executorch import compile_ethos_u
    from layoutopt.executorch.arm_hook import make_pass

    records = []
    manager.register_pass_insertions_before(manager.PropagateViewCopyPermuteDownPass,
                                            [make_pass(records, channel_order=True),
                                             make_pass(records, channel_order=True)])
    try:
        torch.manual_seed(0)
        model = Stem(nn.Sequential(ShuffleUnit(16), ShuffleUnit(16), nn.Conv2d(16, 8, 1))).eval()
        compile_ethos_u(model, (torch.randn(1, 3, 16, 16),), target=TARGET, optimize=False, out_dir=tmp_path)
    finally:
        manager.clear_registered_pass_insertions()
    first, second = records
    assert first["channel_order"]["carried_gathers"] == 2
    assert second["channel_order"] == {"carried_gathers": 0, "declined_gathers": {}, "copy_runs": 0}
    assert not second["applied"]
