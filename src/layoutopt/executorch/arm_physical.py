"""Write an Arm-stage layout plan into the graph: every tensor planned in dim order ``d``
becomes ``x.permute(d)`` in memory and in shape, because TOSA has no strides.

* a node of an elementwise or axis kind runs on its operands' permuted forms; constant
  operands are permuted at compile time, axis arguments renamed (``d.index(axis)``);
* a permute whose output order renames its input's memory sequence disappears; a reshape
  runs on the permuted shapes (the memory sequence is the same, proved by index replay);
* where a reader needs another order than the producer gives, one ``permute_copy`` (one TOSA
  TRANSPOSE) converts it, shared by all readers of that order; an order that differs only in
  where size-1 dims sit is a ``view_copy`` (a RESHAPE, metadata only);
* an op whose planned order differs from an operand's only in where size-1 dims sit runs in the
  operand's order (size-1 dims included), so that no reshape separates them and the op keeps
  its wide dim innermost where the operand has it.

Only data moves, so the graph computes the same values bit for bit.
"""
from __future__ import annotations

from torch.export import ExportedProgram
from torch.fx import GraphModule, Node

from ..ir import ops
from ..ir.access import copy_provenance, fake_value
from ..ir.perm import Order, Perm, identity_order, layout_key, moves_bytes, permuted_pad
from .arm_plan import ArmPlan, unsafe_table_shape


class _Writer:
    def __init__(self, gm: GraphModule, ep: ExportedProgram | None, plan: ArmPlan):
        from executorch.exir.dialects._ops import ops as exir_ops

        self.gm = gm
        self.ep = ep
        self.plan = plan
        self.permute_op = exir_ops.edge.aten.permute_copy.default
        self.view_op = exir_ops.edge.aten.view_copy.default
        self.physical: dict[tuple[Node, Order], Node] = {}
        self.produced: dict[Node, Order] = {}
        self.retired: list[Node] = []
        self.constant_copies: dict[tuple[str, Order], Node] = {}

    # -- tensors in the order a reader needs ------------------------------------------------
    def _shape(self, node: Node) -> tuple[int, ...]:
        return self.plan.values[node].shape

    def _new(self, op, base: Node, arg, source: Node) -> Node:
        if base.op == "placeholder":  # placeholders stay together at the top
            base = [n for n in self.gm.graph.nodes if n.op == "placeholder"][-1]
        with self.gm.graph.inserting_after(base):
            node = self.gm.graph.call_function(op, (base, list(arg)))
        node.meta["val"] = op(fake_value(base), list(arg))
        copy_provenance(source, node)
        return node

    def get(self, node: Node, order: Order) -> Node:
        """``node``'s value laid out in ``order``, converting once per order."""
        key = (node, tuple(order))
        if key in self.physical:
            return self.physical[key]
        have = self.produced[node]
        base = self.physical[(node, have)]
        shape = self._shape(node)
        if layout_key(shape, have) == layout_key(shape, order):
            target = Perm(tuple(order)).apply(shape)
            out = base if tuple(fake_value(base).shape) == target else self._new(self.view_op, base, target, node)
        else:
            out = self._new(self.permute_op, base, Perm(have).inverse().then(Perm(tuple(order))).dims, node)
        self.physical[key] = out
        return out

    def _constant(self, node: Node, order: Order) -> Node:
        """A constant operand permuted into ``order`` at compile time."""
        from torch.export.graph_signature import InputKind
        from executorch.backends.transforms.utils import create_constant_placeholder, get_param_tensor

        key = (node.name, tuple(order))
        if key not in self.constant_copies:
            data = get_param_tensor(self.ep, node).permute(order).contiguous()
            first = next(n for n in self.gm.graph.nodes if n.op == "placeholder")
            with self.gm.graph.inserting_before(first):
                self.constant_copies[key] = create_constant_placeholder(
                    self.ep, self.gm.graph, f"{node.name}_dim_order_{''.join(map(str, order))}",
                    InputKind.CONSTANT_TENSOR, data)
        return self.constant_copies[key]

    # -- nodes ---------------------------------------------------------------------------
    def visit(self, node: Node) -> None:
        kind = self.plan.kinds[node]
        needs = self.plan.operand_orders(node)
        if node not in self.plan.values:  # no tensor output: read operands as they stand
            for arg, order in needs.items():
                node.replace_input_with(arg, self.get(arg, order))
            return
        out = self.plan.output_order(node)
        rank = len(out)
        self.produced[node] = out
        if kind is ops.ArmKind.PERMUTE:
            self._permute(node, *next(iter(needs.items())), out)
            return
        if kind in (ops.ArmKind.ELEMENTWISE, ops.ArmKind.LAST_AXIS, ops.ArmKind.AXES, ops.ArmKind.PAD):
            # operands exactly as permuted as the output, size-1 dims included, to broadcast alike
            out = self._follow_operand(node, kind, self.plan.run_order(node), needs)
            self.produced[node] = out
            needs = {a: out if len(self._shape(a)) == rank else o for a, o in needs.items()}
        for arg, order in needs.items():
            node.replace_input_with(arg, self.get(arg, order))
        self.physical[(node, out)] = node
        if out == identity_order(rank):
            return
        if kind is ops.ArmKind.RESHAPE:
            node.args = (node.args[0], list(Perm(out).apply(self._shape(node))), *node.args[2:])
        elif kind is ops.ArmKind.AXES:
            index, axis = ops.axis_arg(node)
            moved = [out.index(a % rank) for a in axis] if isinstance(axis, (list, tuple)) else out.index(axis % rank)
            args = list(node.args)
            while len(args) <= index:
                args.append(None)
            args[index] = moved
            node.args = tuple(args)
            node.kwargs = {k: v for k, v in node.kwargs.items() if k != "dim"}
        elif kind is ops.ArmKind.PAD:
            node.args = (node.args[0], permuted_pad(list(node.args[1]), out), *node.args[2:])
        for arg in list(node.all_input_nodes):
            if arg.name in self.plan.constants and len(fake_value(arg).shape) == rank:
                node.replace_input_with(arg, self._constant(arg, out))
        node.meta["val"] = fake_value(node).permute(out).contiguous()

    def _follow_operand(self, node: Node, kind: ops.ArmKind, order: Order, needs: dict[Node, Order]) -> Order:
        """``order``, or the exact order an operand of the same shape is written in when the
        two differ only in where size-1 dims sit and the operand's innermost dim is as wide."""
        shape = self._shape(node)
        rank = len(shape)
        for arg in needs:
            have = self.produced.get(arg)
            if self._shape(arg) != shape or have is None or have == order or \
                    layout_key(shape, have) != layout_key(shape, order) or shape[have[-1]] < shape[order[-1]]:
                continue
            if kind is ops.ArmKind.LAST_AXIS and have[-1] != rank - 1:
                continue  # channel scales apply along the innermost dim
            if ops.tosa_op(node.target) == "TABLE" and unsafe_table_shape(Perm(have).apply(shape)):
                continue
            return have
        return order

    def _permute(self, node: Node, src: Node, have: Order, out: Order) -> None:
        """``y = x.permute(p)`` with ``x`` laid out in ``have`` and ``y`` wanted in ``out``:
        ``y.permute(out) == x.permute(have).permute(q)`` for ``q = have^-1 . p . out``."""
        dims = tuple(node.args[1])
        q = Perm(have).inverse().then(Perm(tuple(d % len(dims) for d in dims)).then(Perm(out)))
        base = self.get(src, have)
        shape = tuple(fake_value(base).shape)
        if not moves_bytes(q, q.apply(shape)):  # renames the memory sequence
            target = Perm(out).apply(self._shape(node))
            self.physical[(node, out)] = base if shape == target else self._new(self.view_op, base, target, node)
            self.retired.append(node)
            return
        node.replace_input_with(src, base)
        node.args = (base, list(q.dims))
        node.meta["val"] = fake_value(base).permute(q.dims).contiguous()
        self.physical[(node, out)] = node

    def finish(self) -> None:
        output = self.gm.graph.output_node()
        for arg in list(output.all_input_nodes):
            if arg in self.produced:
                output.replace_input_with(arg, self.get(arg, identity_order(len(self._shape(arg)))))
        for node in reversed(self.retired):
            if not node.users:
                self.gm.graph.erase_node(node)


def write_plan(gm: GraphModule, ep: ExportedProgram | None, plan: ArmPlan) -> None:
    """Rewrite ``gm`` in place to run ``plan`` (see the module docstring)."""
    writer = _Writer(gm, ep, plan)
    for node in gm.graph.nodes:
        if node.op == "placeholder" and node in plan.values:
            order = identity_order(len(plan.values[node].shape))
            writer.produced[node] = order
            writer.physical[(node, order)] = node
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node in plan.kinds:
            writer.visit(node)
    writer.finish()
    gm.graph.lint()


def plan_and_write(gm: GraphModule, ep: ExportedProgram | None, **plan_kwargs) -> tuple:
    """Plan ``gm`` (``arm_plan.plan`` with ``plan_kwargs``) and write the plan back when it
    costs less than the graph as it stands. Returns the plan and a record of it, before and
    after: ``transposes_*``, ``transpose_bytes_*`` and ``cost_*`` (the objective: the bytes,
    what ops pay for their layouts and ``transpose_overhead`` bytes per transpose), then
    ``cost_lower_bound`` (a proven bound on ``cost_after``), ``max_transposes`` (the cap the
    plan was solved under, or None), ``solver_status``, ``applied``, ``seconds``."""
    from .arm_plan import plan

    user_inputs = set(ep.graph_signature.user_inputs) if ep is not None else {
        n.name for n in gm.graph.nodes if n.op == "placeholder"}
    solved = plan(gm, user_inputs, **plan_kwargs)
    solution = solved.solution
    changed = solution.objective_bytes < solved.cost_before
    record = {"transposes_before": solved.transposes_before,
              "transpose_bytes_before": solved.transpose_bytes_before,
              "cost_before": solved.cost_before,
              "transposes_after": solution.conversions if changed else solved.transposes_before,
              "transpose_bytes_after": solved.transpose_bytes_after() if changed else solved.transpose_bytes_before,
              "cost_after": solution.objective_bytes if changed else solved.cost_before,
              "cost_lower_bound": solution.lower_bound_bytes,
              "transpose_overhead": solved.problem.conversion_overhead,
              "max_transposes": solved.problem.max_conversions,
              "solver_status": solution.solver_status,
              "applied": changed, "seconds": solution.seconds}
    if changed:
        write_plan(gm, ep, solved)
    return solved, record
