"""Op-form rewrites that remove layout work the planner cannot: one rule family per file."""
from __future__ import annotations

from typing import Sequence

from torch.export import ExportedProgram

from ..errors import InputError
from ..ir import ops
from ..ir.propagate import refresh_meta
from ..targets import Target
from . import edge
from .base import GraphEdit, Match, Reject, RewriteLog, Rule, run_rules
from .channel_shuffle import ChannelShuffleToChannelsLast, ChannelShuffleToConv
from .conv1d_to_conv2d import Conv1dToConv2d
from .conv1x1_to_fc import Conv1x1ToFullyConnected
from .flatten_linear_to_nhwc import FlattenLinearToNHWC
from .fold_channel_permutation import FoldChannelPermutation
from .fuse_permute_chains import ComposePermutes, FoldConstantPermute
from .fuse_permute_reshape import FusePermuteReshapePermute
from .fuse_squeeze_unsqueeze import CancelUnsqueezeOfSqueeze, SinkSqueeze
from .permute_through_elementwise import PermuteThroughElementwise
from .permute_through_join import PermuteThroughJoin
from .pointwise_linear import PointwiseLinearToConv


def rules_for(target: Target) -> list[Rule]:
    """The rules that pay on ``target``, in the order they run each round."""
    rules: list[Rule] = [ComposePermutes(), FoldConstantPermute(), FoldChannelPermutation(),
                         PermuteThroughElementwise(), PermuteThroughJoin(), FusePermuteReshapePermute(target),
                         Conv1dToConv2d(), SinkSqueeze(), CancelUnsqueezeOfSqueeze(), PointwiseLinearToConv()]
    if ops.Family.CONV in target.channels_last:
        rules.append(FlattenLinearToNHWC(target))
        shuffle = {"channels_last": ChannelShuffleToChannelsLast, "conv": ChannelShuffleToConv}.get(
            target.channel_shuffle)
        if shuffle is not None:
            rules.append(shuffle(target))
    if target.fc_for_pointwise:
        rules.append(Conv1x1ToFullyConnected())
    return rules


def rewrite(ep: ExportedProgram, target: Target, skip: "Sequence[str]" = ()) -> RewriteLog:
    """Apply the target's rules, less those named in ``skip``, to ``ep`` (a private copy) in
    place; an ExecuTorch edge program is lifted to ATen for them and spelled back after."""
    rules = rules_for(target)
    unknown = set(skip) - {rule.name for rule in rules}
    if unknown:
        raise InputError(f"unknown rule(s) {', '.join(sorted(unknown))}; the rules for {target.name} are: "
                         f"{', '.join(rule.name for rule in rules)}")
    edit = GraphEdit(ep)
    lifted = edge.lift(edit) if edit.edge else {}
    log = run_rules(edit, [rule for rule in rules if rule.name not in skip])
    if edit.edge:
        edge.spell(edit, lifted)
    edit.finish()
    if log.applied:
        # a rule recomputes the nodes it builds; the ones downstream keep strides that may now be
        # stale (a 1x1 conv made a linear changes the size-1 strides of what follows), and eager's
        # kernels read those strides, so the planner must see them as they now are
        refresh_meta(ep.graph_module)
    return log


__all__ = ["GraphEdit", "Match", "Reject", "RewriteLog", "Rule", "rewrite", "rules_for"]
