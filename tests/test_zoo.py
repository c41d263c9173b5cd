"""The bundled models: plans at the solver's bound, outputs equal, exact figures."""
import pytest

from helpers import check_plan
from layoutopt.zoo import MODELS, build

# (transposes before, after) on ethos-u55 with NCHW I/O
EXPECTED = {
    "mobilenet_v2_nano": (27, 1),
    "convnext_nano": (3, 1),
    "shufflenet_nano": (25, 1),  # the input: the shuffles are carried into the weights that read them
    "wav2letter_nano": (10, 2),  # conv1d as conv2d(H=1): the input in, the log-softmax out
    "attention_block": (4, 4),  # K transposed, V and the head merge are real reorders
}


def test_every_bundled_model_has_expectations():
    assert set(EXPECTED) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bundled_model_plans_at_the_bound(name):
    model, inputs = build(name)
    before, after = EXPECTED[name]
    check_plan(model, inputs, before=before, after=after)
