"""What nntune refuses: writing over what it does not own, loading what could run code, mixing
two configurations in one study, showing a password, and odd input that would end in a bare
Python error. Each case is one line on stderr and exit code 2, with nothing written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import optuna
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.datasets import dump_svmlight_file
from sklearn.preprocessing import FunctionTransformer

import nntune
from nntune.predictor import TRUSTED_NODES, TRUSTED_TYPES, stored_types

TINY = {"trials": 2, "max_epochs": 2, "pruner": "none"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny finished run on iris, shared by the tests that only read it (copy before writing)."""
    out = tmp_path_factory.mktemp("safety") / "run"
    nntune.tune(dataset="iris", out=out, study="iris", report=False, **TINY)
    return out


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _user_folder(tmp_path, name="keep"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "thesis.tex").write_text("three years of work")
    return folder


# -- files: write only where nntune owns the place ------------------------------------------

def test_compress_never_replaces_its_run_or_model(cli, run, tmp_path):
    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    before = _tree(mine)
    for target in (mine, mine / "model"):
        code, _, err = cli("compress", mine, "--method", "quantize", "--out", target)
        assert code == 2 and "needs a directory of its own" in err
    assert _tree(mine) == before


def test_every_writing_command_refuses_a_folder_or_file_of_the_users(cli, run, tmp_path):
    keep = _user_folder(tmp_path)
    user_file = tmp_path / "notes.html"
    user_file.write_text("<html>mine</html>")
    user_csv = tmp_path / "mine.csv"
    user_csv.write_text("a,b\n1,2\n")
    commands = [
        ("tune", "--dataset", "iris", "--trials", "1", "--out", keep),
        ("compress", run, "--method", "quantize", "--out", keep),
        ("export", run, "--out", keep / "thesis.tex"),
        ("report", run, "--out", user_file),
        ("report", run, "--png", keep),
        ("ablate", run, "--out", user_file),
        ("predict", run / "model", "--data", user_csv, "--out", user_csv),
        ("compare", "--dataset", "iris", "--out", keep),
        ("schema", "--out", user_csv),
    ]
    for args in commands:
        code, _, err = cli(*args)
        assert code == 2, (args, err)
        assert "exists and is not" in err and "choose another" in err, (args, err)
        assert len(err.strip().splitlines()) == 1
    assert _tree(keep) == ["thesis.tex"] and (keep / "thesis.tex").read_text() == "three years of work"
    assert user_file.read_text() == "<html>mine</html>" and user_csv.read_text() == "a,b\n1,2\n"


def test_nntune_replaces_what_it_wrote(cli, run, tmp_path):
    rows = tmp_path / "rows.csv"
    nntune.data.load_tabular(dataset="iris").features.head(5).to_csv(rows, index=False)
    predictions = tmp_path / "predictions.csv"
    for _ in range(2):  # the second run replaces the first one's predictions
        code, _, err = cli("predict", run / "model", "--data", rows, "--out", predictions)
        assert code == 0, err
    assert len(predictions.read_text().splitlines()) == 6
    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    for _ in range(2):
        code, _, err = cli("compress", mine, "--method", "quantize")
        assert code == 0, err
    assert (mine / "model-int8" / "model.json").exists() and (mine / "result.json").exists()


# -- model files: loading runs nothing ----------------------------------------------------------

def test_a_planted_scikit_learn_function_is_refused_before_loading(cli, run, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(run / "model", bad)
    target = tmp_path / "planted.txt"
    # A ColumnTransformer whose FunctionTransformer would call a scikit-learn function that writes
    # a file: every type in it is scikit-learn's, which a prefix check trusts.
    planted = ColumnTransformer([("x", FunctionTransformer(
        func=dump_svmlight_file, kw_args={"y": np.zeros(1), "f": str(target)}), [0])])
    sio.dump(planted, bad / "preprocessor.skops")
    with pytest.raises(nntune.ModelDirError, match="dump_svmlight_file"):
        nntune.load(bad)
    rows = tmp_path / "rows.npy"
    np.save(rows, np.zeros((2, 4)))
    code, _, err = cli("predict", bad, "--data", rows)
    assert code == 2 and "FunctionTransformer" in err and "dump_svmlight_file" in err
    assert not target.exists()


def test_the_trusted_types_are_exactly_what_nntune_writes(tmp_path):
    """Fitted on tables of every column kind, nntune's preprocessing needs no type outside the
    list (so a scikit-learn or skops upgrade that changes them shows up here, not in users' hands)."""
    import pandas as pd

    from nntune.data import conform, infer_schema, make_preprocessor

    rng = np.random.default_rng(0)
    n = 200
    frames = [
        pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice([f"v{i}" for i in range(40)], n),
                      "t": pd.date_range("2020", periods=n), "empty": [np.nan] * n}),
        pd.DataFrame({"i": rng.integers(0, 5, n), "b": rng.random(n) > 0.5, "o": rng.choice(["p", None], n)}),
        pd.DataFrame({"only": rng.choice(["p", "q"], n)}),
    ]
    found = set()
    for i, frame in enumerate(frames):
        schema = infer_schema(frame)
        file = tmp_path / f"{i}.skops"
        sio.dump(make_preprocessor(schema).fit(conform(frame, schema)), file)
        found |= stored_types(file)
    assert {name for name, _ in found} <= TRUSTED_TYPES
    assert {node for _, node in found} <= TRUSTED_NODES


def test_predict_refuses_a_pickled_object_array(cli, run, tmp_path):
    rows = tmp_path / "objects.npy"
    np.save(rows, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    code, _, err = cli("predict", run / "model", "--data", rows)
    assert code == 2 and "object array" in err


# -- studies: one configuration per study --------------------------------------------------------

@pytest.mark.parametrize("change, key", [
    ({"metric": "balanced_accuracy"}, "search.metric"),
    ({"cv": 3}, "search.cv"),
    ({"seed": 1}, "seed"),
    ({"val_size": 0.3}, "data.val_size"),
    ({"test_size": 0.3}, "data.test_size"),
    ({"space": {"lr": 0.01}}, "search.space"),
    ({"max_epochs": 3}, "training.max_epochs"),
])
def test_a_resume_with_another_configuration_is_refused(run, tmp_path, change, key):
    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    before = (mine / "study.db").read_bytes()
    with pytest.raises(nntune.ConfigError, match=rf"another configuration \({key}: stored .*, now .*--study NEW"):
        nntune.tune(dataset="iris", out=mine, study="iris", report=False, resume=True,
                    **{**TINY, "trials": 3, **change})
    assert (mine / "study.db").read_bytes() == before  # no trial added, nothing written


def test_a_resume_may_change_what_only_bounds_the_work(run, tmp_path):
    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    result = nntune.tune(dataset="iris", out=mine, study="iris", report=False, resume=True,
                         **{**TINY, "trials": 3}, timeout=120, threads=1)
    assert result.n_trials == {"complete": 3}


# -- secrets -----------------------------------------------------------------------------------

def test_a_storage_password_is_never_shown_or_stored(postgres_url, tmp_path, capsys, cli):
    with_password = postgres_url.replace("://postgres@", "://postgres:hunter2@")
    assert "hunter2" in with_password  # (trust authentication ignores it)
    code, out, err = cli("tune", "--dataset", "iris", "--trials", "1", "--max-epochs", "2", "--storage",
                         with_password, "--study", "secret", "--out", tmp_path / "run", "--json", "--no-report")
    assert code == 0, err
    assert "hunter2" not in out + err and json.loads(out)["storage"].count("***") == 1
    assert "hunter2" not in (tmp_path / "run" / "result.json").read_text()
    attrs = optuna.load_study(study_name="secret", storage=postgres_url).user_attrs
    assert "hunter2" not in json.dumps(attrs)
    code, out, err = cli("report", tmp_path / "run")  # reconnects with the masked URL (no password)
    assert code == 0, err
    unreachable = "postgresql://alice:hunter2@127.0.0.1:1/nntune"
    code, out, err = cli("tune", "--dataset", "iris", "--trials", "1", "--storage", unreachable,
                         "--out", tmp_path / "other")
    assert code == 2 and "hunter2" not in err and "alice:***@" in err and "Traceback" not in err


# -- results that are what they say ------------------------------------------------------------

def test_failed_trials_are_counted_with_their_most_common_reason(tmp_path, cli):
    from torch import nn

    def build_model(hp):
        width = hp.int("width", 1, 8)
        if width % 2:
            raise nntune.TrialFailed("odd widths are not built")
        return nn.Sequential(nn.Linear(hp.input_dim, width), nn.ReLU(), nn.Linear(width, hp.output_dim))

    result = nntune.tune(dataset="iris", build_model=build_model, trials=8, max_epochs=2, strategy="random",
                         out=tmp_path / "run", report=False)
    failed = result.n_trials.get("fail", 0)
    assert failed > 0 and result.failed["trials"] == failed
    assert "odd widths" in result.failed["most_common"]
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["failed"]["trials"] == failed
    code, out, _ = cli("show", tmp_path / "run")
    assert code == 0 and "odd widths" in out


def test_a_retrain_cut_short_records_the_epochs_it_trained(tmp_path, monkeypatch, caplog):
    import logging
    import time

    from nntune.execution import Budget

    caplog.set_level(logging.WARNING, logger="nntune")
    from nntune.search import KeptTrials

    monkeypatch.setattr(Budget, "final_deadline", lambda self: time.monotonic())  # already due
    # As when the trial ran in another worker: no validated model at hand to deliver instead
    # (with one, the cut-short refit gives way to it: tests/execution/test_final.py).
    monkeypatch.setattr(KeptTrials, "offer", lambda self, *args: None)
    result = nntune.tune(dataset="iris", trials=1, max_epochs=20, pruner="none", out=tmp_path / "run",
                         report=False, final="refit")
    info = json.loads((result.model_dir / "model.json").read_text())
    assert info["epochs"] == 1 < info["planned_epochs"]
    assert any("planned epochs" in w for w in result.warnings)
    assert "planned epochs" in caplog.text


# -- odd input -------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (("--seed", "-1"), "seed"),
    (("--timeout", "-5"), "timeout"),
    (("--family", "nope"), "family must be one of"),
])
def test_odd_options_are_one_line_and_exit_2(cli, tmp_path, args, words):
    code, _, err = cli("tune", "--dataset", "iris", "--trials", "1", "--out", tmp_path / "run", *args)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_storage_file_of_the_users_is_not_written_to(cli, tmp_path):
    import sqlite3

    log = tmp_path / "notes.log"
    log.write_text("my own log\n")
    database = tmp_path / "mine.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE grades (name TEXT)")
    before = database.read_bytes()
    for storage in (str(log), f"sqlite:///{database}"):
        code, _, err = cli("tune", "--dataset", "iris", "--trials", "1", "--storage", storage,
                           "--out", tmp_path / "run")
        assert code == 2 and "choose another --storage" in err
    assert log.read_text() == "my own log\n" and database.read_bytes() == before


def test_a_run_directory_of_another_study_is_not_replaced(cli, run, tmp_path):
    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    before = _tree(mine)
    code, _, err = cli("tune", "--dataset", "iris", "--trials", "1", "--study", "other", "--out", mine)
    assert code == 2 and "holds the run of study 'iris'" in err
    assert _tree(mine) == before


def test_workers_that_failed_as_a_whole_are_reported():
    from nntune.api import _failures
    from nntune.reports._tables import failures_text

    study = optuna.create_study()
    failed = _failures(study, ["RuntimeError: the node ran out of memory", "RuntimeError: the node ran out of memory"])
    assert failed["workers"] == 2 and failed["trials"] == 0
    assert "2 workers failed (RuntimeError: the node ran out of memory)" in failures_text(failed)
    assert _failures(study) == {}
