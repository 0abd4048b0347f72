"""`nntune compress` and `nntune export`: results on success, one line and exit 2 for bad input."""

from __future__ import annotations

import pytest

import nntune


def test_compress_and_export_commands(cli, run_dir, tmp_path):
    code, out, err = cli("compress", run_dir, "--method", "prune", "--sparsity", "0.5", "--structured",
                         "--steps", "1", "--finetune-epochs", "1", "-o", tmp_path / "p")
    assert code == 0, err
    assert "original" in out and "compressed" in out and (tmp_path / "p" / "model.json").exists()
    code, out, err = cli("export", run_dir, "--format", "onnx", "-o", tmp_path / "e" / "m.onnx",
                         "--model", tmp_path / "p")
    assert code == 0, err
    assert {p.name for p in (tmp_path / "e").iterdir()} == {"m.onnx", "m.preprocessor.skops", "m.onnx.json"}


@pytest.mark.parametrize("args, message", [
    (["--method", "squash"], "method must be one of prune, quantize, distill; got 'squash'"),
    (["--method", "prune", "--sparsity", "0"], "sparsity must be in (0, 1)"),
    (["--method", "prune", "--sparsity", "1.5"], "sparsity must be in (0, 1)"),
    (["--method", "quantize", "--student-units", "4"], "option 'student_units' applies to method distill"),
    (["--method", "distill", "--student-units", "64"], "student_units must be a width from 1 to 31"),
])
def test_bad_compress_input_is_one_line(cli, run_dir, tmp_path, args, message):
    code, out, err = cli("compress", run_dir, *args, "-o", tmp_path / "x")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


def test_bad_export_format_is_one_line(cli, run_dir, tmp_path):
    code, _, err = cli("export", run_dir, "--format", "tflite", "-o", tmp_path / "m.x")
    assert code == 2 and "format must be one of onnx, torchscript; got 'tflite'" in err
    assert len(err.strip().splitlines()) == 1 and not any(tmp_path.iterdir())


def test_distill_refuses_regression(cli, tmp_path):
    run = tmp_path / "reg"
    nntune.tune(dataset="diabetes", trials=1, max_epochs=2, out=run, report=False, threads=1,
                space={"n_layers": 1, "units": 16}, cv="none", final="refit")  # a regression model is all it needs
    code, _, err = cli("compress", run, "--method", "distill", "-o", tmp_path / "s")
    assert code == 2 and "distill needs a classification model" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "s").exists()
