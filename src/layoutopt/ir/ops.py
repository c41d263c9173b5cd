"""The only home of op identities: which ATen (and ExecuTorch edge) ops layoutopt knows, and
what each family asks of the layout of its operands.

Ops are matched by their overload packet, never by name strings; ExecuTorch edge ops are
mapped back to the ATen overload they wrap (``EdgeOpOverload._op``) before lookup.
"""
from __future__ import annotations

import enum
from typing import Any

import torch

aten = torch.ops.aten


class Family(enum.Enum):
    """What an op asks of the layout of its activation operands on an NHWC target."""

    CONV = "conv"  # convolution: channels-last in and out
    POOL = "pool"  # pooling: channels-last in and out
    RESIZE = "resize"  # upsampling: channels-last in and out
    MATMUL = "matmul"  # vector products: the reduced dim innermost
    NORM_LAST = "norm_last"  # normalisation over the trailing dims: those dims innermost
    FREE = "free"  # works in any layout (axis arguments are logical)
    VIEW = "view"  # reinterprets or selects; moves bytes only when the memory sequence changes
    COPY = "copy"  # a copy whose output layout is free to choose (clone, contiguous, casts)


def _packets(*names: str) -> frozenset:
    out = []
    for name in names:
        packet = getattr(aten, name, None)
        if packet is not None:
            out.append(packet)
    return frozenset(out)


_FAMILY_PACKETS: dict[Family, frozenset] = {
    Family.CONV: _packets(
        "conv1d", "conv2d", "conv3d", "convolution", "_convolution",
        "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    ),
    Family.POOL: _packets(
        "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "max_pool3d_with_indices",
        "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
        "adaptive_avg_pool3d", "_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool2d",
    ),
    Family.RESIZE: _packets(
        "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact2d",
        "upsample_bilinear2d", "_upsample_bilinear2d_aa", "upsample_bicubic2d", "upsample_linear1d",
        "upsample_trilinear3d",
    ),
    Family.MATMUL: _packets("linear", "addmm", "mm", "bmm", "matmul", "baddbmm", "scaled_dot_product_attention"),
    Family.NORM_LAST: _packets("layer_norm", "native_layer_norm", "rms_norm"),
    Family.FREE: _packets(
        # normalisations and reductions along logical axes
        "batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
        "native_batch_norm", "group_norm", "native_group_norm", "instance_norm",
        "softmax", "_softmax", "log_softmax", "_log_softmax", "_safe_softmax",
        "mean", "sum", "amax", "amin", "max", "min", "argmax", "argmin", "var", "std", "var_mean",
        "prod", "norm", "linalg_vector_norm", "cumsum", "logsumexp", "any", "all",
        # joins, splits and padding
        "cat", "concat", "stack", "constant_pad_nd", "pad", "reflection_pad2d", "replication_pad2d",
        "flip", "roll", "repeat", "tile", "index_select", "gather", "where", "masked_fill",
        "dropout", "native_dropout", "feature_dropout", "alpha_dropout", "pixel_shuffle", "pixel_unshuffle",
        "channel_shuffle", "full_like", "zeros_like", "ones_like", "empty_like", "rand_like", "randn_like",
    ),
    Family.VIEW: _packets(
        "view", "reshape", "_unsafe_view", "_reshape_alias", "permute", "transpose", "t", "squeeze",
        "unsqueeze", "flatten", "unflatten", "expand", "expand_as", "select", "slice", "narrow", "split",
        "split_with_sizes", "chunk", "unbind", "alias", "view_as", "movedim", "swapaxes", "numpy_T",
        "view_copy", "permute_copy", "squeeze_copy", "unsqueeze_copy", "expand_copy", "slice_copy",
        "select_copy", "split_copy", "split_with_sizes_copy", "t_copy", "transpose_copy", "unbind_copy",
        "alias_copy", "reshape_as",
    ),
    Family.COPY: _packets("clone", "contiguous", "_to_copy", "to", "type_as", "lift_fresh_copy"),
}

# Elementwise ops that ATen does not tag ``pointwise``.
_UNTAGGED_ELEMENTWISE = _packets("hardswish", "log_sigmoid", "prelu", "_prelu_kernel", "rsub", "detach", "fill",
                                 "copy")
_FAMILY_PACKETS[Family.FREE] = _FAMILY_PACKETS[Family.FREE] | _UNTAGGED_ELEMENTWISE

_BY_PACKET: dict[Any, Family] = {p: fam for fam, packets in _FAMILY_PACKETS.items() for p in packets}

# Quantize/dequantize ops live in a namespace that exists only once a quantization flow is
# imported; they are elementwise in the logical index space (per-channel axes are logical).
_QDQ_NAMESPACES = frozenset({"quantized_decomposed", "torchao"})

# Activation operands whose layout a family constrains, by schema argument name.
ACTIVATION_ARGS: dict[Any, tuple[str, ...]] = {
    **{p: ("input",) for p in _FAMILY_PACKETS[Family.CONV]},
    **{p: ("self", "input") for p in _FAMILY_PACKETS[Family.POOL] | _FAMILY_PACKETS[Family.RESIZE]},
    **{p: ("input",) for p in _FAMILY_PACKETS[Family.NORM_LAST]},
    aten.linear: ("input",),
    aten.addmm: ("mat1",),
    aten.mm: ("self", "mat2"),
    aten.bmm: ("self", "mat2"),
    aten.matmul: ("self", "other"),
    aten.baddbmm: ("batch1", "batch2"),
    aten.scaled_dot_product_attention: ("query", "key", "value"),
}

NHWC_FAMILIES = frozenset({Family.CONV, Family.POOL, Family.RESIZE})
DENSE_LAST_FAMILIES = frozenset({Family.MATMUL, Family.NORM_LAST})
DATA_MOVEMENT_FAMILIES = frozenset({Family.VIEW, Family.COPY})

# Copies that change nothing but the layout; layoutopt emits these for conversions.
CLONE = aten.clone.default
PERMUTE = aten.permute.default


def aten_overload(target: Any) -> Any:
    """The ATen overload behind ``target``; ExecuTorch edge ops wrap one in ``_op``."""
    if isinstance(target, torch._ops.OpOverload):
        return target
    inner = getattr(target, "_op", None)
    return inner if isinstance(inner, torch._ops.OpOverload) else target


# ExecuTorch's dim-order copies (edge dialect): ``_clone_dim_order``, ``_to_dim_order_copy``.
_DIM_ORDER_NAMESPACE = "dim_order_ops"


def edge_clone() -> Any:
    """ExecuTorch's ``dim_order_ops._clone_dim_order`` as an edge op (executorch imported lazily)."""
    from executorch.exir.dialects._ops import ops as exir_ops

    return exir_ops.edge.dim_order_ops._clone_dim_order.default


def functional(target: Any) -> Any:
    """The overload whose values an ATen in-place variant computes, or the op itself:
    ``relu_.default -> relu.default``, ``add_.Tensor -> add.Tensor`` (a packet ``f_`` whose ``f``
    exists). An in-place variant writes its result into its first operand, so it asks of
    layouts what its functional op asks. In-place views (``t_``, ``squeeze_``, tagged
    ``inplace_view``) restride their operand instead of writing it and keep their own identity."""
    op = aten_overload(target)
    packet = getattr(op, "overloadpacket", None)
    name = getattr(packet, "__name__", "")
    if getattr(op, "namespace", None) != "aten" or not name.endswith("_") or name.endswith("__") \
            or torch.Tag.inplace_view in op.tags:
        return op
    pure = getattr(aten, name[:-1], None)
    return getattr(pure, op._overloadname, op) if pure is not None else op


def family(target: Any) -> Family | None:
    """The family of an op, or None when layoutopt does not know it; an in-place variant has
    its functional op's family (``hardswish_`` is ``hardswish``)."""
    op = functional(target)
    packet = getattr(op, "overloadpacket", None)
    if packet is None:
        return None
    known = _BY_PACKET.get(packet)
    if known is not None:
        return known
    namespace = getattr(op, "namespace", None)
    if namespace == _DIM_ORDER_NAMESPACE:
        return Family.COPY
    if namespace in _QDQ_NAMESPACES:
        return Family.FREE
    if torch.Tag.pointwise in getattr(op, "tags", ()):
        return Family.FREE
    return None


# The functional ``*_copy`` ops ExecuTorch's edge dialect spells views with compute what the
# view computes (a functional graph never observes aliasing), so rules see one identity.
_VIEW_OF_COPY = {getattr(aten, f"{name}_copy"): getattr(aten, name) for name in (
    "permute", "view", "squeeze", "unsqueeze", "transpose", "t", "expand", "slice", "select", "split",
    "split_with_sizes", "unbind", "alias") if hasattr(aten, f"{name}_copy")}


def canonical(target: Any) -> Any:
    """The ATen overload ``target`` computes, a ``*_copy`` op named by its view
    (``permute_copy.default`` -> ``permute.default``); edge ops are unwrapped."""
    op = aten_overload(target)
    view = _VIEW_OF_COPY.get(getattr(op, "overloadpacket", None))
    if view is None:
        return op
    return getattr(view, op._overloadname, op)


def packet_of(node: Any) -> Any:
    """The canonical overload packet a call node runs (``aten.permute`` also for an edge
    ``permute_copy``), or None for other nodes."""
    if getattr(node, "op", None) != "call_function":
        return None
    return getattr(canonical(node.target), "overloadpacket", None)


# -- named op sets the rewrite rules match on ---------------------------------------------------
PERMUTE_PACKETS = frozenset({aten.permute, aten.transpose, aten.t})
VIEW_PACKETS = frozenset({aten.view, aten.reshape, aten._unsafe_view})
FLATTEN_PACKETS = VIEW_PACKETS | {aten.flatten}  # reshapes that can merge dims
RESHAPE_PACKETS = FLATTEN_PACKETS | {aten.unflatten}  # every reshape of the element sequence
# views that regroup or reorder elements (what a chain proved equal to a permute + reshape by
# index replay may be made of)
REORDER_PACKETS = RESHAPE_PACKETS | {aten.permute, aten.transpose}
# what a gather of channels may be made of: reorders and the copies that make them dense
GATHER_PACKETS = REORDER_PACKETS | {aten.clone, aten.contiguous}
CONCAT_PACKETS = frozenset({aten.cat, aten.concat})
SPLIT_PACKETS = frozenset({aten.split, aten.split_with_sizes, aten.chunk, aten.slice})
REDUCTION_PACKETS = _packets("sum", "amax", "amin", "mean")  # reductions over listed dims
POOL_2D_PACKETS = frozenset({aten.adaptive_avg_pool2d, aten._adaptive_avg_pool2d, aten.avg_pool2d, aten.max_pool2d})
# ops that sum their input's channels (dim 1) against a weight
WEIGHTED_SUM_PACKETS = frozenset({aten.conv1d, aten.conv2d, aten.conv3d, aten.convolution, aten.linear})


def is_contiguous_copy(node: Any) -> bool:
    """``x.contiguous()`` or ``x.clone()`` into the default (contiguous) memory format; in an
    edge program a ``_clone_dim_order`` into the identity dim order."""
    op = aten_overload(getattr(node, "target", None))
    if getattr(op, "namespace", None) == _DIM_ORDER_NAMESPACE and op._schema.name.endswith("_clone_dim_order"):
        order = node.kwargs.get("dim_order")
        return order is None or list(order) == list(range(len(order)))
    if packet_of(node) not in (aten.clone, aten.contiguous):
        return False
    fmt = node.kwargs.get("memory_format", node.args[1] if len(node.args) > 1 else None)
    return fmt is None or fmt == torch.contiguous_format


def op_name(target: Any) -> str:
    """``aten.conv2d.default`` style name, for reports."""
    op = aten_overload(target)
    if isinstance(op, torch._ops.OpOverload):
        return f"{op.namespace}.{op.__name__}"
    return getattr(op, "__name__", str(op))


def activation_arg_names(target: Any) -> tuple[str, ...]:
    op = functional(target)
    return ACTIVATION_ARGS.get(getattr(op, "overloadpacket", None), ())


_FUSABLE_ACTIVATIONS = _packets("relu", "relu6", "hardtanh", "clamp", "hardsigmoid")


def _qdq_name(target: Any) -> str | None:
    op = aten_overload(target)
    if getattr(op, "namespace", None) not in _QDQ_NAMESPACES:
        return None
    return op._schema.name.split("::")[-1]


def is_quantize_per_tensor(target: Any) -> bool:
    return _qdq_name(target) == "quantize_per_tensor"


def is_dequantize_per_tensor(target: Any) -> bool:
    return _qdq_name(target) == "dequantize_per_tensor"


def is_dequantize_per_channel(target: Any) -> bool:
    return _qdq_name(target) == "dequantize_per_channel"


def is_fusable_activation(target: Any) -> bool:
    """Activations NHWC backends fuse into the preceding convolution, in-place or not."""
    return getattr(functional(target), "overloadpacket", None) in _FUSABLE_ACTIVATIONS


_BATCH_NORMS = _packets("batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
                       "native_batch_norm")


def is_batch_norm(target: Any) -> bool:
    """A batch norm, whether it returns the tensor (``batch_norm``) or a tuple whose item 0 is
    it (the decomposed forms in core ATen)."""
    return getattr(aten_overload(target), "overloadpacket", None) in _BATCH_NORMS


def is_elementwise(target: Any) -> bool:
    """Each output element computed from the elements at its own index of every tensor operand
    (broadcast dim by dim): pointwise ops and per-tensor quantize/dequantize, in-place or not."""
    op = functional(target)
    if is_quantize_per_tensor(op) or is_dequantize_per_tensor(op):
        return True
    if getattr(op, "overloadpacket", None) in _UNTAGGED_ELEMENTWISE:
        return True
    return torch.Tag.pointwise in getattr(op, "tags", ())


# Ops whose fake (meta) kernel predicts other output strides than eager's CPU kernel gives:
# CPU attention returns its output in the layout of its query, the meta kernel contiguous; CPU
# batch norm returns a tensor with 1x1 spatial size contiguous whatever the strides of its
# size-1 dims, the meta kernel keeps them (and the next upsample reads them).
FAKE_STRIDES_DIFFER = frozenset({aten.scaled_dot_product_attention.default, aten.batch_norm.default,
                                 aten.native_batch_norm.default,
                                 aten._native_batch_norm_legit_no_training.default})

# Ops whose replay an eager run on uninitialised memory answers exactly: each writes one fresh
# tensor whose shape and dtype its operands' metadata decide, and whose strides are eager's
# whatever the operands' strides: vector products write a fresh contiguous result. Not batch
# norm, elementwise ops, layer norm nor softmax: where an operand's size-1 dims are strided
# unlike contiguous, fake kernels and eager stride them apart, and over the sweep eager answers
# for batch norm (BiT's weight standardization) and elementwise ops (MobileViTV2) left group
# norms downstream in layouts other than the solved ones. A real kernel on a small tensor
# costs microseconds; a fake replay of a composite op such as ``matmul`` dispatches each op it
# decomposes into, a millisecond or more.
_EAGER_ANSWERED = _packets("linear", "addmm", "mm", "bmm", "matmul", "baddbmm", "scaled_dot_product_attention")


# Of those, the ones whose eager strides a run on meta tensors states: the CPU kernels they
# reach (mm, bmm, addmm, baddbmm) are structured, so CPU and meta share the function that sets
# their output's strides, and the composites above them (linear, matmul) run the same code on
# either device. Not CPU attention, which picks a kernel of its own (``FAKE_STRIDES_DIFFER``).
_META_ANSWERED = _EAGER_ANSWERED - _packets("scaled_dot_product_attention")


def functional_aten(target: Any) -> Any:
    """The ATen overload ``target`` computes, if it writes into no argument; else None."""
    op = aten_overload(target)
    if not isinstance(op, torch._ops.OpOverload) or op.namespace != "aten" or op._schema.is_mutable:
        return None
    return op


def eager_answers(target: Any) -> bool:
    """Whether a replay of ``target`` may be answered by an eager run (``_EAGER_ANSWERED``);
    never for an op that writes into an argument."""
    op = functional_aten(target)
    return op is not None and op.overloadpacket in _EAGER_ANSWERED


def meta_answers(target: Any) -> bool:
    """Whether that eager run may be made on meta tensors (``_META_ANSWERED``)."""
    op = functional_aten(target)
    return op is not None and op.overloadpacket in _META_ANSWERED


# -- the graph ExecuTorch's Arm backend lowers to TOSA ---------------------------------------
# There each ``permute_copy`` becomes one TOSA TRANSPOSE and each ``view_copy`` one RESHAPE;
# ops of the ``tosa`` namespace (CONV2D, MATMUL, pooling...) read and write their operands as
# they stand.


class ArmKind(enum.Enum):
    """How an op of the Arm backend's graph lets its tensors be laid out."""

    ANCHOR = "anchor"  # operands and output as they stand (TOSA compute ops, anything unknown)
    ELEMENTWISE = "elementwise"  # any layout, the same for every same-rank operand and the output
    LAST_AXIS = "last_axis"  # elementwise along a per-channel last axis (RESCALE with channel scales)
    AXES = "axes"  # like elementwise, with axis arguments remapped (keepdim reductions, cat, slice)
    PAD = "pad"  # like elementwise, with the pad list remapped to the permuted dims
    PERMUTE = "permute"  # a view whose memory sequence follows its input's layout
    RESHAPE = "reshape"  # a view that keeps the memory sequence where index replay proves it


# argument position of the axis (or axes) each AXES op takes, and where keepdim is
_AXIS_ARG = {aten.sum: 1, aten.amax: 1, aten.amin: 1, aten.mean: 1, aten.cat: 1, aten.slice: 1}


def tosa_op(target: Any) -> str | None:
    """The TOSA operator an op of the Arm backend's ``tosa`` namespace is (``"RESCALE"``), or None."""
    op = aten_overload(target)
    if getattr(op, "namespace", None) != "tosa":
        return None
    return op._schema.name.split("::")[-1]


def arm_kind(node: Any) -> ArmKind:
    """The kind of a call node of the Arm backend's graph before TOSA serialization."""
    tosa = tosa_op(node.target)
    if tosa == "TABLE":
        return ArmKind.ELEMENTWISE
    if tosa == "RESCALE":
        scales = node.args[2] if len(node.args) > 2 else ()
        return ArmKind.LAST_AXIS if len(scales) > 1 else ArmKind.ELEMENTWISE
    if tosa is not None:
        return ArmKind.ANCHOR
    packet = packet_of(node)
    if packet is aten.permute:
        return ArmKind.PERMUTE
    if packet in VIEW_PACKETS:
        return ArmKind.RESHAPE
    if packet in REDUCTION_PACKETS:
        keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        return ArmKind.AXES if keepdim and axis_arg(node)[1] is not None else ArmKind.ANCHOR
    if packet in (aten.cat, aten.slice):
        return ArmKind.AXES
    if packet is aten.constant_pad_nd or (packet is aten.pad and _arg(node, 2, "mode", "constant") == "constant"):
        return ArmKind.PAD
    if is_elementwise(node.target):
        return ArmKind.ELEMENTWISE
    return ArmKind.ANCHOR


# How TOSA ops of the Arm backend's graph treat the order a tensor's channels (NHWC's last
# axis) are stored in (``executorch/arm_channel_order.py``), by TOSA operator name:
#: channel c of the output from channel c of the input, no per-channel constants (RESCALE has
#: its scales per channel or per tensor)
TOSA_CHANNELWISE = frozenset({"MAX_POOL2D", "AVG_POOL2D", "TABLE", "RESCALE"})
#: sums its input's channels against a constant weight [O, KH, KW, I], with a bias per output
TOSA_CHANNEL_SUM = "CONV2D"
#: channel-wise with a constant weight [KH, KW, C, M] and a bias per output channel
TOSA_DEPTHWISE = "DEPTHWISE_CONV2D"


def _arg(node: Any, index: int, name: str, default: Any) -> Any:
    return node.args[index] if index < len(node.args) else node.kwargs.get(name, default)


# -- the graph of ExecuTorch's Cortex-M explicit-layout pipeline ------------------------------
# There every tensor is contiguous: ``channels_last::`` convolution and pooling read and write
# NHWC tensors, wrapped in ``channels_last::permute_copy``; each permute of int8 data becomes
# one ``cortex_m::transpose`` copy, each view a view.

def channels_last_op(target: Any) -> str | None:
    """The name of an op of ExecuTorch's ``channels_last`` namespace (``"convolution"``), or None."""
    op = aten_overload(target)
    if getattr(op, "namespace", None) != "channels_last":
        return None
    return op._schema.name.split("::")[-1]


_CORTEX_M_ANCHORS = _packets("linear", "convolution", "bmm", "mm", "addmm", "avg_pool2d", "max_pool2d",
                             "constant_pad_nd", "_softmax", "_log_softmax")


def cortex_m_kind(node: Any) -> ArmKind:
    """The kind of a call node of the Cortex-M explicit-layout graph (before its ops become
    ``cortex_m::`` kernels): NHWC kernels, linears and unknown ops are anchors; a clone into the
    default dim order copies in any layout; the rest as in the Arm backend's graph."""
    name = channels_last_op(node.target)
    if name is not None:
        return ArmKind.PERMUTE if name == "permute_copy" else ArmKind.ANCHOR
    if packet_of(node) in _CORTEX_M_ANCHORS:
        return ArmKind.ANCHOR
    if is_contiguous_copy(node):
        return ArmKind.ELEMENTWISE
    return arm_kind(node)


def axis_arg(node: Any) -> tuple[int, Any]:
    """Position and value of an AXES op's axis argument (an int or a list of ints)."""
    index = _AXIS_ARG[packet_of(node)]
    if index < len(node.args):
        return index, node.args[index]
    return index, node.kwargs.get("dim", None if packet_of(node) in REDUCTION_PACKETS else 0)
