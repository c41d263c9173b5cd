"""The exact solver: choose one mode per op and the shared copies, minimising bytes moved.

Integer program (solved by HiGHS through ``scipy.optimize.milp`` with a zero gap tolerance):

    z[n,k] in {0,1}   op n runs in mode k;            sum_k z[n,k] = 1
    X[v,c] = sum of z[producer(v),k] over modes k that give v layout c (constant for inputs)
    y[v,c] >= 0       a copy of v into layout c exists (only layouts a copy can produce)
    for each op n, operand v, layout c:  sum_{k of n needing v in c} z[n,k] <= X[v,c] + y[v,c]
    for each user output v with contract layout c:                    1 <= X[v,c] + y[v,c]
    minimise  sum z[n,k] * cost(n,k)  +  sum y[v,c] * bytes(v)  +  tie-break

The tie-break (under half a byte in total) prefers the exported mode among equal plans, so
a graph that is already optimal is returned unchanged. Because every cost is a whole number of
bytes, ``ceil(dual_bound - tie_break_max)`` is a proven lower bound on the bytes of any plan
expressible in the problem.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import LinearConstraint, milp
from scipy.sparse import coo_array

from ..errors import InternalError
from .problem import Mode, Problem, Value
from .perm import Order


@dataclass
class Solution:
    chosen: dict[str, Mode]
    copies: list[tuple[Value, Order]]
    objective_bytes: int
    lower_bound_bytes: int
    solver_status: str
    seconds: float


def solve(problem: Problem, time_limit: float = 300.0) -> Solution:
    import time

    start = time.perf_counter()
    z_index: dict[tuple[str, int], int] = {}
    for name in problem.node_order:
        for k in range(len(problem.modes[name])):
            z_index[(name, k)] = len(z_index)
    y_index: dict[tuple[Value, Order], int] = {}

    def y(value: Value, key: Order) -> int | None:
        info = problem.values[value]
        if key not in info.convertible:
            return None
        if (value, key) not in y_index:
            y_index[(value, key)] = len(z_index) + len(y_index)
        return y_index[(value, key)]

    producer_modes: dict[Value, list[tuple[int, Order]]] = {}
    for name in problem.node_order:
        for k, mode in enumerate(problem.modes[name]):
            for index, key in mode.gives:
                producer_modes.setdefault((name, index), []).append((z_index[(name, k)], key))

    rows: list[tuple[dict[int, float], float, float]] = []  # (coefficients, lower, upper)

    def availability(value: Value, key: Order) -> tuple[dict[int, float], float]:
        """Coefficients of -X[v,c] and the constant part of X[v,c]."""
        info = problem.values[value]
        if info.fixed is not None:
            return {}, 1.0 if info.fixed == key else 0.0
        coef: dict[int, float] = {}
        for zi, k in producer_modes.get(value, []):
            if k == key:
                coef[zi] = coef.get(zi, 0.0) - 1.0
        return coef, 0.0

    for name in problem.node_order:
        modes = problem.modes[name]
        rows.append(({z_index[(name, k)]: 1.0 for k in range(len(modes))}, 1.0, 1.0))
        groups: dict[tuple[Value, Order], list[int]] = {}
        for k, mode in enumerate(modes):
            for value, key in mode.needs:
                groups.setdefault((value, key), []).append(z_index[(name, k)])
        for (value, key), zs in groups.items():
            coef, const = availability(value, key)
            for zi in zs:
                coef[zi] = coef.get(zi, 0.0) + 1.0
            yi = y(value, key)
            if yi is not None:
                coef[yi] = coef.get(yi, 0.0) - 1.0
            rows.append((coef, -np.inf, const))
    for value, key in problem.outputs:
        coef, const = availability(value, key)
        yi = y(value, key)
        if yi is not None:
            coef[yi] = coef.get(yi, 0.0) - 1.0
        rows.append((coef, -np.inf, const - 1.0))

    n_z, n = len(z_index), len(z_index) + len(y_index)
    tie = 0.4 / max(1, n)
    c = np.zeros(n)
    for (name, k), zi in z_index.items():
        mode = problem.modes[name][k]
        c[zi] = mode.cost + (0.0 if mode.original else tie)
    for (value, key), yi in y_index.items():
        c[yi] = problem.values[value].nbytes + tie
    integrality = np.zeros(n)
    integrality[:n_z] = 1

    r, col, data, lo, hi = [], [], [], [], []
    for i, (coef, lower, upper) in enumerate(rows):
        for j, v in coef.items():
            r.append(i)
            col.append(j)
            data.append(v)
        lo.append(lower)
        hi.append(upper)
    if n == 0:
        return Solution({}, [], 0, 0, "empty", time.perf_counter() - start)
    A = coo_array((data, (r, col)), shape=(len(rows), n)).tocsr()
    res = milp(c, constraints=LinearConstraint(A, lo, hi), integrality=integrality,
               bounds=(0, 1), options={"mip_rel_gap": 0.0, "time_limit": time_limit, "presolve": True})
    if res.x is None:
        raise InternalError(f"layout solver found no plan: {res.message}")
    x = res.x
    chosen = {}
    for name in problem.node_order:
        ks = [k for k in range(len(problem.modes[name])) if x[z_index[(name, k)]] > 0.5]
        if len(ks) != 1:
            raise InternalError(f"solver picked {len(ks)} modes for node '{name}'")
        chosen[name] = problem.modes[name][ks[0]]
    copies = [vk for vk, yi in y_index.items() if x[yi] > 0.5]
    objective = sum(m.cost for m in chosen.values()) + sum(problem.values[v].nbytes for v, _ in copies)
    dual = getattr(res, "mip_dual_bound", None)
    if dual is None or not np.isfinite(dual):
        dual = res.fun
    tie_max = tie * n
    bound = max(0, math.ceil(dual - tie_max - 1e-6))
    status = "optimal" if res.status == 0 else res.message
    return Solution(chosen, copies, int(objective), min(bound, int(objective)), status,
                    time.perf_counter() - start)
