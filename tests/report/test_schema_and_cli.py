"""Machine-readable output: the report follows its published, versioned JSON schema; the CLI's
--html, --explain and zoo commands."""
import json
import shutil

import pytest
import torch

import layoutopt
from layoutopt.cli import main
from layoutopt.report.report import SCHEMA_VERSION, schema
from layoutopt.zoo import build

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (test extra)")


@pytest.mark.parametrize("plan", [True, False])
def test_reports_follow_the_schema(plan):
    d = layoutopt.optimize(*build("shufflenet_nano"), target="ethos-u55", plan=plan).report.to_dict()
    jsonschema.validate(d, schema())
    assert d["schema_version"] == SCHEMA_VERSION == 2
    assert (d["lower_bound_bytes"] is None) == (not plan)


def test_schema_rejects_a_report_without_the_gate_field():
    d = layoutopt.optimize(*build("wav2letter_nano")).report.to_dict()
    del d["transposes_after"]
    with pytest.raises(jsonschema.ValidationError, match="'transposes_after' is a required property"):
        jsonschema.validate(d, schema())


def test_schema_command_prints_the_schema(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == schema()


def test_explain_names_the_reason_and_the_cost_of_the_alternative(capsys):
    assert main(["demo", "--model", "shufflenet_nano", "--no-verify", "--explain", "conv2d_1"]) == 0
    out = capsys.readouterr().out.split("conv2d_1: ")[1]
    assert out.splitlines()[0] == "aten.conv2d.default, output (1, 16, 16, 16)"
    assert "why: ethos-u55 runs conv ops with channels-last kernels" in out
    assert "channels_last        12,288 bytes  (chosen)" in out
    assert "contiguous           28,672 bytes  (+16,384 bytes)" in out


def test_explain_of_an_unknown_node_is_one_line_with_suggestions(capsys):
    assert main(["demo", "--model", "shufflenet_nano", "--no-verify", "--explain", "conv2x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("layoutopt: error: no node 'conv2x' in the optimized program; "
                                               "did you mean: conv2d")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_html_option_writes_the_page(tmp_path, capsys):
    path = tmp_path / "r.html"
    assert main(["demo", "--model", "wav2letter_nano", "--html", str(path)]) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    assert "<svg" in path.read_text() and "conv1d_to_conv2d" in path.read_text()


def test_zoo_prints_a_row_per_model_and_writes_json(tmp_path, capsys):
    js = tmp_path / "zoo.json"
    assert main(["zoo", "--models", "shufflenet_nano,wav2letter_nano", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "shufflenet_nano" in out and "25 -> 1" in out and "10 -> 2" in out
    data = json.loads(js.read_text())
    assert data["target"] == "ethos-u55"
    assert [(r["model"], r["transposes_before"], r["transposes_after"]) for r in data["rows"]] == [
        ("shufflenet_nano", 25, 1), ("wav2letter_nano", 10, 2)]


def test_zoo_with_an_unknown_model_is_one_line(capsys):
    assert main(["zoo", "--models", "resnet9000"]) == 2
    assert capsys.readouterr().err.startswith("layoutopt: error: unknown model(s) resnet9000; choose from: ")


def test_public_models_build_by_name():
    pytest.importorskip("transformers")
    model, inputs = build("hf_resnet_small")
    assert isinstance(model, torch.nn.Module) and inputs[0].shape == (1, 3, 64, 64)
