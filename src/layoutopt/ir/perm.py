"""The permutation algebra of layoutopt; every other module asks this one.

Conventions (the same as ``torch.permute`` and ExecuTorch's dim order):

* A ``Perm`` ``p`` acts on a sequence like ``torch.permute``: ``p.apply(s)[i] == s[p[i]]``.
* Composition reads left to right: ``x.permute(p).permute(q) == x.permute(p.then(q))``.
* A dim order lists the logical dims of a tensor from the outermost to the innermost in
  memory: ``(0, 1, 2, 3)`` is contiguous NCHW, ``(0, 2, 3, 1)`` is channels-last.
* Two dim orders of one shape describe the same bytes when they agree on the dims whose size
  is not 1: ``layout_key`` is that canonical form, and layouts are compared only through it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

Order = tuple[int, ...]


@dataclass(frozen=True)
class Perm:
    """An immutable permutation of ``len(dims)`` dims."""

    dims: tuple[int, ...]

    def __post_init__(self) -> None:
        if sorted(self.dims) != list(range(len(self.dims))):
            raise ValueError(f"not a permutation: {self.dims}")

    @staticmethod
    def identity(rank: int) -> "Perm":
        return Perm(tuple(range(rank)))

    @property
    def rank(self) -> int:
        return len(self.dims)

    def apply(self, seq: Sequence) -> tuple:
        """``p.apply(shape) == tuple(x.permute(p).shape)`` for ``shape == x.shape``."""
        if len(seq) != self.rank:
            raise ValueError(f"permutation {self.dims} applied to {len(seq)} items")
        return tuple(seq[d] for d in self.dims)

    def then(self, other: "Perm") -> "Perm":
        """``x.permute(self).permute(other) == x.permute(self.then(other))``."""
        return Perm(tuple(self.dims[d] for d in other.dims))

    def inverse(self) -> "Perm":
        """``p.then(p.inverse())`` is the identity."""
        inv = [0] * self.rank
        for i, d in enumerate(self.dims):
            inv[d] = i
        return Perm(tuple(inv))

    def is_identity(self) -> bool:
        return self.dims == tuple(range(self.rank))


def identity_order(rank: int) -> Order:
    return tuple(range(rank))


def channels_last_order(rank: int) -> Order | None:
    """The channels-last dim order of an N, C, *spatial tensor: C moves innermost."""
    if rank < 3:
        return None
    return (0, *range(2, rank), 1)


def order_of(shape: Sequence[int], stride: Sequence[int]) -> Order:
    """The dim order that ``stride`` describes; ties (size-1 or broadcast dims) keep dim order."""
    return tuple(sorted(range(len(shape)), key=lambda d: (-stride[d], d)))


def strides_for(shape: Sequence[int], order: Sequence[int]) -> tuple[int, ...]:
    """Dense strides that lay ``shape`` out in ``order``."""
    strides = [0] * len(shape)
    step = 1
    for d in reversed(order):
        strides[d] = step
        step *= max(int(shape[d]), 1)
    return tuple(strides)


def layout_key(shape: Sequence[int], order: Sequence[int]) -> Order:
    """The canonical form of a layout: the order of the dims whose size is not 1."""
    return tuple(d for d in order if shape[d] != 1)


def same_layout(shape: Sequence[int], a: Sequence[int], b: Sequence[int]) -> bool:
    return layout_key(shape, a) == layout_key(shape, b)


def order_after_permute(order: Sequence[int], perm: Perm) -> Order:
    """Dim order of ``x.permute(perm)`` as a view, given the dim order of ``x``."""
    inv = perm.inverse().dims
    return tuple(inv[d] for d in order)


def moves_bytes(perm: Perm, shape: Sequence[int]) -> bool:
    """Whether ``y = x.permute(perm)`` of a dense ``x`` reorders memory, ``shape`` being ``y``'s:
    a permute that moves only size-1 dims renames the memory sequence and copies nothing."""
    identity = identity_order(perm.rank)
    return layout_key(shape, order_after_permute(identity, perm)) != layout_key(shape, identity)


def distinct_layouts(shape: Sequence[int]) -> int:
    """How many layouts a shape has: the factorial of its count of non-unit dims."""
    n = sum(1 for s in shape if s != 1)
    out = 1
    for k in range(2, n + 1):
        out *= k
    return out


def order_before_permute(order: Sequence[int], perm: Perm) -> Order:
    """The dim order of ``x`` that makes ``x.permute(perm)`` come out in ``order`` as a view:
    ``order_after_permute(order_before_permute(o, p), p) == o``."""
    return tuple(perm.dims[d] for d in order)


def reshape_order(in_shape: Sequence[int], in_order: Sequence[int], out_shape: Sequence[int]) -> Order | None:
    """The dim order in which ``x.reshape(out_shape)`` lists its elements in the memory sequence
    of ``x`` laid out in ``in_order``, or None when no dense order does (the reshape then moves
    bytes). Proved by replaying the reshape on element indices."""
    return _reshape_order(tuple(int(s) for s in in_shape), tuple(in_order), tuple(int(s) for s in out_shape))


@lru_cache(maxsize=4096)
def _reshape_order(in_shape: tuple, in_order: tuple, out_shape: tuple) -> Order | None:
    import numpy as np

    numel = int(np.prod(in_shape, dtype=np.int64))
    if numel != int(np.prod(out_shape, dtype=np.int64)):
        return None
    # where each element of x sits in memory, then the same positions read through the reshape
    position = np.empty(numel, dtype=np.int64)
    position[np.arange(numel).reshape(in_shape).transpose(in_order).reshape(-1)] = np.arange(numel)
    out = position.reshape(out_shape)
    strides = [0] * len(out_shape)
    for d, size in enumerate(out_shape):
        if size > 1:
            index = [0] * len(out_shape)
            index[d] = 1
            strides[d] = int(out[tuple(index)] - out[(0,) * len(out_shape)])
    order = order_of(out_shape, strides)
    if any(strides[d] != s for d, s in enumerate(strides_for(out_shape, order)) if out_shape[d] > 1):
        return None
    # the unit steps fit a dense order; every other element must follow it as well (a reshape
    # that regroups dims the layout has swapped can agree with it on the unit steps alone)
    rank = len(out_shape)
    strided = sum((np.arange(size) * strides[d]).reshape([size if k == d else 1 for k in range(rank)])
                  for d, size in enumerate(out_shape))
    if not np.array_equal(out, strided + out[(0,) * rank]):
        return None
    return with_unit_dims_in_place(out_shape, order)


def with_unit_dims_in_place(shape: Sequence[int], order: Sequence[int]) -> Order:
    """The same layout with every size-1 dim at its own position: the non-unit dims of
    ``order`` fill the positions the non-unit dims hold in ``shape``."""
    big = iter(d for d in order if shape[d] != 1)
    return tuple(d if shape[d] == 1 else next(big) for d in range(len(shape)))


def reduced_permute(shape: Sequence[int], perm: Perm) -> tuple[tuple[int, ...], Perm]:
    """The same data movement as ``x.permute(perm)`` (``x`` of ``shape``) at the lowest rank:
    size-1 dims dropped and each run of dims that stays adjacent and in order merged into one.
    Returns ``(merged shape, merged perm)`` such that
    ``x.permute(perm) == x.reshape(merged).permute(merged_perm).reshape(perm.apply(shape))``."""
    wide = [d for d in range(len(shape)) if shape[d] != 1]
    rank_of = {d: i for i, d in enumerate(wide)}  # input position among the non-unit dims
    runs: list[list[int]] = []
    for d in perm.dims:
        if shape[d] == 1:
            continue
        if runs and rank_of[d] == rank_of[runs[-1][-1]] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    by_input = sorted(range(len(runs)), key=lambda r: runs[r][0])
    merged = tuple(_product(shape[d] for d in runs[r]) for r in by_input) or (1,)
    position = {r: i for i, r in enumerate(by_input)}
    return merged, Perm(tuple(position[r] for r in range(len(runs))) or (0,))


def _product(sizes) -> int:
    out = 1
    for s in sizes:
        out *= int(s)
    return out


def permuted_pad(pad: Sequence[int], order: Sequence[int]) -> list[int]:
    """``constant_pad_nd``'s pad list (before/after pairs from the last dim backwards) for the
    tensor permuted by ``order``: ``pad(x, p).permute(o) == pad(x.permute(o), permuted_pad(p, o))``."""
    rank = len(order)
    per_dim = {rank - 1 - i: (pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)}
    out: list[int] = []
    for physical in reversed(range(rank)):
        out += list(per_dim.get(order[physical], (0, 0)))
    while len(out) > 2 and out[-2:] == [0, 0]:  # leading dims without padding
        out = out[:-2]
    return out
