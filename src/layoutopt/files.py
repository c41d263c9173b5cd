"""Reading and writing ``.pt2`` files (``torch.export.save`` / ``torch.export.load``)."""
from __future__ import annotations

import os
import zipfile

import torch
from torch.export import ExportedProgram

from .errors import InputError


def load_program(path: str) -> ExportedProgram:
    if not os.path.exists(path):
        raise InputError(f"no such file: '{path}'")
    if os.path.isdir(path):
        raise InputError(f"'{path}' is a directory; pass a .pt2 file saved by torch.export.save")
    if os.path.getsize(path) == 0:
        raise InputError(f"'{path}' is empty; pass a .pt2 file saved by torch.export.save")
    if not zipfile.is_zipfile(path):
        raise InputError(f"'{path}' is not a .pt2 archive; save the program with torch.export.save")
    try:
        program = torch.export.load(path)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot load '{path}' as a torch.export program: {reason}") from None
    if not isinstance(program, ExportedProgram):
        raise InputError(f"'{path}' does not hold a torch.export.ExportedProgram")
    return program


def save_program(program: ExportedProgram, path: str, force: bool = False, source: str | None = None) -> None:
    if source is not None and os.path.exists(path) and os.path.samefile(path, source):
        raise InputError(f"refusing to overwrite the input file '{path}'; choose another output path")
    if os.path.exists(path) and not force:
        raise InputError(f"'{path}' exists; pass --force to overwrite it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InputError(f"output folder '{parent}' does not exist")
    torch.export.save(program, path)
