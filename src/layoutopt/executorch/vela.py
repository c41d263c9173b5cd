"""Read what Vela wrote with ``--verbose-performance``: one summary CSV and one per-layer CSV
per compiled partition, added up over the partitions of a model."""
from __future__ import annotations

import csv
from pathlib import Path

#: summary columns kept, as Vela names them
SUMMARY_FIELDS = ("cycles_total", "cycles_npu", "nn_macs", "sram_total_bytes", "dram_total_bytes",
                  "on_chip_flash_total_bytes", "off_chip_flash_total_bytes")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_layers(folder: Path) -> list[dict[str, str]]:
    """Vela's per-layer rows of one compiled partition, in order."""
    layers = sorted(Path(folder).glob("output/*_per-layer.csv"))
    if not layers:
        raise FileNotFoundError(f"Vela wrote no per-layer CSV under {folder}")
    return _rows(layers[0])


def read_summary(folders: list[Path]) -> dict:
    """Totals over the partitions: Vela's summary figures, plus the cycles and count of the
    Transpose operators Vela scheduled (its own, whatever TOSA op they came from)."""
    totals: dict = {field: 0 for field in SUMMARY_FIELDS}
    totals.update(transpose_cycles=0, transposes=0, partitions=0)
    for folder in folders:
        summaries = sorted(folder.glob("output/*_summary_*.csv"))
        layers = sorted(folder.glob("output/*_per-layer.csv"))
        if not summaries or not layers:
            raise FileNotFoundError(f"Vela wrote no performance CSVs under {folder}")
        (summary,) = _rows(summaries[0])
        for field in SUMMARY_FIELDS:
            totals[field] += int(float(summary[field]))
        for layer in _rows(layers[0]):
            if layer["NNG Operator"] == "Transpose":
                totals["transposes"] += 1
                totals["transpose_cycles"] += int(float(layer["Op Cycles"]))
        totals["partitions"] += 1
    return totals
