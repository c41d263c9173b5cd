"""Random exported graphs built from the ops layoutopt reasons about, for fuzzing the planner.

``graphs()`` is a hypothesis strategy of ``GraphSpec``s: an input shape and a list of steps,
each reading live tensors and appending one. ``FuzzNet(spec)`` is the module that runs them,
so a failing spec is a complete, printable reproducer. ``check(spec, target)`` optimizes it
and returns an ``Outcome``: passed, declined (a ``LayoutoptError`` with its reason) or failed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

Shape = tuple[int, ...]
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2}  # relative to the output's magnitude


@dataclass(frozen=True)
class Step:
    op: str
    inputs: tuple[int, ...]  # indices of live tensors read
    args: tuple = ()
    out: Shape = ()  # the shape it produces


@dataclass(frozen=True)
class GraphSpec:
    shape: Shape
    steps: tuple[Step, ...]
    outputs: tuple[int, ...]
    dtype: str = "float32"
    quantize: bool = False  # wrap the input and every conv in PT2E-style q/dq pairs

    def __repr__(self) -> str:  # a reproducer one can paste
        steps = ",\n    ".join(repr(s) for s in self.steps)
        return (f"GraphSpec(shape={self.shape}, dtype={self.dtype!r}, quantize={self.quantize}, "
                f"outputs={self.outputs}, steps=(\n    {steps},\n))")


def _numel(shape: Shape) -> int:
    return math.prod(shape)


# -- the strategy -----------------------------------------------------------------------------


@st.composite
def _step(draw, shapes: list[Shape]) -> tuple[Step, Shape] | None:
    i = draw(st.integers(0, len(shapes) - 1))
    s = shapes[i]
    r = len(s)
    kinds = ["unary", "bias", "permute", "reduce", "softmax", "slice", "split", "pad", "cat", "scale"]
    if r in (3, 4, 5):
        kinds += ["conv"] * 4 + ["flatten_spatial", "flatten_all"]
    if r == 4:
        kinds += ["pool", "pool", "shuffle", "shuffle_conv", "shuffle_conv", "group_norm", "upsample",
                  "channel_linear", "channel_linear", "squeeze_excite", "head"]
    if r >= 2:
        kinds += ["linear", "linear", "layer_norm", "matmul", "transpose", "reshape_split", "reshape_merge"]
    if r >= 3:
        kinds += ["squeeze_unsqueeze", "round_trip", "round_trip", "permute_reshape_permute"]
    same = [j for j, t in enumerate(shapes) if t == s and j != i]
    if same:
        kinds += ["residual", "residual"]
    kind = draw(st.sampled_from(kinds))
    if kind == "unary":
        fn = draw(st.sampled_from(["relu", "gelu", "sigmoid", "tanh", "hardtanh", "neg", "clamp"]))
        return Step("unary", (i,), (fn,)), s
    if kind == "bias":  # broadcast add of a parameter over the channel dim, or along the last
        along = draw(st.sampled_from(["channel", "last"])) if r >= 2 else "last"
        return Step("bias", (i,), (along,)), s
    if kind == "scale":
        return Step("scale", (i,), (draw(st.floats(0.5, 2.0)),)), s
    if kind == "residual":
        j = draw(st.sampled_from(same))
        op = draw(st.sampled_from(["add", "mul", "sub"]))
        return Step("residual", (i, j), (op,)), s
    if kind == "permute":
        perm = tuple(draw(st.permutations(range(r))))
        return Step("permute", (i,), (perm,)), tuple(s[d] for d in perm)
    if kind == "transpose":
        a, b = draw(st.lists(st.integers(0, r - 1), min_size=2, max_size=2, unique=True))
        out = list(s)
        out[a], out[b] = out[b], out[a]
        return Step("transpose", (i,), (a, b, draw(st.booleans()))), tuple(out)
    if kind == "reduce":
        dim = draw(st.integers(0, r - 1))
        keep = draw(st.booleans()) or r <= 2
        fn = draw(st.sampled_from(["mean", "sum", "amax"]))
        out = tuple(1 if d == dim else n for d, n in enumerate(s)) if keep else s[:dim] + s[dim + 1:]
        return Step("reduce", (i,), (fn, dim, keep)), out
    if kind == "softmax":
        return Step("softmax", (i,), (draw(st.integers(0, r - 1)),)), s
    if kind == "slice":
        dim = draw(st.integers(0, r - 1))
        if s[dim] < 2:
            return None
        start = draw(st.integers(0, s[dim] // 2))
        out = list(s)
        out[dim] = s[dim] - start
        return Step("slice", (i,), (dim, start)), tuple(out)
    if kind == "split":
        dim = draw(st.integers(0, r - 1))
        if s[dim] < 2:
            return None
        first = draw(st.integers(1, s[dim] - 1))
        out = list(s)
        out[dim] = first if draw(st.booleans()) else s[dim] - first
        return Step("split", (i,), (dim, first, out[dim] == first)), tuple(out)
    if kind == "pad":
        p = draw(st.integers(1, 2))
        out = s[:-1] + (s[-1] + 2 * p,)
        return Step("pad", (i,), (p,)), out
    if kind == "cat":
        dim = draw(st.integers(0, r - 1))
        out = list(s)
        out[dim] = 2 * s[dim]
        if _numel(out) > 4096:
            return None
        return Step("cat", (i, i), (dim,)), tuple(out)
    if kind == "conv":
        c = s[1]
        cout = draw(st.sampled_from([c, 4, 8]))
        k = draw(st.sampled_from([1, 3]))
        stride = draw(st.sampled_from([1, 1, 2]))
        dil = draw(st.sampled_from([1, 1, 2]))
        groups = draw(st.sampled_from([1, 1, 2, c])) if cout == c else 1
        groups = groups if c % groups == 0 and cout % groups == 0 else 1
        spatial = s[2:]
        reach = dil * (k - 1)
        pad = reach // 2
        out_sp = tuple((n + 2 * pad - reach - 1) // stride + 1 for n in spatial)
        if any(n < 1 for n in out_sp):
            return None
        return Step("conv", (i,), (cout, k, stride, dil, pad, groups)), (s[0], cout, *out_sp)
    if kind == "pool":
        fn = draw(st.sampled_from(["max", "avg", "adaptive"]))
        if fn == "adaptive":
            return Step("pool", (i,), (fn,)), (s[0], s[1], 1, 1)
        if s[2] < 2 or s[3] < 2:
            return None
        return Step("pool", (i,), (fn,)), (s[0], s[1], s[2] // 2, s[3] // 2)
    if kind == "upsample":
        if _numel(s) * 4 > 4096:
            return None
        return Step("upsample", (i,), ()), (s[0], s[1], 2 * s[2], 2 * s[3])
    if kind == "shuffle":
        if s[1] % 2:
            return None
        return Step("shuffle", (i,), (2,)), s
    if kind == "shuffle_conv":  # a shuffle read only by a conv: the order a weight can absorb
        if s[1] % 2:
            return None
        cout = draw(st.sampled_from([s[1], 4, 8]))
        return Step("shuffle_conv", (i,), (cout, draw(st.sampled_from([1, 3])))), (s[0], cout, s[2], s[3])
    if kind == "group_norm":
        if s[1] % 2:
            return None
        return Step("group_norm", (i,), (2,)), s
    if kind == "flatten_spatial":
        return Step("flatten_spatial", (i,), ()), (s[0], s[1], _numel(s[2:]))
    if kind == "flatten_all":  # a classifier head's flatten(1)
        return Step("flatten_all", (i,), ()), (s[0], _numel(s[1:]))
    if kind == "squeeze_excite":  # pool to 1x1, a 1x1 conv, scale the features
        return Step("squeeze_excite", (i,), ()), s
    if kind == "head":  # a classifier head: flatten(1) into a linear
        out = draw(st.sampled_from([4, 10]))
        return Step("head", (i,), (out,)), (s[0], out)
    if kind == "channel_linear":  # a linear over the channels of NCHW data, through permutes
        out = draw(st.sampled_from([s[1], 4, 8]))
        return Step("channel_linear", (i,), (out,)), (s[0], out, s[2], s[3])
    if kind == "linear":
        out = draw(st.sampled_from([s[-1], 4, 8]))
        return Step("linear", (i,), (out,)), s[:-1] + (out,)
    if kind == "layer_norm":
        return Step("layer_norm", (i,), ()), s
    if kind == "matmul":  # x @ x^T over the last two dims
        return Step("matmul", (i,), ()), s[:-1] + (s[-2],)
    if kind == "reshape_split":
        dim = draw(st.integers(0, r - 1))
        if s[dim] % 2 or r >= 5:
            return None
        out = s[:dim] + (2, s[dim] // 2) + s[dim + 1:]
        return Step("reshape", (i,), (out,)), out
    if kind == "reshape_merge":
        if r < 3:
            return None
        dim = draw(st.integers(0, r - 2))
        out = s[:dim] + (s[dim] * s[dim + 1],) + s[dim + 2:]
        return Step("reshape", (i,), (out,)), out
    if kind == "squeeze_unsqueeze":
        dim = draw(st.integers(0, r))
        return Step("unsqueeze_squeeze", (i,), (dim,)), s
    if kind == "round_trip":  # permute, an elementwise op or a join of two permuted branches, permute back
        perm = tuple(draw(st.permutations(range(r))))
        inner = draw(st.sampled_from(["relu", "scale", "qdq", "join", "cat", "bias"]))
        dim = draw(st.integers(0, r - 1))  # the concatenation's dim, among the permuted dims
        out = list(s)
        if inner == "cat":
            out[perm[dim]] *= 2
        return Step("round_trip", (i,), (perm, inner, dim)), tuple(out)
    if kind == "permute_reshape_permute":  # permute, merge two adjacent dims, permute again
        perm = tuple(draw(st.permutations(range(r))))
        dim = draw(st.integers(0, r - 2))
        moved = tuple(s[d] for d in perm)
        merged = moved[:dim] + (moved[dim] * moved[dim + 1],) + moved[dim + 2:]
        then = tuple(draw(st.permutations(range(r - 1))))
        return Step("permute_reshape_permute", (i,), (perm, merged, then)), tuple(merged[d] for d in then)
    raise AssertionError(kind)


@st.composite
def graphs(draw, max_steps: int = 8) -> GraphSpec:
    rank = draw(st.sampled_from([2, 3, 3, 4, 4, 4, 5]))
    dims = {2: [(1, 8), (2, 6)], 3: [(1, 4, 10), (2, 6, 8)], 4: [(1, 4, 6, 6), (1, 3, 8, 8), (2, 4, 4, 6)],
            5: [(1, 2, 4, 4, 4)]}
    shape = draw(st.sampled_from(dims[rank]))
    shapes: list[Shape] = [shape]
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, max_steps))):
        made = draw(_step(shapes))
        if made is None:
            continue
        step, out = made
        if _numel(out) > 8192 or len(out) > 6 or any(n < 1 for n in out):
            continue
        steps.append(Step(step.op, step.inputs, step.args, tuple(out)))
        shapes.append(out)
    n_out = draw(st.integers(1, min(2, len(shapes))))
    outputs = tuple(sorted({len(shapes) - 1, *draw(st.lists(st.integers(0, len(shapes) - 1),
                                                             max_size=n_out - 1))}))
    dtype = draw(st.sampled_from(["float32", "float32", "float32", "float16"]))
    quantize = dtype == "float32" and draw(st.integers(0, 4)) == 0
    return GraphSpec(shape, tuple(steps), outputs, dtype, quantize)


# -- the module -------------------------------------------------------------------------------


def _shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """A channel shuffle of ``groups`` groups, written as ShuffleNet writes it."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _conv_of(step: Step) -> Step:
    """The conv step a ``shuffle_conv`` runs on the shuffled tensor: stride 1, same padding."""
    cout, k = step.args
    return Step("conv", step.inputs, (cout, k, 1, 1, k // 2, 1), step.out)


def _qdq(x: torch.Tensor) -> torch.Tensor:
    import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers the ops)

    qd = torch.ops.quantized_decomposed
    q = qd.quantize_per_tensor(x, 0.05, 0, -128, 127, torch.int8)
    return qd.dequantize_per_tensor(q, 0.05, 0, -128, 127, torch.int8)


class FuzzNet(nn.Module):
    """Runs a ``GraphSpec``; parameters are created from a fixed seed."""

    def __init__(self, spec: GraphSpec):
        super().__init__()
        self.spec = spec
        gen = torch.Generator().manual_seed(0)
        shapes = [spec.shape]
        self.params = nn.ParameterList()
        self.where: list[int] = []
        for step in spec.steps:
            s = shapes[step.inputs[0]]
            self.where.append(len(self.params))
            for p in self._params(step, s):
                self.params.append(nn.Parameter(torch.randn(p, generator=gen) / math.sqrt(max(1, p[-1])),
                                                requires_grad=False))
            shapes.append(step.out)
        self.to(getattr(torch, spec.dtype))

    @staticmethod
    def _params(step: Step, s: Shape) -> list[Shape]:
        if step.op == "conv":
            cout, k, _, _, _, groups = step.args
            cin = s[1] // groups
            return [(cout, cin) + (k,) * (len(s) - 2), (cout,)]
        if step.op == "shuffle_conv":
            return FuzzNet._params(_conv_of(step), s)
        if step.op == "bias":
            return [(s[1],) + (1,) * (len(s) - 2)] if step.args[0] == "channel" else [(s[-1],)]
        if step.op == "linear":
            return [(step.args[0], s[-1]), (step.args[0],)]
        if step.op == "channel_linear":
            return [(step.args[0], s[1]), (step.args[0],)]
        if step.op == "squeeze_excite":
            return [(s[1], s[1], 1, 1), (s[1],)]
        if step.op == "head":
            return [(step.args[0], _numel(s[1:])), (step.args[0],)]
        if step.op == "layer_norm":
            return [(s[-1],), (s[-1],)]
        if step.op == "round_trip" and step.args[1] == "bias":
            return [(s[step.args[0][-1]],)]
        return []

    def forward(self, x):
        live = [x]
        for step, at in zip(self.spec.steps, self.where):
            live.append(self._run_step(step, [live[i] for i in step.inputs], at))
        outs = tuple(live[i] for i in self.spec.outputs)
        return outs if len(outs) > 1 else outs[0]

    def _run_step(self, step: Step, xs, at):
        x, a, p = xs[0], step.args, self.params
        op = step.op
        if op == "unary":
            fn = a[0]
            if fn == "hardtanh":
                return F.hardtanh(x)
            if fn == "clamp":
                return torch.clamp(x, -0.5, 0.5)
            if fn == "neg":
                return -x
            return getattr(F if fn == "gelu" else torch, fn)(x)
        if op == "bias":
            return x + p[at]
        if op == "scale":
            return x * a[0]
        if op == "residual":
            return {"add": torch.add, "mul": torch.mul, "sub": torch.sub}[a[0]](x, xs[1])
        if op == "permute":
            return x.permute(a[0])
        if op == "transpose":
            y = x.transpose(a[0], a[1])
            return y.contiguous() if a[2] else y
        if op == "reduce":
            fn, dim, keep = a
            return getattr(torch, fn)(x, dim=dim, keepdim=keep) if fn != "amax" else torch.amax(x, dim, keep)
        if op == "softmax":
            return x.softmax(a[0])
        if op == "slice":
            dim, start = a
            return x.narrow(dim, start, x.shape[dim] - start)
        if op == "split":
            dim, first, take_first = a
            parts = torch.split(x, [first, x.shape[dim] - first], dim=dim)
            return parts[0] if take_first else parts[1]
        if op == "pad":
            return F.pad(x, (a[0], a[0]))
        if op == "cat":
            return torch.cat([x, xs[1]], dim=a[0])
        if op == "conv":
            cout, k, stride, dil, pad, groups = a
            conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[x.dim()]
            if self.spec.quantize:
                x = _qdq(x)
            y = conv(x, p[at], p[at + 1], stride, pad, dil, groups)
            return _qdq(y) if self.spec.quantize else y
        if op == "pool":
            if a[0] == "adaptive":
                return F.adaptive_avg_pool2d(x, 1)
            return F.max_pool2d(x, 2) if a[0] == "max" else F.avg_pool2d(x, 2)
        if op == "upsample":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if op == "shuffle":
            return _shuffle(x, a[0])
        if op == "shuffle_conv":
            return self._run_step(_conv_of(step), [_shuffle(x, 2)], at)
        if op == "group_norm":
            return F.group_norm(x, a[0])
        if op == "flatten_spatial":
            return x.flatten(2)
        if op == "flatten_all":
            return x.flatten(1)
        if op == "linear":
            return F.linear(x, p[at], p[at + 1])
        if op == "squeeze_excite":
            scale = torch.sigmoid(F.conv2d(F.adaptive_avg_pool2d(x, 1), p[at], p[at + 1]))
            return x * scale
        if op == "head":
            return F.linear(x.flatten(1), p[at], p[at + 1])
        if op == "channel_linear":
            return F.linear(x.permute(0, 2, 3, 1), p[at], p[at + 1]).permute(0, 3, 1, 2)
        if op == "layer_norm":
            return F.layer_norm(x, (x.shape[-1],), p[at], p[at + 1])
        if op == "matmul":
            return x @ x.transpose(-1, -2)
        if op == "reshape":
            return x.reshape(a[0])
        if op == "unsqueeze_squeeze":
            return x.unsqueeze(a[0]).squeeze(a[0])
        if op == "round_trip":
            perm, inner, dim = a
            y = x.permute(perm)
            if inner in ("join", "cat"):
                other = (x * 0.5).permute(perm)
                y = y + other if inner == "join" else torch.cat([y, other], dim)
            else:
                y = {"relu": torch.relu, "scale": lambda t: t * 1.5, "qdq": _qdq, "bias": lambda t: t + p[at]}[inner](y)
            return y.permute(tuple(perm.index(d) for d in range(len(perm))))
        if op == "permute_reshape_permute":
            perm, merged, then = a
            return x.permute(perm).reshape(merged).permute(then)
        raise AssertionError(op)


# -- the check --------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # "passed", "declined" or "failed"
    detail: str = ""
    rewrites: dict[str, int] = field(default_factory=dict)  # rules that fired on the graph


def inputs_for(spec: GraphSpec, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(spec.shape, generator=gen).to(getattr(torch, spec.dtype)),)


def check(spec: GraphSpec, target: str, edge: bool = False) -> Outcome:
    """Optimize ``spec`` for ``target`` (as an ExecuTorch edge program with ``edge``): equal
    outputs, or a clean decline; anything else fails."""
    import layoutopt
    from layoutopt.verify.numerics import compare

    model = FuzzNet(spec).eval()
    inputs = inputs_for(spec)
    try:
        exported = torch.export.export(model, inputs)
        if edge:
            from executorch.exir import to_edge

            exported = to_edge(exported).exported_program()
    except Exception as exc:  # a generator bug, not a planner one
        return Outcome("failed", f"export: {type(exc).__name__}: {str(exc)[:200]}")
    try:
        result = layoutopt.optimize(exported, inputs, target=target)
    except layoutopt.LayoutoptError as exc:
        return Outcome("declined", str(exc))
    except Exception as exc:
        return Outcome("failed", f"raised {type(exc).__name__}: {str(exc)[:300]}")
    rep = result.report
    problems = []
    if rep.plan_mismatches:
        problems.append(f"plan mismatches {rep.plan_mismatches[:3]}")
    if rep.layout_mismatches:
        problems.append(f"layout mismatches {rep.layout_mismatches[:3]}")
    if rep.transpose_bytes_after > rep.transpose_bytes_before:
        problems.append(f"worse: {rep.transpose_bytes_before} -> {rep.transpose_bytes_after} bytes")
    if rep.transpose_bytes_after != rep.lower_bound_bytes:
        problems.append(f"off the bound: {rep.transpose_bytes_after} vs {rep.lower_bound_bytes}")
    ref = model(*inputs)
    ref = ref if isinstance(ref, tuple) else (ref,)
    scale = max(1.0, max(float(r.abs().max()) for r in ref if r.numel()) if any(r.numel() for r in ref) else 1.0)
    tol = TOLERANCE[getattr(torch, spec.dtype)] * scale
    if rep.max_abs_diff is None or rep.max_abs_diff > tol:
        problems.append(f"max abs diff {rep.max_abs_diff} > {tol:.3g}")
    again = compare(exported, result.program, inputs, seed=1)
    if again.max_abs_diff > tol:
        problems.append(f"max abs diff on example inputs {again.max_abs_diff}")
    if problems:
        return Outcome("failed", "; ".join(problems), rep.rewrites)
    return Outcome("passed", rewrites=rep.rewrites)
