"""Constant operands of the ops rules rewrite: weights (possibly behind a per-channel
dequantize) and biases, checked once for every rule that re-lays them out at compile time."""
from __future__ import annotations

from typing import Any

from torch.fx import Node

from ..ir import ops
from ..ir.access import arg_by_name
from .base import GraphView, Reject, Rule


def constant_weight(weight: Any, view: GraphView) -> tuple[Node | None, Node | None]:
    """The constant placeholder behind a weight, and the axis-0 per-channel dequantize between."""
    if not isinstance(weight, Node):
        return None, None
    if view.constant(weight) is not None:
        return weight, None
    if ops.is_dequantize_per_channel(weight.target) and view.constant(weight.args[0]) is not None \
            and weight.args[3] == 0:
        return weight.args[0], weight
    return None, None


def weight_and_bias(rule: Rule, node: Node, view: GraphView) -> Reject | tuple[Node, Node | None, Any]:
    """``(weight placeholder, its dequantize or None, bias)`` of ``node``, or why not: the
    weight must be a constant read only here, the bias a constant (possibly quantized, as
    int32 behind a per-channel dequantize) or absent."""
    source, dequant = constant_weight(arg_by_name(node, "weight"), view)
    if source is None:
        return rule.reject(node, "weight is not a constant")
    if len(source.users) != 1 or (dequant is not None and len(dequant.users) != 1):
        return rule.reject(node, "weight is shared with another op")
    bias = arg_by_name(node, "bias")
    if bias is not None and constant_weight(bias, view)[0] is None:
        return rule.reject(node, "bias is not a constant")
    return source, dequant, bias
