"""The command line: exit codes, one-line errors, files never clobbered."""
import json
import os
import tempfile
import warnings

import pytest
import torch

from layoutopt import zoo
from layoutopt.cli import main
from layoutopt.errors import InputError, InternalError
from layoutopt.zoo import build


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model, inputs = build("shufflenet_nano")
    path = tmp_path_factory.mktemp("m") / "shuffle.pt2"
    torch.export.save(torch.export.export(model, inputs), str(path))
    return str(path)


def test_demo_of_a_conv1d_model_shows_rewrites_and_can_skip_them(capsys, tmp_path):
    js = tmp_path / "r.json"
    assert main(["demo", "--model", "wav2letter_nano", "--json", str(js)]) == 0
    assert "conv1d_to_conv2d x5" in capsys.readouterr().out
    assert json.loads(js.read_text())["transposes_after"] == 2
    assert main(["demo", "--model", "wav2letter_nano", "--no-rewrites", "--json", str(js)]) == 0
    assert json.loads(js.read_text())["transposes_after"] == 10


def test_demo_prints_the_report(capsys):
    assert main(["demo", "--model", "mobilenet_v2_nano"]) == 0
    out = capsys.readouterr().out
    assert "transposes" in out and "27" in out and "lower bound" in out


def test_optimize_writes_a_loadable_program_and_json(saved, tmp_path, capsys):
    out, js = tmp_path / "o.pt2", tmp_path / "r.json"
    before = os.path.getmtime(saved)
    assert main(["optimize", saved, "-o", str(out), "--target", "xnnpack", "--json", str(js)]) == 0
    report = json.loads(js.read_text())
    assert report["transposes_after"] == 3 and report["transposes_before"] == 25
    assert report["target"] == "xnnpack"
    program = torch.export.load(str(out))
    assert sum(n.target == torch.ops.aten.clone.default for n in program.graph.nodes) >= 1
    assert os.path.getmtime(saved) == before


def _error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("layoutopt: error: "), err
    return err[0]


def test_missing_file(capsys, tmp_path):
    assert main(["optimize", str(tmp_path / "none.pt2"), "-o", str(tmp_path / "o.pt2")]) == 2
    assert "no such file" in _error(capsys)


@pytest.mark.parametrize("content,expect", [(b"", "is empty"), (b"not a zip", "not a .pt2 archive")])
def test_unreadable_files(capsys, tmp_path, content, expect):
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(content)
    assert main(["optimize", str(bad), "-o", str(tmp_path / "o.pt2")]) == 2
    assert expect in _error(capsys)
    assert bad.read_bytes() == content


def test_truncated_archive(capsys, saved, tmp_path):
    cut = tmp_path / "cut.pt2"
    data = open(saved, "rb").read()
    cut.write_bytes(data[: len(data) // 2])
    assert main(["optimize", str(cut), "-o", str(tmp_path / "o.pt2")]) == 2
    _error(capsys)


def test_existing_output_needs_force(capsys, saved, tmp_path):
    out = tmp_path / "o.pt2"
    out.write_bytes(b"keep me")
    assert main(["optimize", saved, "-o", str(out)]) == 2
    assert "--force" in _error(capsys)
    assert out.read_bytes() == b"keep me"
    assert main(["optimize", saved, "-o", str(out), "--force"]) == 0


def test_unknown_target_is_one_line_and_exit_2(capsys, saved, tmp_path):
    assert main(["optimize", saved, "-o", str(tmp_path / "o.pt2"), "--target", "npu9000"]) == 2
    assert "unknown target 'npu9000'; choose one of: ethos-u55" in _error(capsys)
    assert not (tmp_path / "o.pt2").exists()


def test_unknown_demo_model_and_io_layout_are_one_line(capsys):
    assert main(["demo", "--model", "nope"]) == 2
    assert "unknown model 'nope'" in _error(capsys)
    assert main(["demo", "--io-layout", "nhwc"]) == 2
    assert "io_layout must be" in _error(capsys)


def test_saved_program_is_byte_identical_across_runs(saved, tmp_path):
    outs = []
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        out = tmp_path / sub / "opt.pt2"
        assert main(["optimize", saved, "-o", str(out)]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_zip_that_is_not_an_exported_program(capsys, tmp_path):
    import zipfile

    other = tmp_path / "other.pt2"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("something/else.txt", "hello")
    assert main(["optimize", str(other), "-o", str(tmp_path / "o.pt2")]) == 2
    assert "cannot load" in _error(capsys)


@pytest.mark.parametrize("exc", [InternalError("plan failed its own check"), RuntimeError("boom")])
def test_a_bug_exits_1_with_one_line_and_the_traceback_in_a_file(capsys, monkeypatch, tmp_path, exc):
    def fail(name):
        raise exc

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(zoo, "build", fail)
    assert main(["demo", "--model", "shufflenet_nano"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"layoutopt: internal error ({type(exc).__name__}: {exc}); "
                                               "this is a layoutopt bug, please report it"), err
    path = err[0].split("saved to ")[1]
    assert os.path.dirname(path) == str(tmp_path) and os.path.basename(path).startswith("layoutopt-crash-")
    saved = open(path).read()
    assert "command: layoutopt demo --model shufflenet_nano" in saved
    assert "Traceback (most recent call last)" in saved and "in fail" in saved
    assert f"{type(exc).__name__}: {exc}" in saved


def test_interrupt_exits_130(capsys, monkeypatch):
    def stop(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(zoo, "build", stop)
    assert main(["demo"]) == 130
    assert capsys.readouterr().err == "layoutopt: interrupted\n"


def test_only_known_library_chatter_is_silenced(monkeypatch):
    def noisy(name):
        # torch's own pytree deprecation, raised as deepcopy re-creates a LeafSpec
        warnings.warn_explicit("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning,
                               "copyreg.py", 105, module="copyreg")
        warnings.warn("a warning about the user's model", UserWarning)
        raise InputError("stop here")

    monkeypatch.setattr(zoo, "build", noisy)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["demo"]) == 2
    assert [str(w.message) for w in seen] == ["a warning about the user's model"]
