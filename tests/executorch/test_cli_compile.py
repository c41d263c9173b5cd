"""``layoutopt compile``: the stock and layoutopt flows side by side from a saved .pt2."""
import json

import pytest
import torch

pytest.importorskip("executorch", reason="the ExecuTorch flows need the executorch extra "
                                         "(pip install 'layoutopt[executorch]')")

from layoutopt.cli import main  # noqa: E402
from layoutopt.zoo.models import Wav2LetterNano  # noqa: E402

pytestmark = pytest.mark.slow  # whole ExecuTorch flows from the command line


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "w2l.pt2"
    torch.export.save(torch.export.export(Wav2LetterNano().eval(), (torch.randn(1, 16, 64),)), path)
    return str(path)


def test_compare_prints_both_columns_and_writes_json(saved, tmp_path, capsys):
    js = tmp_path / "figures.json"
    out = tmp_path / "out"
    assert main(["compile", "--backend", "cortex-m", saved, "-o", str(out), "--compare", "--json", str(js)]) == 0
    printed = capsys.readouterr().out
    assert "stock" in printed and "layoutopt" in printed and "CMSIS-NN conv/linear kernels" in printed
    stock, ours = json.loads(js.read_text())
    assert (stock["optimized"], ours["optimized"]) == (False, True)
    assert stock["CMSIS-NN conv/linear kernels"] == 0 and ours["CMSIS-NN conv/linear kernels"] == 5
    assert (out / "stock" / "model.pte").exists() and (out / "layoutopt" / "model.pte").exists()


def test_no_optimize_is_the_stock_flow(saved, tmp_path):
    js = tmp_path / "figures.json"
    assert main(["compile", "--backend", "cortex-m", saved, "-o", str(tmp_path / "o"), "--no-optimize",
                 "--json", str(js)]) == 0
    (only,) = json.loads(js.read_text())
    assert only["optimized"] is False and only["float conv/linear left"] == 5


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["compile", "--backend", "ethos-u", str(tmp_path / "none.pt2"), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"layoutopt: error: no such file: '{tmp_path / 'none.pt2'}'"]


def test_unknown_ethos_target_is_one_line(saved, tmp_path, capsys):
    assert main(["compile", "--backend", "ethos-u", "--target", "ethos-u99", saved, "-o", str(tmp_path)]) == 2
    assert "unknown Ethos-U target 'ethos-u99'" in capsys.readouterr().err


def test_zoo_compare_adds_the_flow_figures(tmp_path, capsys):
    js = tmp_path / "zoo.json"
    assert main(["zoo", "--models", "wav2letter_nano", "--target", "cortex-m", "--compare", "executorch",
                 "--json", str(js)]) == 0
    (row,) = json.loads(js.read_text())["rows"]
    # every conv1d a CMSIS-NN kernel; the NCW input and output (16 and 12 channels) need one
    # transpose each into and out of NHWC (stock's float convolutions need none)
    assert row["executorch"] == {"CMSIS-NN conv/linear kernels": [0, 5], "cortex_m transposes": [0, 2]}
    out = capsys.readouterr().out
    assert "CMSIS-NN" in out and "0 -> 5" in out
