"""Curriculum, transfer learning, autoencoder pretraining and the compress step through
`nntune tune`: what reaches the trials and the saved model, and the errors users see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import nntune
from nntune.errors import ConfigError, DataError
from nntune.predictor import load_pretrained

from .._references import assert_run_learned, run_references
from .conftest import trials_of

TINY = {"max_epochs": 4, "patience": 4, "threads": 1, "report": False}
# How far below logistic regression a tuned network may score on the run's test rows: 6 of
# churn's 60 (logistic regression scores about 0.92 there, the majority class 0.52).
MARGIN = 0.1


def assert_learned(accuracy: float, run_dir: Path, data: Any = None) -> None:
    assert_run_learned(accuracy, run_dir, data, MARGIN)


def test_a_curriculum_column_orders_the_rows_and_is_no_feature(tmp_path, churn_frame):
    frame = churn_frame.assign(hardness=np.arange(len(churn_frame), dtype=float))
    path = tmp_path / "churn.csv"
    frame.to_csv(path, index=False)
    # A plain network: in 4 paced epochs numerical embeddings have not yet learned the linear signal.
    result = nntune.tune(path, target="churned", trials=1, out=tmp_path / "run", curriculum="easy_first",
                         curriculum_column="hardness", pacing="step", space={"embedding": "none"}, **TINY)
    params = result.model.info["params"]
    assert (params["curriculum"], params["pacing"]) == ("easy_first", "step")
    assert "hardness" not in [c.name for c in result.model.schema.columns]
    assert_learned(result.test_scores["accuracy"], result.run_dir)  # the paced rows still teach the table
    # The saved model predicts on rows without the column.
    assert len(result.model.predict(churn_frame.drop(columns=["churned"]))) == len(churn_frame)
    with pytest.raises(DataError, match="curriculum column 'hard' is not in the data"):
        nntune.tune(path, target="churned", trials=1, out=tmp_path / "bad", curriculum="easy_first",
                    curriculum_column="hard", **TINY)


def test_a_model_directory_starts_a_new_run_with_its_shape_fixed(tmp_path, churn_csv):
    source = nntune.tune(churn_csv, target="churned", trials=1, out=tmp_path / "source", **TINY)
    result = nntune.tune(churn_csv, target="churned", trials=2, out=tmp_path / "transfer", pruner="none",
                         pretrained=str(source.model_dir), freeze_layers=1, **TINY)
    shape = {k: source.model.info["params"][k] for k in ("n_layers", "units", "norm")}
    assert {k: result.model.info["params"][k] for k in shape} == shape
    assert not {"n_layers", "units"} & set(result.best_params)  # fixed, not searched
    assert result.n_trials == {"complete": 2}
    assert_learned(result.test_scores["accuracy"], result.run_dir)
    # The first hidden layer was frozen through the final fit: it still holds the source's weights.
    before, after = load_pretrained(source.model_dir), load_pretrained(result.model_dir)
    first = [k for k in before if k.startswith("blocks.0.")]
    assert first and all(torch.equal(before[k], after[k]) for k in first)
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("head."))


def test_weights_that_fit_no_network_of_the_run_are_refused_before_the_study(tmp_path, churn_csv, cli):
    file = tmp_path / "other.safetensors"
    save_file({"blocks.0.linear.weight": torch.zeros(7, 3), "blocks.0.linear.bias": torch.zeros(7),
               "head.weight": torch.zeros(1, 7), "head.bias": torch.zeros(1)}, str(file))
    code, _, err = cli("tune", "--data", churn_csv, "--target", "churned", "--trials", "1", "--out",
                       tmp_path / "run", "--pretrained", file, "--no-report", "--quiet")
    assert code == 2
    assert "pretrained weights do not fit this network: blocks.0.linear.weight is (7, 3) in the file" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_unlabeled_rows_feed_autoencoder_pretraining(tmp_path, churn_frame):
    labelled, unlabeled = tmp_path / "labelled.csv", tmp_path / "more.csv"
    churn_frame.to_csv(labelled, index=False)
    churn_frame.drop(columns=["churned"]).to_csv(unlabeled, index=False)
    result = nntune.tune(labelled, target="churned", trials=1, out=tmp_path / "run", unlabeled=str(unlabeled),
                         pretrain_epochs=2, space={"n_layers": 2}, **TINY)
    assert result.model.info["params"]["pretrain_epochs"] == 2
    assert_learned(result.test_scores["accuracy"], result.run_dir)
    churn_frame.drop(columns=["churned", "plan"]).to_csv(unlabeled, index=False)
    with pytest.raises(DataError, match="unlabeled data '.*more.csv': the data lacks column.*plan"):
        nntune.tune(labelled, target="churned", trials=1, out=tmp_path / "bad", unlabeled=str(unlabeled),
                    pretrain_epochs=2, **TINY)
    with pytest.raises(ConfigError, match="--pretrain-epochs"):
        nntune.tune(labelled, target="churned", trials=1, out=tmp_path / "bad", unlabeled=str(unlabeled), **TINY)


def test_the_compress_step_runs_after_tuning(tmp_path, churn_frame):
    config = {"compress": [{"method": "prune", "sparsity": 0.5, "structured": True, "finetune_epochs": 1},
                           "quantize"]}
    result = nntune.tune(churn_frame, target="churned", config=config, trials=1, out=tmp_path / "run",
                         space={"n_layers": 2, "units": 32, "embedding": "none"}, **TINY)  # structured: plain
    methods = [c["method"] for c in result.compression]
    assert methods == ["prune", "quantize"]
    pruned, quantized = result.compression
    assert pruned["compressed"]["params"] < pruned["original"]["params"]
    # Scores on the run's test rows: the tuned float model learned the table, and int8 keeps
    # its accuracy within 3 of the 60 rows.
    original = quantized["original"]["score"]
    assert original >= run_references(result.run_dir, churn_frame)["constant"] + 2 * MARGIN
    assert quantized["compressed"]["score"] >= original - 0.05
    stored = json.loads((result.run_dir / "result.json").read_text())["compression"]
    assert [c["model_dir"] for c in stored] == [str(result.run_dir / "model-pruned"),
                                                str(result.run_dir / "model-int8")]
    rows = churn_frame.drop(columns=["churned"])
    for summary in stored:
        model = nntune.load(summary["model_dir"])
        assert isinstance(model.predict(rows), np.ndarray | pd.Series | list)
        assert len(model.predict(rows)) == len(rows)
    assert trials_of(result.storage, result.study.study_name)[0].state.name == "COMPLETE"


def test_what_only_tables_take_is_refused_before_the_search(tmp_path):
    with pytest.raises(ConfigError, match="autoencoder pretraining .* works with the mlp family on tables"):
        nntune.tune(dataset="digits", kind="image", pretrain_epochs=2, out=tmp_path / "a", **TINY)
    with pytest.raises(ConfigError, match="curricula and unlabeled rows work with tables; this data is image"):
        nntune.tune(dataset="digits", kind="image", curriculum="easy_first", out=tmp_path / "b", **TINY)
    with pytest.raises(ConfigError, match="option 'temperature' applies to method distill"):
        nntune.tune(dataset="iris", config={"compress": [{"method": "prune", "temperature": 2}]},
                    out=tmp_path / "c", **TINY)
    assert not any((tmp_path / d).exists() for d in "abc")
