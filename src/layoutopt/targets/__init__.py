"""What each deployment target needs from the layout, and what a conversion costs there.

A target names the op families whose kernels are channels-last (NHWC) and those that need
the reduced dim innermost, and how many bytes an element occupies once deployed: the Ethos-U
and Cortex-M flows run int8, so a float graph planned for them is costed at one byte an element.
Op forms that pay differently per target are chosen here, from measurements with the
backends' own tools (bench/backends.py): Vela estimates a channel shuffle cheapest on Ethos-U
as no op at all, carried as the order channels are stored in, which costs a few more copy runs
where concatenations copy anyway (ShuffleNetV2 x1.0 at 224 px: U55 4.93M cycles against 5.14M
with one channels-last transpose per shuffle; U85 3.06M against 3.37M with permutation 1x1
convolutions), and XNNPACK runs the shuffle fastest as written. A 1x1 conv on a 1x1 input is left a conv on
Ethos-U: ExecuTorch's Arm backend lowers every linear back to a 1x1 CONV2D between reshapes,
and those reshapes of channels-last tensors cost two TOSA transposes (a squeeze-excite block:
63,893 -> 84,373 U55 cycles as fully connected).

On Ethos-U every TRANSPOSE also pays a fixed cost per op, whatever its size: Vela 5.1.0
estimates a 2x2 int8 transpose at 34 cycles on U55-128 and 86 on U85-256, and a (1, 32, 32, 32)
NHWC -> NWHC one at 12,288 and 18,632 cycles: 0.375 and 0.569 cycles a byte
(``executorch.vela_probe``, checked by ``tests/executorch/test_vela_probes.py``). At that rate
one more transpose costs as much as 91 (U55) or 151 (U85) more bytes moved:
``transpose_overhead_bytes``, which the Arm-stage planner adds to each transpose it places.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import torch

from ..errors import TargetError
from ..ir.ops import DENSE_LAST_FAMILIES as _DENSE_LAST
from ..ir.ops import NHWC_FAMILIES as _NHWC
from ..ir.ops import Family


class ShuffleForm(enum.Enum):
    """The form a channel shuffle runs best in on a target."""

    AS_WRITTEN = "as_written"
    CHANNELS_LAST = "channels_last"  # one transpose of the channel axis's two factors
    # that, and where the backend lays tensors out physically, a shuffled concatenation split
    # into a group axis it can put innermost (the copy interleaves the inputs' channels)
    INTERLEAVE = "interleave"
    # where the backend stores tensors without strides (ExecuTorch's Arm backend), the shuffle
    # carried as the order its channels are stored in, after quantization, into the weights of
    # the convolutions that read them (executorch/arm_channel_order.py): nothing before then;
    # with an ATen plan, the same carried there (``carry_channel_order``)
    CHANNEL_ORDER = "channel_order"
    CONV = "conv"  # a 1x1 convolution with a permutation weight

    @staticmethod
    def parse(value: "str | ShuffleForm | None") -> "ShuffleForm":
        """The form named ``value``; None is ``AS_WRITTEN``."""
        if isinstance(value, ShuffleForm):
            return value
        if value is None:
            return ShuffleForm.AS_WRITTEN
        try:
            return ShuffleForm(value)
        except ValueError:
            raise TargetError(f"channel_shuffle must be one of {', '.join(f.value for f in ShuffleForm)}, "
                              f"not '{value}'") from None


@dataclass(frozen=True)
class Target:
    name: str
    summary: str
    channels_last: frozenset  # families whose kernels read and write channels-last
    dense_last: frozenset  # families that need the last logical dim innermost
    element_bytes: int | None  # deployed bytes per element; None keeps the graph's dtype
    fc_for_pointwise: bool = False  # a 1x1 conv on a 1x1 input runs faster as fully connected
    # the form a channel shuffle runs best in (its name, or None for as written, also accepted)
    channel_shuffle: ShuffleForm = ShuffleForm.CHANNELS_LAST
    # what a transpose op costs whatever its size, and then per byte it moves (Ethos-U: Vela's cycles)
    transpose_setup_cycles: int = 0
    transpose_cycles_per_byte: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_shuffle", ShuffleForm.parse(self.channel_shuffle))

    @property
    def transpose_overhead_bytes(self) -> int:
        """A transpose's fixed cost stated as the bytes that would cost as much to move."""
        return round(self.transpose_setup_cycles / self.transpose_cycles_per_byte)

    def stores_channel_orders(self, planned: bool) -> bool:
        """Whether the backend stage carries channel gathers as stored channel orders, exactly,
        after quantization (``ShuffleForm.CHANNEL_ORDER`` where no ATen plan follows): the
        ATen rules leave gathers of channels to it."""
        return self.channel_shuffle is ShuffleForm.CHANNEL_ORDER and not planned

    def carries_channel_orders(self, planned: bool) -> bool:
        """Whether the ATen rules carry channel gathers as stored channel orders into the weights
        that read them (``carry_channel_order``): where layoutopt's plan follows, on targets that
        do not run a shuffle best as written."""
        return planned and self.channel_shuffle is not ShuffleForm.AS_WRITTEN

    def bytes_of(self, numel: int, dtype: torch.dtype) -> int:
        size = self.element_bytes if self.element_bytes is not None else dtype.itemsize
        return int(numel) * size


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("ethos-u55", "Arm Ethos-U55 NPU via TOSA and Vela (int8, NHWC kernels; transposes are emulated)",
               _NHWC, _DENSE_LAST, 1, channel_shuffle=ShuffleForm.CHANNEL_ORDER, transpose_setup_cycles=34,
               transpose_cycles_per_byte=12288 / 32768),
        Target("ethos-u85", "Arm Ethos-U85 NPU via TOSA and Vela (int8, NHWC kernels, native transpose)",
               _NHWC, _DENSE_LAST, 1, channel_shuffle=ShuffleForm.CHANNEL_ORDER, transpose_setup_cycles=86,
               transpose_cycles_per_byte=18632 / 32768),
        Target("cortex-m", "Cortex-M with CMSIS-NN kernels (int8, NHWC)", _NHWC, _DENSE_LAST, 1,
               fc_for_pointwise=True, channel_shuffle=ShuffleForm.INTERLEAVE),
        Target("xnnpack", "XNNPACK on mobile CPUs (NHWC kernels, float or int8)", _NHWC, _DENSE_LAST, None,
               channel_shuffle=ShuffleForm.AS_WRITTEN),
        Target("cpu", "PyTorch eager on CPU (oneDNN prefers channels-last convolutions)",
               frozenset({Family.CONV}), frozenset({Family.MATMUL}), None),
    )
}


def get_target(name: "str | Target") -> Target:
    if isinstance(name, Target):
        return name
    try:
        return TARGETS[name]
    except KeyError:
        raise TargetError(f"unknown target '{name}'; choose one of: {', '.join(TARGETS)}") from None
