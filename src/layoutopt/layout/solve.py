"""The exact solver: choose one mode per op and the shared copies, minimising bytes moved.

Integer program (solved by HiGHS through ``scipy.optimize.milp`` with a zero gap tolerance):

    z[n,k] in {0,1}   op n runs in mode k;            sum_k z[n,k] = 1
    X[v,l] = sum of z[producer(v),k] over modes k that give v label l (constant for inputs)
    y[v,l] >= 0       a copy of v into label l that reorders memory (costs bytes(v) + overhead)
    w[v,l] >= 0       a copy of v into label l from a label with the same bytes order (free):
                      w[v,l] <= sum of X[v,l'] over labels l' != l with key(l') == key(l)
    for each op n, operand v, label l:   sum_{k of n needing v in l} z[n,k] <= X[v,l] + y[v,l] + w[v,l]
    for each user output v (contract key c, copy label l*):  1 <= sum_{key(l)=c} X[v,l] + y[v,l*]
    conversions:      sum y[v,l] + sum z[n,k] * conversions(n,k) <= max_conversions  (when given)
    minimise  sum z[n,k] * (cost(n,k) + conversions(n,k) * overhead)  +  sum y[v,l] * (bytes(v) + overhead)
              +  tie-break

``overhead`` (``Problem.conversion_overhead``) is what a target pays for each conversion op
beyond its bytes, stated in bytes; it is 0 unless the problem's builder sets it, and then the
objective and its bound are in those byte-equivalents. Copies exist only for labels a copy can
produce. The tie-break (under half a byte in total) prefers exported modes and fewer copies
among equal plans, so a graph that is already optimal comes back unchanged. Every cost is a
whole number of bytes, so ``ceil(dual_bound - tie_max)`` is a proven lower bound on the
objective of any plan the problem can express (within ``max_conversions``); where the builder's
caps cut the problem short of the graph, ``Problem.truncated`` says so.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import LinearConstraint, milp
from scipy.sparse import coo_array

from ..errors import InternalError
from .problem import Label, Mode, Problem, Value


@dataclass
class Solution:
    chosen: dict[str, Mode]
    objective_bytes: int  # bytes, plus ``conversion_overhead`` per conversion when the problem sets it
    lower_bound_bytes: int  # a proven bound on ``objective_bytes``
    solver_status: str
    seconds: float
    conversions: int = 0  # copies and converting modes in the plan


# HiGHS's primal heuristics only find good plans sooner; with a zero gap the optimum is proven
# by the search either way, and on these problems the heuristics cost more than they save
# (nine of the sweep's problems, each solved with and without them: 0.4x-1.0x of the time).
_NO_HEURISTICS = {"mip_heuristic_effort": 0.0, "mip_heuristic_run_rens": False, "mip_heuristic_run_rins": False,
                  "mip_heuristic_run_feasibility_jump": False}


class _Program:
    """Sparse rows and a cost vector, built variable by variable."""

    def __init__(self) -> None:
        self.cost: list[float] = []
        self.integer: list[bool] = []
        self.rows: list[tuple[dict[int, float], float, float]] = []

    def var(self, cost: float, integer: bool) -> int:
        self.cost.append(cost)
        self.integer.append(integer)
        return len(self.cost) - 1

    def row(self, coef: dict[int, float], lower: float, upper: float) -> None:
        self.rows.append((coef, lower, upper))

    def solve(self, time_limit: float):
        r, c, d, lo, hi = [], [], [], [], []
        for i, (coef, lower, upper) in enumerate(self.rows):
            for j, v in coef.items():
                r.append(i)
                c.append(j)
                d.append(v)
            lo.append(lower)
            hi.append(upper)
        a = coo_array((d, (r, c)), shape=(len(self.rows), len(self.cost))).tocsr()
        with warnings.catch_warnings():  # scipy names the options it does not know, then passes them on
            warnings.simplefilter("ignore")
            return milp(np.array(self.cost), constraints=LinearConstraint(a, lo, hi),
                        integrality=np.array(self.integer, dtype=float), bounds=(0, 1),
                        options={"mip_rel_gap": 0.0, "time_limit": time_limit, "presolve": True, **_NO_HEURISTICS})


def _add(coef: dict[int, float], index: int, value: float) -> None:
    coef[index] = coef.get(index, 0.0) + value


def solve(problem: Problem, time_limit: float = 300.0) -> Solution:
    start = time.perf_counter()
    if not problem.node_order:
        return Solution({}, 0, 0, "empty", 0.0)
    max_vars = sum(len(m) for m in problem.modes.values()) + 2 * sum(
        len(v.convertible) for v in problem.values.values())
    tie = 0.4 / max(1, max_vars)
    lp = _Program()

    overhead = problem.conversion_overhead
    z: dict[tuple[str, int], int] = {}
    for name in problem.node_order:
        for k, mode in enumerate(problem.modes[name]):
            z[(name, k)] = lp.var(mode.cost + mode.conversions * overhead + (0.0 if mode.original else tie), True)
    produced: dict[Value, list[tuple[int, Label]]] = {}
    for name in problem.node_order:
        for k, mode in enumerate(problem.modes[name]):
            for index, label in mode.gives:
                produced.setdefault((name, index), []).append((z[(name, k)], label))

    def availability(value: Value, keep) -> tuple[dict[int, float], float]:
        """-sum X[v,l] over labels ``keep(l)``, and the constant part of that sum."""
        info = problem.values[value]
        if info.fixed is not None:
            return {}, float(keep(info.fixed))
        coef: dict[int, float] = {}
        for zi, label in produced.get(value, []):
            if keep(label):
                _add(coef, zi, -1.0)
        return coef, 0.0

    copies: dict[tuple[Value, Label], int] = {}  # y[v,l]
    restrides: dict[tuple[Value, Label], int] = {}  # w[v,l]

    def supply(coef: dict[int, float], value: Value, label: Label, with_restride: bool) -> None:
        """Add -y[v,l] (and -w[v,l]) to ``coef``, creating them and w's limiting row once."""
        info = problem.values[value]
        if (value, label) not in copies:
            # integral when conversions are counted against a cap (else an optimum makes them so)
            copies[(value, label)] = lp.var(info.nbytes + overhead + tie, problem.max_conversions is not None)
            w = restrides[(value, label)] = lp.var(tie, False)
            key = info.key(label)
            limit, const = availability(value, lambda l: l != label and info.key(l) == key)
            _add(limit, w, 1.0)
            lp.row(limit, -np.inf, const)
        _add(coef, copies[(value, label)], -1.0)
        if with_restride:
            _add(coef, restrides[(value, label)], -1.0)

    for name in problem.node_order:
        modes = problem.modes[name]
        lp.row({z[(name, k)]: 1.0 for k in range(len(modes))}, 1.0, 1.0)
        groups: dict[tuple[Value, Label], list[int]] = {}
        for k, mode in enumerate(modes):
            for value, label in mode.needs:
                groups.setdefault((value, label), []).append(z[(name, k)])
        for (value, label), zs in groups.items():
            coef, const = availability(value, lambda l, want=label: l == want)
            for zi in zs:
                _add(coef, zi, 1.0)
            if label in problem.values[value].convertible:
                supply(coef, value, label, with_restride=True)
            lp.row(coef, -np.inf, const)
    for value, label in problem.outputs:
        info = problem.values[value]
        want = info.key(label)
        coef, const = availability(value, lambda l: info.key(l) == want)
        if label in info.convertible:
            supply(coef, value, label, with_restride=False)
        lp.row(coef, -np.inf, const - 1.0)

    if problem.max_conversions is not None:
        count = {i: 1.0 for i in copies.values()}
        for name in problem.node_order:
            for k, mode in enumerate(problem.modes[name]):
                if mode.conversions:
                    count[z[(name, k)]] = float(mode.conversions)
        lp.row(count, -np.inf, float(problem.max_conversions))

    res = lp.solve(time_limit)
    if res.x is None:
        raise InternalError(f"layout solver found no plan: {res.message}")
    chosen = {}
    for name in problem.node_order:
        ks = [k for k in range(len(problem.modes[name])) if res.x[z[(name, k)]] > 0.5]
        if len(ks) != 1:
            raise InternalError(f"solver picked {len(ks)} modes for node '{name}'")
        chosen[name] = problem.modes[name][ks[0]]
    made = [value for (value, _), i in copies.items() if res.x[i] > 0.5]
    conversions = len(made) + sum(m.conversions for m in chosen.values())
    objective = sum(m.cost for m in chosen.values()) + sum(problem.values[v].nbytes for v in made) + \
        conversions * overhead
    dual = getattr(res, "mip_dual_bound", None)
    if dual is None or not np.isfinite(dual):
        dual = res.fun
    bound = max(0, math.ceil(dual - tie * len(lp.cost) - 1e-6))
    status = "optimal" if res.status == 0 else str(res.message)
    return Solution(chosen, int(objective), min(bound, int(objective)), status, time.perf_counter() - start,
                    conversions)
