"""Recomputing ``meta["val"]`` after a graph edit, with the program's own fake mode.

The strides this produces are the ones eager PyTorch gives the same ops, which is what makes
``meta["val"]`` a faithful statement of each tensor's physical layout.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator

import torch
from torch._guards import detect_fake_mode
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx import GraphModule, Node
from torch.fx.node import map_arg

from ..errors import UnsupportedError
from .perm import order_of, strides_for
from . import ops
from .access import fake_value, leaves, map_leaves
from .meta_kernel import fresh_fake, replays_by_meta_kernel, run_meta_kernel


def fake_mode_of(gm: GraphModule) -> FakeTensorMode:
    vals = [fake_value(n) for n in gm.graph.nodes if n.op == "placeholder"]
    mode = detect_fake_mode([v for v in vals if isinstance(v, torch.Tensor)])
    return mode if mode is not None else FakeTensorMode(allow_non_fake_inputs=True)


_CACHING = contextvars.ContextVar("layoutopt_replay_cache", default=True)
_META_KERNELS = contextvars.ContextVar("layoutopt_meta_kernels", default=True)
_MISS = object()


class _Raised:
    """A replay that raised: the same inputs raise the same error."""

    def __init__(self, error: Exception):
        self.error = error


@contextlib.contextmanager
def replay_cache(enabled: bool) -> Iterator[None]:
    """Turn the cache of op replays on or off within the block (on by default)."""
    token = _CACHING.set(enabled)
    try:
        yield
    finally:
        _CACHING.reset(token)


@contextlib.contextmanager
def meta_kernel_replays(enabled: bool) -> Iterator[None]:
    """Turn replays by meta kernel alone (``meta_kernel``) on or off within the block (on by
    default); off, every replay goes through fake mode's dispatch."""
    token = _META_KERNELS.set(enabled)
    try:
        yield
    finally:
        _META_KERNELS.reset(token)


def _replays_of(mode: FakeTensorMode) -> dict:
    """The replays made in ``mode``. Kept on the mode: a fake result belongs to the mode that
    made it, and a deep copy of an exported program shares its mode."""
    cache = mode.__dict__.get("_layoutopt_replays")
    if cache is None:
        cache = mode.__dict__["_layoutopt_replays"] = {}
    return cache


def forget_replays(gm: GraphModule) -> None:
    """Drop the cached replays of ``gm``'s fake mode (a benchmark's cold start)."""
    fake_mode_of(gm).__dict__.pop("_layoutopt_replays", None)


def _tensor_key(t: torch.Tensor, first: int) -> tuple:
    return (type(t), tuple(t.shape), tuple(t.stride()), t.storage_offset(), t.untyped_storage().nbytes(),
            t.dtype, t.device, t.layout, t.requires_grad, t.is_conj(), t.is_neg(), first)


def _replay_key(target: Any, args: tuple, kwargs: dict) -> tuple | None:
    """Everything a replay reads: the op, grad mode, each tensor's metadata (shape, strides,
    offset, storage size, dtype, device; which arguments are one tensor) and every other
    argument by type and value. None where the result could depend on more: ops that mutate
    an argument (their result is that argument), symbolic sizes, fake tensors that carry
    constant values."""
    overload = ops.aten_overload(target)
    if isinstance(overload, torch._ops.OpOverload):
        if overload._schema.is_mutable:
            return None
    elif target is not torch.empty_strided:
        return None
    parts: list[Any] = [target, torch.is_grad_enabled()]  # whether a result records autograd history
    if not _key_parts((args, kwargs), parts, {}):
        return None
    key = tuple(parts)
    try:
        hash(key)
    except TypeError:  # a symbolic size or stride inside a tensor's metadata
        return None
    return key


_SYMBOLIC = (torch.SymInt, torch.SymFloat, torch.SymBool)


def _key_parts(value: Any, parts: list, seen: dict[int, int]) -> bool:
    """Append to ``parts`` what ``value`` contributes to a replay key: each container's type
    and length (a dict's keys), each tensor's metadata and which earlier tensor it is, every
    other leaf by type and value. False where there is no such key (a tensor carrying a
    constant, a symbolic size, an unhashable leaf). A walk over the few container types op
    arguments are made of, in place of a general tree flatten: a replay key is computed for
    every probe, hit or miss."""
    if isinstance(value, torch.Tensor):
        if getattr(value, "constant", None) is not None:
            return False
        parts.append(_tensor_key(value, seen.setdefault(id(value), len(seen))))
        return True
    if isinstance(value, (tuple, list)):
        parts.append((type(value), len(value)))
        return all(_key_parts(v, parts, seen) for v in value)
    if isinstance(value, dict):
        parts.append((type(value), tuple(value)))
        return all(_key_parts(v, parts, seen) for v in value.values())
    if isinstance(value, _SYMBOLIC):
        return False
    try:
        hash(value)
    except TypeError:
        return False
    parts.append((type(value), value))
    return True


def run_fake(mode: FakeTensorMode, target: Any, args: tuple, kwargs: dict) -> Any:
    """``target`` on fake tensors, the result cached by everything the replay reads
    (``_replay_key``): repeated blocks replay the same ops on the same metadata.

    A cached result is the same fake tensor object for every caller with that key; only its
    metadata is read, never its identity."""
    key = _replay_key(target, args, kwargs) if _CACHING.get() else None
    if key is None:
        return _run_fake(mode, target, args, kwargs)
    cache = _replays_of(mode)
    found = cache.get(key, _MISS)
    if found is _MISS:
        try:
            found = _run_fake(mode, target, args, kwargs)
        except Exception as exc:
            found = _Raised(exc)
        cache[key] = found
    if isinstance(found, _Raised):
        raise found.error.with_traceback(None)
    return found


def _run_fake(mode: FakeTensorMode, target: Any, args: tuple, kwargs: dict) -> Any:
    """``target`` on fake tensors; views get the strides eager gives them.

    Fake views can choose other strides than eager for size-1 dims, and eager's kernels
    (a convolution choosing its memory format, for one) read those strides, so views that do
    not take their meta kernel (below) are replayed on real, uninitialised storage and their
    fake results restrided to match; so are the few ops whose fake kernel predicts other
    output strides than the CPU kernel gives, elementwise ops reading a tensor whose size-1 dims have strides no dense layout gives them
    (eager keeps such strides, a fake kernel makes them dense), and any op whose fake result
    has such strides (without grad, fake group norm strides the size-1 batch dim of a
    channels-last result so, where eager gives the dense channels-last strides, and the
    average pool after it reads them).

    Views and clones run their meta kernel alone (``meta_kernel``): it gives eager's strides
    directly.
    """
    op = ops.aten_overload(target)
    by_kernel = _META_KERNELS.get() and replays_by_meta_kernel(op) and _plain_fakes(mode, (args, kwargs))
    if by_kernel:
        out = run_meta_kernel(mode, op, args, kwargs)
    else:
        with mode:
            out = target(*args, **kwargs)
    if ops.family(target) is ops.Family.VIEW:
        if by_kernel:
            return out
        out = _with_eager_strides(mode, target, args, kwargs, out, view=True)
    elif op in ops.FAKE_STRIDES_DIFFER or (
            ops.is_elementwise(target) and any(_odd_strides(a) for a in args)) or any(
            _odd_strides(o) for o in (out if isinstance(out, (list, tuple)) else (out,))):
        out = _with_eager_strides(mode, target, args, kwargs, out, view=False)
    return out


def _plain_fakes(mode: FakeTensorMode, tree: Any) -> bool:
    """Every tensor in ``tree`` a fake tensor of ``mode`` with static sizes and no constant
    value, no symbolic scalar beside them, and no autograd history to record: what a meta
    kernel alone replays as fake mode does (fake mode converts real tensors, computes on
    constants and reasons on symbols; below autograd, it leaves a result that requires grad
    a non-leaf, where a wrapped kernel result would be a leaf refusing in-place ops)."""
    grad = torch.is_grad_enabled()
    for leaf in leaves(tree):
        if isinstance(leaf, _SYMBOLIC):
            return False
        if isinstance(leaf, torch.Tensor):
            if not mode.is_our_fake(leaf) or leaf.constant is not None or (grad and leaf.requires_grad):
                return False
            if any(isinstance(d, torch.SymInt) for d in leaf.shape):
                return False
    return True


def _odd_strides(value: Any) -> bool:
    """A tensor whose strides are not the dense strides of its own dim order."""
    if not isinstance(value, torch.Tensor) or value.dim() == 0:
        return False
    shape, stride = tuple(value.shape), tuple(value.stride())
    return stride != strides_for(shape, order_of(shape, stride))


def _real_like(t: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    extent = t.storage_offset() + sum((s - 1) * st for s, st in zip(t.shape, t.stride())) + 1
    base = torch.empty(max(extent, 1), dtype=t.dtype, device=device)
    return base.as_strided(tuple(t.shape), tuple(t.stride()), t.storage_offset())


def run_eager(target: Any, args: tuple, kwargs: dict) -> Any:
    """``target`` run eagerly on real, uninitialised tensors laid out like the tensors (fake
    or real) in ``args`` and ``kwargs``: the strides eager gives, at the cost of a real kernel
    on uninitialised memory. Raises what eager raises."""
    return _run_eager(target, args, kwargs)[0]


def _run_eager(target: Any, args: tuple, kwargs: dict, device: str = "cpu") -> tuple[Any, list[torch.Tensor]]:
    """``run_eager``'s result and the tensors it ran on: real ones, or meta tensors where
    ``device`` is ``"meta"`` (strides only, nothing allocated or computed)."""
    real = {}

    def to_real(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            if id(v) not in real:
                real[id(v)] = _real_like(v, device)
            return real[id(v)]
        return v

    rargs = map_leaves(args, to_real)
    rkwargs = map_leaves(kwargs, to_real)
    with _one_thread():
        return target(*rargs, **rkwargs), list(real.values())


# Operand elements up to which a probe runs a real kernel rather than a fake replay: the time of
# a real kernel grows with its operands, a fake replay's does not.
_EAGER_MAX_ELEMENTS = 1 << 17
_EAGER = object()  # tags the cache keys of eager answers
_REPLAY = object()  # a probe eager does not answer
_FRESH = object()  # tags the cache keys of the fresh fakes eager answers give


def run_probe(mode: FakeTensorMode, target: Any, args: tuple, kwargs: dict) -> Any:
    """What ``run_fake`` gives, for a caller that reads only the result's metadata (shape,
    strides, dtype, a fresh dense storage), answered by eager where eager states it exactly
    (``ops.eager_answers``): ``target`` run on real, uninitialised tensors laid out like the
    fake ones (past ``_EAGER_MAX_ELEMENTS``, on meta tensors where those state eager's strides,
    ``ops.meta_answers``), and a fake tensor made with its result's shape, strides and dtype.
    A fake replay where eager raises, where its result is not one fresh dense tensor, where an
    operand is not a CPU tensor or carries a constant, or past ``_EAGER_MAX_ELEMENTS`` where
    meta tensors do not state eager's strides.

    The tensor made does not require grad: it is what a replay gives without grad (``replay``
    and the problem builder run without it); with grad, a replay's result may require grad as
    a non-leaf, which no probe reads. Cached like ``run_fake``, apart from its replays."""
    key = _replay_key(target, args, kwargs) if _CACHING.get() and ops.eager_answers(target) else None
    if key is None:
        return run_fake(mode, target, args, kwargs)
    cache = _replays_of(mode)
    found = cache.get((_EAGER, key), _MISS)
    if found is _MISS:
        found = _answer_by_eager(mode, target, args, kwargs)
        cache[(_EAGER, key)] = found
    if found is _REPLAY:
        return run_fake(mode, target, args, kwargs)
    return found


def _answer_by_eager(mode: FakeTensorMode, target: Any, args: tuple, kwargs: dict) -> Any:
    keyword_leaves = leaves(kwargs)
    tensors = [t for t in leaves(args) + keyword_leaves if isinstance(t, torch.Tensor)]
    if any(t.device.type != "cpu" for t in tensors):
        return _REPLAY
    # a real kernel on small operands, meta tensors past them where those state eager's strides
    on_meta = sum(t.numel() for t in tensors) > _EAGER_MAX_ELEMENTS
    if on_meta and not ops.meta_answers(target):
        return _REPLAY
    if any(_odd_strides(v) for v in keyword_leaves):
        return _REPLAY
    try:
        out, reals = _run_eager(ops.aten_overload(target), args, kwargs, "meta" if on_meta else "cpu")
    except Exception:  # the replay decides what the op does with these operands
        return _REPLAY
    if type(out) is not torch.Tensor or not _fresh_dense(out, reals):
        return _REPLAY
    # one fake per result layout: answers share it as cached replays share theirs
    made = (_FRESH, tuple(out.shape), tuple(out.stride()), out.dtype, tensors[0].device)
    cache = _replays_of(mode)
    if made not in cache:
        cache[made] = fresh_fake(mode, *made[1:])
    return cache[made]


def _fresh_dense(out: torch.Tensor, inputs: list[torch.Tensor]) -> bool:
    """``out`` owns a storage of its own, no larger than its elements need: what a fake tensor
    made by ``empty_strided`` with its strides has."""
    if out.numel() == 0 or out.storage_offset() != 0 or any(s < 0 for s in out.stride()):
        return False
    extent = 1 + sum((n - 1) * s for n, s in zip(out.shape, out.stride()))
    storage = out.untyped_storage()
    if storage.nbytes() != extent * out.element_size():
        return False
    return all(t.untyped_storage()._cdata != storage._cdata for t in inputs)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the block's kernels on one thread. An eager run that only shows its output's strides
    computes on uninitialised memory whose values nobody reads: waking the intra-op thread
    pool costs more than the kernel (milliseconds a call on a loaded machine, against
    microseconds), and the strides a kernel gives do not depend on its thread count."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _with_eager_strides(mode: FakeTensorMode, target: Any, args: tuple, kwargs: dict, out: Any,
                        view: bool) -> Any:
    """Run ``target`` on real, uninitialised tensors laid out like the fake ones and give the
    fake result eager's strides (a view keeps aliasing its input)."""
    try:
        eager = run_eager(target, args, kwargs)
    except Exception:
        return out

    def fix(f: Any, e: Any) -> Any:
        if isinstance(f, torch.Tensor) and isinstance(e, torch.Tensor) and f.stride() != e.stride():
            with mode:
                if view:
                    return f.as_strided(tuple(f.shape), tuple(e.stride()), f.storage_offset())
                return torch.empty_strided(tuple(f.shape), tuple(e.stride()), dtype=f.dtype)
        return f

    if isinstance(out, (list, tuple)):
        return type(out)(fix(f, e) for f, e in zip(out, eager))
    return fix(out, eager)


def run_chain(chain: list[Node], value: torch.Tensor) -> torch.Tensor:
    """Run the single-input ops of ``chain`` (first to last) on a real ``value``: how rules
    prove what a chain of layout ops does, by running it on an index tensor."""
    for node in chain:
        value = node.target(value, *node.args[1:], **node.kwargs)
    return value


@torch.no_grad()
def replay(mode: FakeTensorMode, node: Node) -> Any:
    """``node``'s op on its inputs' ``meta["val"]``: the value it has now. Without grad, as
    ``torch.export`` records values (its parameters require grad, no op's result does), so a
    probe's answer is the replay's value (``run_probe``)."""
    return run_probe(mode, node.target, map_arg(node.args, fake_value), map_arg(node.kwargs, fake_value))


def refresh_meta(gm: GraphModule) -> None:
    """Recompute ``meta["val"]`` of every call node from its inputs, in graph order."""
    mode = fake_mode_of(gm)
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            attr = getattr(gm, str(node.target))
            node.meta["val"] = mode.from_tensor(attr) if isinstance(attr, torch.Tensor) else attr
        elif node.op == "call_function":
            try:
                node.meta["val"] = replay(mode, node)
            except Exception as exc:  # the op cannot be replayed: nothing downstream is trustworthy
                raise UnsupportedError(
                    f"cannot recompute node '{node.name}' ({node.target}): {type(exc).__name__}"
                ) from exc
        elif node.op == "call_module":
            raise UnsupportedError(f"node '{node.name}' calls a submodule; export the model flat")
