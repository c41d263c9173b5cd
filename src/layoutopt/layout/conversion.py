"""How a layout conversion is written in a graph, for the planner's probes and the edit alike.

A conversion to contiguous or channels-last (rank 4 and 5) is one ``aten.clone`` with a
``memory_format``; a conversion to any other dim order (channels-last of a rank-3 tensor, say)
is ``permute -> clone(contiguous) -> permute``, whose two permutes are views and whose clone
is the one copy. In an ExecuTorch edge program it is one ``_clone_dim_order``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch.export import ExportedProgram

from ..ir import ops
from ..ir.perm import Order, Perm, channels_last_order, identity_order

_MEMORY_FORMATS = {4: torch.channels_last, 5: torch.channels_last_3d}

Call = Callable[[Any, tuple, dict], Any]


def edge_can_clone_to(order: Order) -> bool:
    """ExecuTorch 1.5 runs ``_clone_dim_order`` eagerly only into contiguous and rank-4
    channels-last orders (its ``get_memory_format`` maps no other)."""
    rank = len(order)
    return tuple(order) == identity_order(rank) or (rank == 4 and tuple(order) == channels_last_order(4))


def is_edge(ep: ExportedProgram) -> bool:
    """Whether ``ep`` is an ExecuTorch edge-dialect program."""
    return getattr(ep, "dialect", "ATEN") == "EDGE"


def conversion_call(source: Any, order: Order, call: Call, edge: bool = False) -> Any:
    """Lay ``source`` out in dim ``order`` through ``call(target, args, kwargs)``; in an
    ExecuTorch edge program, one ``_clone_dim_order`` with that dim order."""
    rank = len(order)
    if edge:
        if not edge_can_clone_to(order):
            raise ValueError(f"an edge program cannot express dim order {tuple(order)}")
        return call(ops.edge_clone(), (source,), {"dim_order": list(order)})
    if tuple(order) == identity_order(rank):
        return call(ops.CLONE, (source,), {"memory_format": torch.contiguous_format})
    if rank in _MEMORY_FORMATS and tuple(order) == channels_last_order(rank):
        return call(ops.CLONE, (source,), {"memory_format": _MEMORY_FORMATS[rank]})
    # dims listed in memory order, made dense, then viewed back in logical order
    outer = call(ops.PERMUTE, (source, list(order)), {})
    dense = call(ops.CLONE, (outer,), {"memory_format": torch.contiguous_format})
    return call(ops.PERMUTE, (dense, list(Perm(tuple(order)).inverse().dims)), {})
