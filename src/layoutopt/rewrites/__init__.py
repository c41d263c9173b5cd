"""Op-form rewrites that remove layout work the planner cannot: one rule family per file."""
from __future__ import annotations

from typing import Sequence

from torch.export import ExportedProgram

from ..errors import InputError
from ..targets import Target
from . import edge
from .base import GraphEdit, GraphView, Match, Reject, RewriteLog, Rule, run_rules
from .carry_channel_order import CarryChannelOrder
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
from .view_into_cat import ViewIntoCat

# Every rule, in the order each round runs them; a rule says for which targets it runs
# (``Rule.for_target``). A rule sees the graph the rules before it left in the same round, so
# where two can take the same nodes the earlier one wins:
# * permute chains are merged and constant permutes folded first, so what follows sees at most
#   one permute in a row;
# * a channel permutation that weighted sums read is carried to them as a stored channel order
#   (through splits and concatenations) or folded into their weights before anything moves
#   permutes or rewrites a channel shuffle: either removes the gather outright;
# * permutes then move toward each other (through elementwise ops and joins, around reshapes);
#   compose_permutes merges what meets in the next round;
# * op forms next: conv1d as conv2d, then the squeeze/unsqueeze pairs that leaves, a linear over
#   the channels as a 1x1 conv;
# * last the target's own forms, which look at how producers lay data out; view_into_cat comes
#   before the channel shuffle rules, whose pattern it takes apart where the backend lays
#   tensors out physically.
RULES: tuple[type[Rule], ...] = (
    ComposePermutes,
    FoldConstantPermute,
    CarryChannelOrder,
    FoldChannelPermutation,
    PermuteThroughElementwise,
    PermuteThroughJoin,
    FusePermuteReshapePermute,
    Conv1dToConv2d,
    SinkSqueeze,
    CancelUnsqueezeOfSqueeze,
    PointwiseLinearToConv,
    FlattenLinearToNHWC,
    ViewIntoCat,
    ChannelShuffleToChannelsLast,
    ChannelShuffleToConv,
    Conv1x1ToFullyConnected,
)


def rules_for(target: Target, planned: bool = True) -> list[Rule]:
    """The rules that pay on ``target``, in the order they run each round; ``planned``: whether
    layoutopt's ATen plan follows (else the backend lays tensors out, physically)."""
    return [rule for rule in (cls.for_target(target, planned) for cls in RULES) if rule is not None]


def rewrite(ep: ExportedProgram, target: Target, skip: "Sequence[str]" = (), planned: bool = True) -> RewriteLog:
    """Apply the target's rules, less those named in ``skip``, to ``ep`` (a private copy) in
    place; an ExecuTorch edge program is lifted to ATen for them and spelled back after.
    ``planned``: whether layoutopt's ATen plan follows (see ``rules_for``)."""
    rules = rules_for(target, planned)
    unknown = set(skip) - {rule.name for rule in rules_for(target, True) + rules_for(target, False)}
    if unknown:
        raise InputError(f"unknown rule(s) {', '.join(sorted(unknown))}; the rules for {target.name} are: "
                         f"{', '.join(rule.name for rule in rules)}")
    edit = GraphEdit(ep)
    lifted = edge.lift(edit) if edit.edge else {}
    log = run_rules(edit, [rule for rule in rules if rule.name not in skip])
    if edit.edge:
        edge.spell(edit, lifted)
    # a rule recomputes the nodes it builds; the ones downstream keep strides that may now be
    # stale (a 1x1 conv made a linear changes the size-1 strides of what follows), and eager's
    # kernels read those strides, so the planner must see them as they now are
    edit.finish(refresh=bool(log.applied))
    return log


__all__ = ["GraphEdit", "GraphView", "Match", "RULES", "Reject", "RewriteLog", "Rule", "rewrite", "rules_for"]
