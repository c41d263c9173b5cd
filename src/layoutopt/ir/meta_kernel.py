"""Replaying views and clones by their meta kernel alone: the fake replay without fake mode's
dispatch.

A fake tensor mode checks, keys and wraps every call, and it cannot cache a view (its result
aliases its input), so each fake replay of a view costs a full dispatch, and an eager run
besides to correct the strides fake mode gives size-1 dims (``propagate._run_fake``). A view's
kernel only restrides its source and computes those strides the same way on every device, so
its meta kernel, run on the fake tensors as fake mode runs kernels, gives the strides an eager
CPU run gives, aliasing its source as fake mode's result does. A clone allocates its result
like its source in the memory format asked for, by the same code on every device, and fills
it: its meta kernel gives eager's strides too (the planner's copies into a dim order are
clones). The law: ``run_meta_kernel(mode, op, a, k)`` has the metadata of the eager-corrected
fake replay of ``op(*a, **k)``, and of eager, wherever ``replays_by_meta_kernel(op)`` holds.

Fresh tensors are made the way fake mode wraps a kernel's result (``fresh_fake``).
"""
from __future__ import annotations

import functools
from typing import Any

import torch
from torch._subclasses.fake_impls import has_meta
from torch._subclasses.fake_tensor import FakeTensorMode, in_kernel_invocation_manager

from . import ops
from .access import leaves


@functools.cache
def replays_by_meta_kernel(op: Any) -> bool:
    """An ATen view op or a clone, with a meta kernel (module docstring); never an op that
    writes into an argument."""
    op = ops.functional_aten(op)
    return op is not None and (ops.family(op) is ops.Family.VIEW or op is ops.CLONE) and has_meta(op)


def run_meta_kernel(mode: FakeTensorMode, op: torch._ops.OpOverload, args: tuple, kwargs: dict) -> Any:
    """``op``'s meta kernel on the fake tensors of ``args`` and ``kwargs``, its tensors wrapped
    as fake tensors of ``mode`` on the device fake dispatch gives them."""
    with in_kernel_invocation_manager(mode):
        out = op(*args, **kwargs)
    return mode.wrap_meta_outputs_with_default_device_logic(out, op, leaves((args, kwargs)),
                                                            device=kwargs.get("device"))


def fresh_fake(mode: FakeTensorMode, shape: tuple, strides: tuple, dtype: torch.dtype,
               device: torch.device) -> torch.Tensor:
    """A fake tensor of ``mode`` with its own dense storage: what ``torch.empty_strided`` gives
    under ``mode``, without a dispatch."""
    meta = torch.empty_strided(shape, strides, dtype=dtype, device="meta")
    return mode.fake_tensor_converter.from_meta_and_device(mode, meta, device)
