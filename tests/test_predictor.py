"""Model directories: written atomically, loaded without running code, checked on load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

import nntune
from nntune._atomic import write_dir, write_json


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return nntune.tune(dataset="iris", trials=1, max_epochs=5, out=out).model_dir


def test_model_directory_layout(model_dir):
    names = {p.name for p in model_dir.iterdir()}
    assert names == {"model.json", "model.safetensors", "preprocessor.skops", "scores.json"}
    config = json.loads((model_dir / "model.json").read_text())
    assert config["format"] == "nntune-model" and config["classes"] == ["setosa", "versicolor", "virginica"]
    assert set(json.loads((model_dir / "scores.json").read_text())["test_scores"]) >= {"accuracy"}


def test_predicting_leaves_the_callers_frame_as_it_was(model_dir):
    frame = nntune.data.load_tabular(dataset="iris").features.head(20)  # columns as the model reads them
    before = frame.copy()
    model = nntune.load(model_dir)
    first = model.predict_proba(frame)
    # All rows in order once read through a view of the frame, and scaled it in place.
    assert frame.equals(before)
    np.testing.assert_array_equal(model.predict_proba(frame), first)


def test_untrusted_types_in_the_preprocessor_are_refused(model_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    sio.dump(FunctionTransformer(func=eval), bad / "preprocessor.skops")
    with pytest.raises(nntune.ModelDirError, match="holds types nntune does not load: builtins.eval"):
        nntune.load(bad)


def test_incomplete_or_foreign_directories(model_dir, tmp_path):
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(model_dir, partial)
    (partial / "model.safetensors").unlink()
    with pytest.raises(nntune.ModelDirError, match="incomplete: model.safetensors is missing"):
        nntune.load(partial)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.json").write_text('{"format": "something-else"}')
    with pytest.raises(nntune.ModelDirError, match="is not an nntune model directory"):
        nntune.load(tmp_path / "other")


def test_predict_proba_refused_for_regression(tmp_path):
    result = nntune.tune(dataset="diabetes", trials=1, max_epochs=3, out=tmp_path / "r")
    with pytest.raises(nntune.DataError, match="predict_proba needs a classification model"):
        result.model.predict_proba(np.zeros((2, 10)))


def test_a_failed_write_leaves_the_old_directory_whole(tmp_path):
    target = tmp_path / "model"
    write_dir(target, lambda d: write_json(d / "a.json", {"v": 1}))

    def explode(d):
        write_json(d / "a.json", {"v": 2})
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_dir(target, explode)
    assert json.loads((target / "a.json").read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary left behind
    write_dir(target, lambda d: write_json(d / "b.json", {"v": 3}))
    assert sorted(p.name for p in target.iterdir()) == ["b.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
