"""The problem builder's shortcuts change no problem: the eager screen of a view's source
layouts, the stop once a source holds its labels, and one replay per copy of a shape into a
dim order build the problem the full search builds. Replay keys keep what a replay reads;
eager stride probes leave the caller's thread count as it was."""
import copy

import pytest
import torch
from torch import nn

from layoutopt.ir.propagate import _replay_key, fake_mode_of, refresh_meta, run_eager
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


def _full_search(builder):
    def convert(self, source, order):  # a replay per copy
        return conversion_call(source, order, lambda t, a, k: problem_module.run_fake(self.mode, t, a, k), self.edge)

    builder.setattr(problem_module._Builder, "_may_free_view", lambda self, *args: True)
    builder.setattr(problem_module._Builder, "_saturated", lambda self, info: False)
    builder.setattr(problem_module._Builder, "_convert", convert)


@pytest.mark.parametrize("name", ["attention_block", "shufflenet_nano", "convnext_nano"])
def test_shortcuts_build_the_problem_the_full_search_builds(name, monkeypatch):
    fast = _summary(_problem(name, "cortex-m"))
    with monkeypatch.context() as m:
        _full_search(m)
        full = _summary(_problem(name, "cortex-m"))
    assert fast == full


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
