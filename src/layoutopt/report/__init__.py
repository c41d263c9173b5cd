"""Reports: figures before and after a plan."""
from .report import Report, SCHEMA_VERSION

__all__ = ["Report", "SCHEMA_VERSION"]
