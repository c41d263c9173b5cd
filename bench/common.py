"""What the bench commands share: writing their rows as JSON."""
from __future__ import annotations

import json
import os


def write_json(rows: list[dict], path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(rows, f, indent=2)
    print(f"wrote {path}")
