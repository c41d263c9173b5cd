"""Op-form rewrites that remove layout work the planner cannot: one rule family per file."""
from __future__ import annotations

from torch.export import ExportedProgram

from ..targets import Target
from .base import GraphEdit, Match, Reject, RewriteLog, Rule, run_rules
from .conv1d_to_conv2d import Conv1dToConv2d
from ..ir import ops
from .conv1x1_to_fc import Conv1x1ToFullyConnected
from .flatten_linear_to_nhwc import FlattenLinearToNHWC
from .fuse_permute_chains import ComposePermutes, FoldConstantPermute
from .pointwise_linear import PointwiseLinearToConv
from .fuse_squeeze_unsqueeze import CancelUnsqueezeOfSqueeze, SinkSqueeze


def rules_for(target: Target) -> list[Rule]:
    """The rules that pay on ``target``, in the order they run each round."""
    rules: list[Rule] = [ComposePermutes(), FoldConstantPermute(), Conv1dToConv2d(), SinkSqueeze(),
                         CancelUnsqueezeOfSqueeze(), PointwiseLinearToConv()]
    if ops.Family.CONV in target.channels_last:
        rules.append(FlattenLinearToNHWC(target))
    if target.fc_for_pointwise:
        rules.append(Conv1x1ToFullyConnected())
    return rules


def rewrite(ep: ExportedProgram, target: Target) -> RewriteLog:
    """Apply the target's rules to ``ep`` (a private copy) in place."""
    return run_rules(ep, rules_for(target))


__all__ = ["GraphEdit", "Match", "Reject", "RewriteLog", "Rule", "rewrite", "rules_for"]
