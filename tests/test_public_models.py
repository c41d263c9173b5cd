"""Public architectures (Hugging Face transformers classes, small configs, random init):
every plan at its solver's bound, outputs equal, and never worse than channels_last()."""
import copy

import pytest
import torch

from helpers import check_plan

pytest.importorskip("transformers")
from layoutopt.zoo.public import HF_SMALL  # noqa: E402

import layoutopt  # noqa: E402

pytestmark = pytest.mark.slow  # public architectures, each exported and planned

# (transposes before, after) on ethos-u55 with NCHW I/O
EXPECTED = {
    "hf_resnet_small": (15, 2),
    "hf_convnext_small": (4, 2),
    "hf_mobilevit_small": (105, 38),
    "hf_segformer_small": (36, 8),
    "hf_swin_small": (12, 8),
    "hf_vit_small": (9, 7),
    "hf_regnet_small": (39, 2),  # squeeze-excite convs on 1x1 inputs become fully connected
    "hf_levit_small": (25, 12),
    "hf_data2vec_audio_small": (39, 3),  # a free copy restrides a size-1 dim the conv2d form reads
    "hf_wav2vec2_small": (11, 6),  # conv feature encoder as conv2d; the weight-normed conv is declined
}


def test_expectations_cover_every_small_model():
    assert set(EXPECTED) == set(HF_SMALL)


@pytest.mark.parametrize("name", sorted(HF_SMALL))
def test_public_model_plans_at_the_bound_and_beats_channels_last(name):
    model, inputs = HF_SMALL[name]()
    before, after = EXPECTED[name]
    r = check_plan(model, inputs, before=before, after=after, atol=1e-4)
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    cl_inputs = tuple(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in inputs)
    baseline = layoutopt.measure_transposes(torch.export.export(cl_model, cl_inputs), "ethos-u55")
    assert r.report.transpose_bytes_after <= baseline.bytes
