"""layoutopt's layout pass inside ExecuTorch's Arm backend pipeline.

The pass runs where the backend's own layout decisions are made and not yet greedily moved:
after it has wrapped every convolution, pooling and matmul in local permutes, just before
``PropagateViewCopyPermuteDownPass``. It solves the placement of every permute exactly
(``arm_plan``) and writes it back (``arm_physical``). The backend's greedy propagation
(``PropagateViewCopyPermuteDownPass`` / ``UpPass``) is skipped on every graph whose ops the
pass's table knows (elsewhere it may still move permutes across the ops left as they stand):
there it has nothing left to find, re-traces the whole graph for every permute it moves (most of the
lowering time of transformers), and moves planned permutes onto larger tensors (an attention
block's k transpose lifted above its slice, onto the whole qkv tensor: 1,280 -> 1,792 bytes
transposed). The rest of the pipeline (the U55 permute split, the canonicalisation of
permutes that are reshapes, TOSA serialization) runs as usual. On Ethos-U the pass first
carries channel shuffles as stored channel orders (``arm_channel_order``), so that the plan
never sees them.

Each transpose is priced at its bytes plus the target's fixed cost per op
(``Target.transpose_overhead_bytes``: U55 when the TOSA specification is the U55 subset, else
U85), and a plan has at most as many transposes as the graph had when the pass saw it: it
never trades one large transpose for several small ones the backend would not have placed.
Late in the pipeline, after the backend's own canonicalisation of view/permute chains, a second
pass writes transposes, reshapes and sums in the forms Vela runs best (``arm_vela_forms``).

ExecuTorch's registry of pass insertions is process-global: ``arm_layout`` registers the
pass for the duration of a ``with`` block and clears the registry when the block ends, also
after an exception.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..errors import LayoutoptError

class ArmHookError(LayoutoptError):
    """The installed ExecuTorch has no pass-insertion hook where layoutopt plans."""


def _pipeline():
    try:
        from executorch.backends.arm._passes import arm_pass_manager as manager
        anchor = manager.PropagateViewCopyPermuteDownPass
        greedy = (anchor, manager.PropagateViewCopyPermuteUpPass)
        late = manager.InsertConstShapesPass
        register = manager.register_pass_insertions_before
        clear = manager.clear_registered_pass_insertions
        if not all(callable(getattr(p, "call", None)) for p in greedy):
            raise AttributeError("the propagation passes have no call method")
    except (ImportError, AttributeError) as exc:
        raise ArmHookError("this ExecuTorch's Arm backend has no pass-insertion hook before "
                           "PropagateViewCopyPermuteDownPass (layoutopt needs executorch 1.5.x): "
                           f"{exc}") from None
    return anchor, late, greedy, register, clear


@contextmanager
def _skipped(passes, when: list[bool]) -> Iterator[None]:
    """Within the block the given pass classes leave a graph as it is while ``when[0]``."""
    from torch.fx.passes.infra.pass_base import PassResult

    originals = {p: p.__dict__.get("call") for p in passes}
    for p in passes:
        def call(self, graph_module, run=p.call):
            return PassResult(graph_module, False) if when[0] else run(self, graph_module)

        p.call = call
    try:
        yield
    finally:
        for p, call in originals.items():
            if call is None:
                del p.call
            else:
                p.call = call


def _target():
    """The Ethos-U target whose transpose costs the pass plans with (see the module docstring)."""
    from executorch.backends.arm.tosa.specification import get_context_spec

    from ..targets import get_target

    return get_target("ethos-u55" if get_context_spec().is_U55_subset else "ethos-u85")


def make_pass(records: list[dict] | None = None, skip_greedy: list[bool] | None = None,
              channel_order: bool = False):
    """A fresh instance of the pass (the backend gives it the ExportedProgram it lowers); it
    appends what it planned for each partition to ``records`` and sets ``skip_greedy[0]`` when
    the backend's greedy propagation has nothing left to do on the graph it planned. With
    ``channel_order`` it first carries channel shuffles as stored channel orders
    (``arm_channel_order``)."""
    skip_greedy = skip_greedy if skip_greedy is not None else [False]
    from torch.fx.passes.infra.pass_base import PassBase, PassResult

    from .arm_channel_order import carry_channel_orders
    from .arm_physical import plan_and_write
    from .arm_plan import narrow_innermost_cost

    class PlanArmLayout(PassBase):
        """Place every permute of the Arm backend's graph exactly (bytes moved, minimal)."""

        def __init__(self) -> None:
            super().__init__()
            self.exported_program = None  # set by the backend's pass manager
            self.__name__ = type(self).__name__  # how the pass manager names passes

        def call(self, graph_module):
            carried = carry_channel_orders(graph_module, self.exported_program) if channel_order else None
            solved, record = plan_and_write(graph_module, self.exported_program, run_cost=narrow_innermost_cost,
                                            transpose_overhead=_target().transpose_overhead_bytes,
                                            no_more_transposes=True)
            # the backend's greedy propagation can still move permutes across ops this table
            # does not know; elsewhere it has nothing left to find
            skip_greedy[0] = not solved.unknown_ops
            record.update(unknown_ops=solved.unknown_ops,
                          greedy_propagation="skipped" if skip_greedy[0] else "ran")
            if carried is not None:
                record["channel_order"] = carried.to_dict()
            if records is not None:
                records.append(record)
            return PassResult(graph_module, record["applied"] or bool(carried and carried.carried))

    return PlanArmLayout()


@contextmanager
def arm_layout(channel_order: bool = False) -> Iterator[list[dict]]:
    """Within the block, every Arm backend lowering (Ethos-U, VGF) plans its layouts with
    layoutopt (with ``channel_order``: after carrying channel shuffles as stored channel orders);
    the block gets a list of what was planned, one record per delegated partition
    (``transposes_before``/``_after``, ``transpose_bytes_before``/``_after``, ``cost_before``/``_after``
    (bytes, plus what ops pay for narrow layouts and each transpose's fixed cost),
    ``cost_lower_bound`` (of that cost), ``solver_status``, ``applied``, and ``channel_order`` when
    asked for; see ``arm_physical.plan_and_write``)::

        with layoutopt.executorch.arm_layout() as planned:
            edge = to_edge_transform_and_lower(program, partitioner=[EthosUPartitioner(spec)])
    """
    from . import arm_vela_forms

    anchor, late, greedy, register, clear = _pipeline()
    records: list[dict] = []
    skip_greedy = [False]
    register(anchor, [make_pass(records, skip_greedy, channel_order)])
    register(late, [arm_vela_forms.make_pass(records)])
    try:
        with _skipped(greedy, skip_greedy):
            yield records
    finally:
        clear()
