"""Op identities: an in-place variant is known exactly as its functional op is."""
import pytest
import torch

from layoutopt.ir import ops

aten = torch.ops.aten


@pytest.mark.parametrize("inplace, pure", [
    (aten.relu_.default, aten.relu.default),
    (aten.hardswish_.default, aten.hardswish.default),
    (aten.hardtanh_.default, aten.hardtanh.default),
    (aten.hardsigmoid_.default, aten.hardsigmoid.default),
    (aten.sigmoid_.default, aten.sigmoid.default),
    (aten.silu_.default, aten.silu.default),
    (aten.gelu_.default, aten.gelu.default),
    (aten.clamp_.default, aten.clamp.default),
    (aten.add_.Tensor, aten.add.Tensor),
    (aten.mul_.Scalar, aten.mul.Scalar),
    (aten.addmm_.default, aten.addmm.default),
])
def test_inplace_variant_is_known_as_its_functional_op(inplace, pure):
    assert ops.functional(inplace) is pure
    assert ops.family(inplace) is ops.family(pure)
    assert ops.is_elementwise(inplace) is ops.is_elementwise(pure)
    assert ops.is_fusable_activation(inplace) is ops.is_fusable_activation(pure)
    assert ops.activation_arg_names(inplace) == ops.activation_arg_names(pure)


def test_inplace_activations_of_mobilenet_v3_are_free_elementwise_ops():
    # hardswish carries no ``pointwise`` tag in ATen, hardswish_ none either: the table knows it
    for op in (aten.hardswish_.default, aten.hardsigmoid_.default, aten.relu_.default):
        assert ops.family(op) is ops.Family.FREE
        assert ops.is_elementwise(op)
    assert [ops.is_fusable_activation(op) for op in (
        aten.relu_.default, aten.hardtanh_.default, aten.hardsigmoid_.default, aten.hardswish_.default)] == [
        True, True, True, False]
    assert ops.family(aten.addmm_.default) is ops.Family.MATMUL
    assert ops.activation_arg_names(aten.addmm_.default) == ("mat1",)


@pytest.mark.parametrize("op", [aten.t_.default, aten.squeeze_.dim, aten.unsqueeze_.default,
                                aten.transpose_.default, aten.as_strided_.default])
def test_inplace_views_keep_their_own_identity(op):
    # they restride their operand rather than write it: not the view they are named after
    assert ops.functional(op) is op
    assert ops.family(op) is None


@pytest.mark.parametrize("op", [aten.relu.default, aten.conv2d.default, aten.__and__.Tensor])
def test_other_ops_are_their_own_functional_op(op):
    assert ops.functional(op) is op
