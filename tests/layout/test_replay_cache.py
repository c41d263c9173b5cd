"""The cache of op replays: plans with it are the plans without it, and a repeated block
replays from the cache. The stage breakdown adds up to the report's seconds."""
import pytest
import torch
from torch import nn

import layoutopt
from layoutopt.ir.propagate import _replays_of, fake_mode_of, replay_cache, run_fake
from layoutopt.zoo import build

FIGURES = ("nodes", "transposes_before", "transposes_after", "transpose_bytes_before", "transpose_bytes_after",
           "lower_bound_bytes", "solver_status", "declined", "rewrites", "truncated", "conversions_after",
           "plan_mismatches")


def _figures(ep, inputs, target):
    r = layoutopt.optimize(ep, inputs, target=target, verify=False).report.to_dict()
    return {k: r[k] for k in FIGURES}


def _plan_of(result):
    return [(n.name, str(n.target), tuple(n.meta["val"].stride()) if isinstance(n.meta.get("val"), torch.Tensor)
             else None) for n in result.program.graph.nodes]


@pytest.mark.parametrize("name", ["shufflenet_nano", "mobilenet_v2_nano", "attention_block", "wav2letter_nano"])
@pytest.mark.parametrize("target", ["cortex-m", "cpu"])
def test_cached_replays_give_the_plan_replays_without_the_cache_give(name, target):
    model, inputs = build(name)
    with replay_cache(False):
        ep = torch.export.export(model, inputs)
        cold = layoutopt.optimize(ep, inputs, target=target, verify=False)
    assert "_layoutopt_replays" not in fake_mode_of(ep.graph_module).__dict__
    warm_ep = torch.export.export(model, inputs)
    first = layoutopt.optimize(warm_ep, inputs, target=target, verify=False)
    second = layoutopt.optimize(warm_ep, inputs, target=target, verify=False)  # all from the cache
    for result in (first, second):
        assert _plan_of(result) == _plan_of(cold)
        figures = result.report.to_dict()
        assert {k: figures[k] for k in FIGURES} == {k: cold.report.to_dict()[k] for k in FIGURES}


@pytest.mark.slow  # a public architecture, planned twice
def test_public_model_plans_the_same_with_and_without_the_cache():
    pytest.importorskip("transformers")
    from layoutopt.zoo.public import HF_SMALL

    model, inputs = HF_SMALL["hf_swin_small"]()
    with replay_cache(False):
        cold = _figures(torch.export.export(model, inputs), inputs, "cortex-m")
    assert _figures(torch.export.export(model, inputs), inputs, "cortex-m") == cold


class Repeated(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()) for _ in range(blocks))

    def forward(self, x):
        for b in self.blocks:
            x = x + b(x)
        return x


def _distinct_replays(blocks):
    model, inputs = Repeated(blocks), (torch.randn(1, 8, 8, 8),)
    ep = torch.export.export(model, inputs)
    layoutopt.optimize(ep, inputs, target="cortex-m", verify=False)
    return len(_replays_of(fake_mode_of(ep.graph_module)))


def test_a_repeated_block_replays_from_the_cache():
    # one entry per distinct (op, operand metadata), not one per block
    assert _distinct_replays(9) == _distinct_replays(3)


def test_mutating_ops_are_not_cached_and_errors_of_pure_ops_are():
    ep = torch.export.export(nn.ReLU(), (torch.randn(2, 3),))
    mode = fake_mode_of(ep.graph_module)
    with mode:
        x = torch.empty(2, 3)
    run_fake(mode, torch.ops.aten.add_.Tensor, (x, x), {})
    assert not any(k[0] is torch.ops.aten.add_.Tensor for k in _replays_of(mode))
    for _ in range(2):
        with pytest.raises((RuntimeError, ValueError), match="[Vv]iew"):  # its meta kernel raises as eager does
            run_fake(mode, torch.ops.aten.view.default, (x.t(), [6]), {})
    assert any(k[0] is torch.ops.aten.view.default for k in _replays_of(mode))


def test_stage_seconds_cover_every_stage_and_add_up():
    model, inputs = build("mobilenet_v2_nano")
    r = layoutopt.optimize(model, inputs, target="cortex-m").report
    assert set(r.stage_seconds) == {"export", "prepare", "measure", "rewrite", "problem", "solve", "materialize",
                                    "verify"}
    assert all(s >= 0 for s in r.stage_seconds.values())
    assert sum(r.stage_seconds.values()) <= r.seconds + 1e-6
    assert sum(r.stage_seconds.values()) >= 0.9 * r.seconds
    assert "stage_seconds" in r.to_dict()
