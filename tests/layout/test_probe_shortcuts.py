"""The problem builder's shortcuts change no problem: the meta-kernel screen of a view's
source layouts, the stop once a source holds its labels, one replay per copy of a shape into
a dim order, probes eager answers and views replayed by their meta kernel build the problem
the full search builds. Eager answers carry the metadata a fake replay gives. Replay keys
keep what a replay reads; eager stride probes leave the caller's thread count as it was."""
import copy

import pytest
import torch
from torch import nn

from layoutopt.ir import propagate
from layoutopt.ir.propagate import _replay_key, fake_mode_of, refresh_meta, run_eager, run_fake, run_probe
from layoutopt.layout import problem as problem_module
from layoutopt.layout.conversion import conversion_call
from layoutopt.layout.cost import IOLayout
from layoutopt.layout.problem import build_problem
from layoutopt.targets import get_target
from layoutopt.zoo import build


def _summary(problem):
    values = {v: (i.shape, i.nbytes, list(i.reps), dict(i.convertible), i.fixed) for v, i in problem.values.items()}
    return (values, problem.modes, problem.outputs, problem.node_order, problem.truncated,
            [(d.op, d.node, d.reason) for d in problem.declined], problem.replayed)


def _problem(name, target):
    model, inputs = build(name)
    ep = copy.deepcopy(torch.export.export(model, inputs))
    refresh_meta(ep.graph_module)
    return build_problem(ep, get_target(target), IOLayout.parse("contiguous"))


def _replayed_copies(builder):
    def convert(self, source, order):  # a replay per copy
        return conversion_call(source, order, lambda t, a, k: problem_module.run_fake(self.mode, t, a, k), self.edge)

    builder.setattr(problem_module._Builder, "_convert", convert)


def _replayed_probes(builder):
    builder.setattr(problem_module, "run_probe", problem_module.run_fake)


def _views_through_fake_dispatch(builder):
    builder.setattr(propagate, "_META_KERNELS", propagate.contextvars.ContextVar("off", default=False))


def _full_search(builder):
    builder.setattr(problem_module._Builder, "_may_free_view", lambda self, *args: True)
    builder.setattr(problem_module._Builder, "_saturated", lambda self, info: False)
    _replayed_copies(builder)
    _replayed_probes(builder)
    _views_through_fake_dispatch(builder)


@pytest.mark.parametrize("name", ["attention_block", "shufflenet_nano", "convnext_nano"])
def test_shortcuts_build_the_problem_the_full_search_builds(name, monkeypatch):
    fast = _summary(_problem(name, "cortex-m"))
    with monkeypatch.context() as m:
        _full_search(m)
        full = _summary(_problem(name, "cortex-m"))
    assert fast == full


@pytest.mark.parametrize("without", [_replayed_probes, _views_through_fake_dispatch])
@pytest.mark.parametrize("name", ["attention_block", "convnext_nano"])
def test_each_eager_shortcut_builds_the_problem_its_replays_build(name, without, monkeypatch):
    fast = _summary(_problem(name, "cortex-m"))
    with monkeypatch.context() as m:
        without(m)
        replayed = _summary(_problem(name, "cortex-m"))
    assert fast == replayed


def _meta(t):
    return tuple(t.shape), t.stride(), t.dtype, t.storage_offset(), t.untyped_storage().nbytes()


aten = torch.ops.aten
_ODD = ((1, 4, 32), (32, 32, 1))  # a size-1 dim strided as no dense layout strides it


def _probe_cases():
    """(op, operand shapes and strides, other arguments, whether eager answers)."""
    w = ((32,), (1,))
    return [
        (aten.matmul.default, [((1, 4, 64, 16), (4096, 16, 1, 64)), ((1, 4, 16, 64), (4096, 1, 16, 256))], (), True),
        (aten.matmul.default, [_ODD, ((1, 32, 8), (8, 8, 1))], (), True),
        (aten.linear.default, [_ODD, ((16, 32), (32, 1))], (), True),
        (aten.layer_norm.default, [_ODD, w, w], ([32],), False),  # fake keeps the odd strides, eager not
        (aten.layer_norm.default, [((4, 1, 48), (48, 192, 1)), ((48,), (1,)), ((48,), (1,))], ([48],), False),
        # elementwise ops and batch norm are replayed: over the sweep, eager answers for them left
        # group norms downstream in other layouts than the solved ones (BiT, MobileViTV2)
        (aten.add.Tensor, [_ODD, ((1, 4, 32), (128, 1, 4))], (), False),
        (aten.gelu.default, [((2, 8, 4, 4), (128, 1, 32, 8))], (), False),
        (aten.sigmoid.default, [((1, 8, 1, 1), (8, 1, 8, 8))], (), False),  # fake keeps channels-last, eager not
        (aten.add_.Tensor, [((2, 3), (3, 1)), ((2, 3), (3, 1))], (), False),  # writes into an argument
        (aten.permute.default, [((2, 3), (3, 1))], ([1, 0],), False),  # a view, not a fresh tensor
    ]


@pytest.mark.parametrize("op, operands, rest, answered", _probe_cases())
def test_an_eager_answer_carries_the_replays_metadata(op, operands, rest, answered):
    mode = fake_mode_of(torch.export.export(nn.ReLU(), (torch.randn(2, 3),)).graph_module)
    with mode:
        tensors = [torch.empty_strided(shape, strides) for shape, strides in operands]
    if op is aten.layer_norm.default:
        args = (tensors[0], *rest, *tensors[1:])
    else:
        args = (*tensors, *rest)
    probe = run_probe(mode, op, args, {})
    replay = propagate._run_fake(mode, op, args, {})
    assert _meta(probe) == _meta(replay)
    key = _replay_key(op, args, {})
    found = None if key is None else propagate._replays_of(mode).get((propagate._EAGER, key))
    assert (found is not None and found is not propagate._REPLAY) is answered


def test_the_attention_block_search_stops_at_the_label_cap():
    problem = _problem("attention_block", "cortex-m")
    assert any(t.cap == "max_labels_per_value" for t in problem.truncated)


def test_replay_keys_tell_containers_and_shared_tensors_apart():
    mode = fake_mode_of(torch.export.export(nn.ReLU(), (torch.randn(2, 3),)).graph_module)
    with mode:
        x, y = torch.empty(2, 3), torch.empty(2, 3)
        z = torch.empty_strided((2, 3), (1, 2))
    add = torch.ops.aten.add.Tensor
    assert _replay_key(add, (x, y), {}) == _replay_key(add, (y, x), {})
    assert _replay_key(add, (x, x), {}) != _replay_key(add, (x, y), {})
    assert _replay_key(add, (x, z), {}) != _replay_key(add, (x, y), {})
    view = torch.ops.aten.view.default
    assert _replay_key(view, (x, [6]), {}) != _replay_key(view, (x, (6,)), {})
    assert _replay_key(view, (x, [6]), {}) != _replay_key(view, (x, [6.0]), {})
    assert _replay_key(add, (x, y), {"alpha": 2}) != _replay_key(add, (x, y), {"alpha": 2.0})
    assert _replay_key(torch.ops.aten.add_.Tensor, (x, y), {}) is None  # mutates its argument


def test_eager_stride_probes_keep_the_callers_thread_count():
    before = torch.get_num_threads()
    x = torch.empty(1, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    w = torch.empty(4)
    out = run_eager(torch.ops.aten.batch_norm.default, (x, w, w, w, w, False, 0.1, 1e-5, True), {})
    assert out.stride() == x.stride()
    assert torch.get_num_threads() == before
