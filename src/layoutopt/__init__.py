"""layoutopt: exact layout planning for exported PyTorch graphs on NHWC targets."""
from .api import Result, measure_transposes, optimize
from .errors import ExportError, InputError, LayoutoptError, TargetError, UnsupportedError
from .layout.cost import IOLayout
from .targets import TARGETS, ShuffleForm, Target, get_target

__all__ = [
    "optimize", "measure_transposes", "Result", "LayoutoptError", "InputError", "ExportError", "UnsupportedError",
    "TargetError", "IOLayout", "TARGETS", "ShuffleForm", "Target", "get_target",
]
__version__ = "0.1.0"
