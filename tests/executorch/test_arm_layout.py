"""layoutopt's layout pass inside ExecuTorch's Arm pipeline, measured by what the backend
emits: the TOSA op histogram of each pattern with and without the pass, both TOSA files run in
the TOSA reference model (bit-exact: only data moves), Vela's cycles, the registry cleared
after errors, and the pass idempotent. Small models on Ethos-U85 (and U55 where the targets'
costs differ), so each lowering takes seconds."""
from typing import NamedTuple

import pytest
import torch
from torch import nn

pytest.importorskip("executorch", reason="the ExecuTorch flows need the executorch extra "
                                         "(pip install 'layoutopt[executorch]')")

from layoutopt.executorch import arm_hook, compile_ethos_u  # noqa: E402
from layoutopt.executorch.arm_hook import ArmHookError, arm_layout, make_pass  # noqa: E402
from layoutopt.executorch.reference import compare  # noqa: E402
from layoutopt.zoo.models import AttentionBlock, ConvNeXtBlock, ShuffleUnit, Wav2LetterNano  # noqa: E402

pytestmark = pytest.mark.slow  # ExecuTorch's Arm lowering, Vela and the TOSA reference model: minutes

TARGET = "ethos-u85-256"


class Stem(nn.Module):
    """A convolution in front, so the block under test reads a planned tensor."""

    def __init__(self, block, cin=3, dim=16):
        super().__init__()
        self.stem = nn.Conv2d(cin, dim, 3, padding=1)
        self.block = block

    def forward(self, x):
        return self.block(self.stem(x))


class SqueezeExcite(nn.Module):
    def __init__(self, dim=16):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.fc1 = nn.Conv2d(dim, dim // 4, 1)
        self.fc2 = nn.Conv2d(dim // 4, dim, 1)

    def forward(self, x):
        y = self.conv(x)
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
        return x + y * gate


class Lowered(NamedTuple):
    stock: dict  # TOSA op histograms
    ours: dict
    planned: list  # what the pass planned, per partition
    stock_vela: dict
    ours_vela: dict


def lower_both(model, inputs, tmp_path, target=TARGET) -> Lowered:
    """The stock lowering and the same lowering with the pass, and what the pass planned."""
    torch.manual_seed(0)
    model = model.eval()
    stock = compile_ethos_u(model, inputs, target=target, optimize=False, out_dir=tmp_path / "stock")
    with arm_layout() as planned:
        ours = compile_ethos_u(model, inputs, target=target, optimize=False, out_dir=tmp_path / "pass")
    check = compare(stock["tosa_files"], ours["tosa_files"])
    assert check["bit_exact"], check
    return Lowered(stock["tosa_ops"], ours["tosa_ops"], planned, stock["vela"], ours["vela"])


def compute_ops(histogram):
    """The histogram without the layout ops and constants the pass is free to change."""
    return {op: n for op, n in histogram.items() if op not in ("TRANSPOSE", "RESHAPE") and not op.startswith("CONST")}


def test_convnext_block_keeps_its_residual_stream_channels_last(tmp_path):
    torch.manual_seed(0)
    stock, ours, planned, *_ = lower_both(Stem(ConvNeXtBlock(16)), (torch.randn(1, 3, 16, 16),), tmp_path)
    # stock: the residual stream stays NCHW, two transposes around the block besides the
    # model's input and output; planned: only the input's and the output's
    assert stock["TRANSPOSE"] == 4 and ours["TRANSPOSE"] == 2
    assert compute_ops(ours) == compute_ops(stock)
    (record,) = planned
    assert record["applied"] and record["solver_status"] == "optimal"
    # the objective: bytes plus each transpose's fixed cost (151 bytes on U85), at its bound
    assert record["cost_after"] == record["cost_lower_bound"] < record["cost_before"]
    assert record["cost_after"] == record["transpose_bytes_after"] + 151 * record["transposes_after"]
    assert record["transpose_bytes_after"] < record["transpose_bytes_before"]


def test_squeeze_excite_block_is_planned_without_extra_transposes(tmp_path):
    torch.manual_seed(0)
    stock, ours, *_ = lower_both(Stem(SqueezeExcite(16)), (torch.randn(1, 3, 16, 16),), tmp_path)
    assert ours.get("TRANSPOSE", 0) <= stock.get("TRANSPOSE", 0)
    assert ours["TRANSPOSE"] == 2
    # the gate's mean over H and W: one REDUCE_SUM over their merged dim (arm_vela_forms)
    assert (stock["REDUCE_SUM"], ours["REDUCE_SUM"]) == (2, 1)
    assert compute_ops(ours) == compute_ops(stock) | {"REDUCE_SUM": 1}


class PooledHead(nn.Module):
    """A CNN's global average pool and classifier."""

    def __init__(self, dim=232):
        super().__init__()
        self.conv = nn.Conv2d(16, dim, 1)
        self.fc = nn.Linear(dim, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u85-256"])
def test_a_global_average_pool_sums_once_over_the_merged_h_and_w(tmp_path, target):
    torch.manual_seed(0)
    low = lower_both(Stem(PooledHead()), (torch.randn(1, 3, 14, 14),), tmp_path, target)
    assert (low.stock["REDUCE_SUM"], low.ours["REDUCE_SUM"]) == (2, 1)
    assert compute_ops(low.ours) == compute_ops(low.stock) | {"REDUCE_SUM": 1}
    # Vela runs the sum over H of NHWC int32 data through transposes of its own
    assert low.ours_vela["cycles_total"] < low.stock_vela["cycles_total"]
    assert low.ours_vela["transpose_cycles"] < low.stock_vela["transpose_cycles"]
    assert low.planned[-1]["vela_forms"]["merge_adjacent_sums"] == 1


def test_shuffle_unit_needs_fewer_transposes(tmp_path):
    torch.manual_seed(0)
    stock, ours, *_ = lower_both(Stem(nn.Sequential(ShuffleUnit(16), ShuffleUnit(16))), (torch.randn(1, 3, 16, 16),),
                                tmp_path)
    assert (stock["TRANSPOSE"], ours["TRANSPOSE"]) == (5, 3)
    assert compute_ops(ours) == compute_ops(stock)


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u85-256"])
def test_attention_block_has_no_more_transposes_and_fewer_cycles(tmp_path, target):
    torch.manual_seed(0)
    stock, ours, planned, stock_vela, ours_vela = lower_both(AttentionBlock(32, 4), (torch.randn(1, 8, 32),), tmp_path,
                                                             target)
    # the model's own placement: the qkv head split (768 bytes), k's transpose and the head
    # merge (256 each). The backend's propagation lifts k's transpose above its slice, onto the
    # whole qkv tensor (3 transposes, 1,792 bytes); splitting each head apart would move 1,024
    # bytes in 4 transposes. No more transposes than the backend placed: the model's own.
    assert (stock["TRANSPOSE"], ours["TRANSPOSE"]) == (3, 3)
    assert compute_ops(ours) == compute_ops(stock)
    (record,) = planned
    assert (record["transposes_before"], record["transposes_after"], record["max_transposes"]) == (3, 3, 3)
    assert (record["transpose_bytes_before"], record["transpose_bytes_after"]) == (1280, 1280)
    assert record["cost_after"] == record["cost_lower_bound"] and not record["applied"]
    # the rank-5 head split and k's transpose written at rank 3 (Vela splits rank 5 into 13)
    assert record["vela_forms"] == {"lower_transpose_rank": 2, "concatenate_before_reshapes": 0,
                                    "merge_adjacent_sums": 0}
    figures = {"ethos-u55-128": (40006, 32966), "ethos-u85-256": (39417, 14796)}[target]
    assert (stock_vela["cycles_total"], ours_vela["cycles_total"]) == figures


class FeatureFront(nn.Module):
    """wav2vec2's first feature-encoder layer (a conv1d, a group norm of one channel per group)
    and its positional convolution (grouped: a concatenation of per-group convolutions)."""

    def __init__(self, dim=16, groups=4, kernel=8):
        super().__init__()
        self.conv = nn.Conv1d(1, dim, 10, 5)
        self.norm = nn.GroupNorm(dim, dim)
        self.pos = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)

    def forward(self, x):
        h = nn.functional.gelu(self.norm(self.conv(x[:, None]))).transpose(1, 2)
        y = self.pos(h.transpose(1, 2))[:, :, :-1]
        return h + nn.functional.gelu(y).transpose(1, 2)


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u85-256"])
def test_wav2vec2_front_keeps_its_concatenation_in_place(tmp_path, target):
    """With the plan alone, the group norm's statistics ran with their channels outermost
    ((1, 16, 1, 1)) and the grouped convolution's outputs reached their concatenation through
    reshapes, which Vela copies: more cycles than stock. Both are written as Vela runs them best,
    and the statistics' two sums as one (on U85 most of what is left)."""
    torch.manual_seed(0)
    stock, ours, planned, stock_vela, ours_vela = lower_both(FeatureFront(), (torch.randn(1, 400),), tmp_path, target)
    assert ours.get("TRANSPOSE", 0) == stock.get("TRANSPOSE", 0) == 0
    # the group norm's statistics: one REDUCE_SUM over the merged dims where stock sums twice
    assert compute_ops(ours) == compute_ops(stock) | {"REDUCE_SUM": compute_ops(stock)["REDUCE_SUM"] - 1}
    (record,) = planned
    assert record["vela_forms"] == {"lower_transpose_rank": 0, "concatenate_before_reshapes": 1,
                                    "merge_adjacent_sums": 1}
    figures = {"ethos-u55-128": (76359, 69273), "ethos-u85-256": (72388, 31233)}[target]
    assert (stock_vela["cycles_total"], ours_vela["cycles_total"]) == figures


def test_conv1d_stack(tmp_path):
    torch.manual_seed(0)
    stock, ours, *_ = lower_both(Wav2LetterNano(), (torch.randn(1, 16, 32),), tmp_path)
    assert ours["TRANSPOSE"] == stock["TRANSPOSE"] == 2
    assert compute_ops(ours) == compute_ops(stock)


def test_the_pass_is_idempotent(tmp_path, monkeypatch):
    """A second run of the pass on its own result finds nothing to change."""
    from executorch.backends.arm._passes import arm_pass_manager as manager

    records = []
    manager.register_pass_insertions_before(manager.PropagateViewCopyPermuteDownPass,
                                            [make_pass(records), make_pass(records)])
    try:
        torch.manual_seed(0)
        compile_ethos_u(Stem(ConvNeXtBlock(16)).eval(), (torch.randn(1, 3, 16, 16),), target=TARGET,
                        optimize=False, out_dir=tmp_path)
    finally:
        manager.clear_registered_pass_insertions()
    first, second = records
    assert first["applied"] and not second["applied"]
    assert second["transpose_bytes_before"] == first["transpose_bytes_after"]


def test_registry_is_cleared_after_an_exception():
    from executorch.backends.arm._passes import arm_pass_manager as manager

    greedy = (manager.PropagateViewCopyPermuteDownPass, manager.PropagateViewCopyPermuteUpPass)
    with pytest.raises(RuntimeError, match="boom"):
        with arm_layout():
            assert manager._registered_pass_insertions
            assert all("call" in p.__dict__ for p in greedy)  # the greedy propagation is skipped
            raise RuntimeError("boom")
    assert not manager._registered_pass_insertions
    assert not any("call" in p.__dict__ for p in greedy)


def test_an_executorch_without_the_hook_is_one_line(monkeypatch):
    from executorch.backends.arm._passes import arm_pass_manager as manager

    monkeypatch.delattr(manager, "PropagateViewCopyPermuteDownPass")
    with pytest.raises(ArmHookError, match="no pass-insertion hook before PropagateViewCopyPermuteDownPass") as info:
        with arm_layout():
            pass
    assert "\n" not in str(info.value)
    assert arm_hook is not None


class PaddedConvs(nn.Module):
    """Explicit asymmetric padding between convolutions (TensorFlow's "same" padding, as Hugging
    Face MobileNetV2 writes it)."""

    def __init__(self, dim=16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, dim, 3, 2)
        self.conv2 = nn.Conv2d(dim, dim, 3, 2, groups=dim)

    def forward(self, x):
        y = self.conv1(nn.functional.pad(x, (0, 1, 0, 1)))
        return self.conv2(nn.functional.pad(torch.relu(y), (0, 1, 0, 1)))


def test_padding_between_convolutions_is_planned_channels_last(tmp_path):
    torch.manual_seed(0)
    stock, ours, planned, *_ = lower_both(PaddedConvs(), (torch.randn(1, 3, 16, 16),), tmp_path)
    assert ours["TRANSPOSE"] == 2 and ours["TRANSPOSE"] <= stock["TRANSPOSE"]
    assert compute_ops(ours) == compute_ops(stock)
    (record,) = planned
    assert record["unknown_ops"] == [] and record["greedy_propagation"] == "skipped"


def test_pad_lists_follow_the_permuted_dims():
    from layoutopt.ir.perm import permuted_pad

    # NCHW pads of W (1, 2) and H (3, 4), the tensor stored NHWC: C, then W, then H from the back
    assert permuted_pad([1, 2, 3, 4], (0, 2, 3, 1)) == [0, 0, 1, 2, 3, 4]
    assert permuted_pad([1, 2], (0, 1, 2, 3)) == [1, 2]


def test_narrow_innermost_layouts_cost_a_transpose():
    from layoutopt.executorch.arm_plan import narrow_innermost_cost
    from layoutopt.layout.problem import ValueInfo

    image = ValueInfo(("x", -1), (1, 3, 224, 224), 150_528)
    assert narrow_innermost_cost(image, (0, 2, 3, 1)) == 150_528  # 3 channels innermost
    assert narrow_innermost_cost(image, (0, 1, 2, 3)) == 0
    features = ValueInfo(("y", -1), (1, 32, 56, 56), 100_352)
    assert narrow_innermost_cost(features, (0, 2, 3, 1)) == 0  # 32 channels innermost: a full brick
    column = ValueInfo(("z", -1), (1, 16, 4, 1), 64)
    assert narrow_innermost_cost(column, (0, 3, 1, 2)) == 0  # already narrow as it stands
