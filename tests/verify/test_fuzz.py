"""A fixed-seed slice of the fuzzer, and proof that its check can fail."""
import pytest
from hypothesis import HealthCheck, given, seed, settings

import layoutopt.layout.problem as problem
from layoutopt.verify.fuzz import GraphSpec, Step, check, graphs

CHECKS = dict(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("target", ["ethos-u55", "xnnpack"])
def test_fixed_seed_slice_never_fails(target):
    @seed(20261122)
    @settings(**CHECKS)
    @given(graphs())
    def one(spec):
        outcome = check(spec, target)
        assert outcome.status != "failed", f"{outcome.detail}\n{spec!r}"

    one()


CONVS = GraphSpec(shape=(1, 4, 6, 6), steps=(
    Step("conv", (0,), (8, 3, 1, 1, 1, 1), (1, 8, 6, 6)),
    Step("unary", (1,), ("relu",), (1, 8, 6, 6)),
    Step("conv", (2,), (8, 1, 1, 1, 0, 2), (1, 8, 6, 6)),
), outputs=(3,))


def test_a_spec_with_convolutions_passes():
    assert check(CONVS, "ethos-u55").status == "passed"


def test_check_fails_when_the_planner_misjudges_costs(monkeypatch):
    # a planner that believes every op is free leaves forced conversions in the graph:
    # the measured bytes then leave the solver's bound, and the check must say so
    monkeypatch.setattr(problem, "op_charges", lambda *a, **k: [])
    outcome = check(CONVS, "ethos-u55")
    assert outcome.status == "failed" and "off the bound" in outcome.detail


def test_float16_and_quantized_specs_run():
    half = GraphSpec(CONVS.shape, CONVS.steps, CONVS.outputs, dtype="float16")
    quant = GraphSpec(CONVS.shape, CONVS.steps, CONVS.outputs, quantize=True)
    assert check(half, "xnnpack").status == "passed"
    assert check(quant, "cortex-m").status == "passed"


def test_regression_permute_of_a_split_piece():
    # shrunk by bench/fuzz.py: a permute rule read the list value of a split
    spec = GraphSpec(shape=(1, 8), dtype="float32", quantize=True, outputs=(4,), steps=(
        Step("unary", (0,), ("relu",), (1, 8)),
        Step("unary", (0,), ("relu",), (1, 8)),
        Step("split", (0,), (1, 1, False), (1, 7)),
        Step("permute", (3,), ((1, 0),), (7, 1)),
    ))
    assert check(spec, "ethos-u55").status == "passed"


@pytest.mark.parametrize("quantize,target", [(False, "ethos-u55"), (True, "cortex-m")])
def test_head_and_squeeze_excite_specs_fire_their_rules(quantize, target):
    conv = Step("conv", (0,), (8, 3, 1, 1, 1, 1), (1, 8, 6, 6))
    head = GraphSpec((1, 4, 6, 6), (conv, Step("head", (1,), (10,), (1, 10))), (2,), quantize=quantize)
    outcome = check(head, target)
    assert outcome.status == "passed" and outcome.rewrites == {"flatten_linear_to_nhwc": 1}
    se = GraphSpec((1, 4, 6, 6), (conv, Step("squeeze_excite", (1,), (), (1, 8, 6, 6))), (2,), quantize=quantize)
    outcome = check(se, target)
    assert outcome.status == "passed"
    assert outcome.rewrites == ({"conv1x1_to_fc": 1} if target == "cortex-m" else {})
