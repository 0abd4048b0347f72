from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from torch import nn

from nntune.config._space import ParamSpec
from nntune.errors import ConfigError
from nntune.models import ModelMeta, build_model
from nntune.training import (
    CURRICULUM_DEFAULTS,
    CURRICULUM_SPACE,
    Curriculum,
    Metric,
    _curriculum,
    difficulty_from_column,
    difficulty_from_loss,
    fit,
    make_curriculum,
    make_head,
    pacing_share,
)


def separable(n=300, n_classes=2, seed=0):
    X, y = make_classification(n, n_features=6, n_informative=4, n_redundant=0, n_classes=n_classes,
                               class_sep=2.0, random_state=seed)
    return X.astype(np.float32), y.astype(np.int64)


@pytest.mark.parametrize(("pacing", "epochs", "start", "full", "expected"), [
    # full at epoch ceil(0.5 * 10) = 5: t = 0, 1/4, 2/4, 3/4, then the whole set
    ("linear", 10, 0.25, 0.5, [0.25, 0.4375, 0.625, 0.8125, 1.0, 1.0]),
    ("root", 10, 0.25, 0.5, [0.25, 0.625, 0.25 + 0.75 * math.sqrt(0.5), 0.25 + 0.75 * math.sqrt(0.75), 1.0, 1.0]),
    # full at epoch 9: four equal steps of 0.2, two epochs each
    ("step", 9, 0.2, 1.0, [0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8, 0.8, 1.0]),
])
def test_pacing_shares(pacing, epochs, start, full, expected):
    shares = [pacing_share(pacing, epoch, epochs, start, full) for epoch in range(1, len(expected) + 1)]
    assert shares == pytest.approx(expected, abs=1e-12)


def test_pacing_full_in_the_first_epoch_means_no_curriculum():
    assert pacing_share("linear", 1, 10, 0.25, 0.1) == 1.0


class CountingRows(nn.Module):
    """Records the rows of every training batch (eval-mode calls are not training)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.batches: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.batches.append(x.detach().clone())
        return self.inner(x)


def test_fit_trains_each_epoch_on_the_paced_rows():
    X, y = separable()
    head = make_head("binary", y, 2, {})
    curriculum = Curriculum(np.arange(len(X), dtype=float), "easy_first", "linear", start=0.25, full=0.5,
                            epochs=8, batch_size=32)
    model = CountingRows(build_model("mlp", {"n_layers": 1, "units": 8}, ModelMeta(6, 2, "binary")))
    seen, first_epoch = [], []

    def on_epoch_end(epoch, logs):
        rows = torch.cat(model.batches)
        seen.append(len(rows))
        if epoch == 1:
            first_epoch.extend(map(tuple, rows.tolist()))
        model.batches.clear()

    fit(model, head, X, y, {"batch_size": 32}, epochs=8, row_schedule=curriculum, on_epoch_end=on_epoch_end)
    # shares 0.25, 0.5, 0.75, then all 300 rows; 225 = 7 * 32 + 1 leaves a final batch of one
    # row, which the trainer drops
    assert seen == [75, 150, 224, 300, 300, 300, 300, 300]
    assert sorted(first_epoch) == sorted(map(tuple, X[:75].tolist()))


def test_patience_counts_from_the_first_epoch_on_every_row():
    """A validation score that only gets worse would stop training after `patience` epochs;
    with a curriculum still adding rows, patience starts when every row is in."""
    X, y = separable()
    head = make_head("binary", y, 2, {})
    curriculum = Curriculum(np.arange(len(X), dtype=float), "easy_first", "linear", start=0.1, full=0.5,
                            epochs=20, batch_size=32)
    model = build_model("mlp", {"n_layers": 1, "units": 8}, ModelMeta(6, head.output_dim, "binary"))
    calls = iter(range(1000))
    worsening = Metric("worsening", lambda y_true, scores: -next(calls), "maximize", ("binary",))
    result = fit(model, head, X, y, {"batch_size": 32, "patience": 2}, X_val=X[:50], y_val=y[:50],
                 metric=worsening, epochs=20, row_schedule=curriculum)
    first_full = next(e for e in range(1, 21) if curriculum.rows(e) is None)
    assert first_full == 10
    # patience 2: epochs 10 and 11, the first two on every row, did not improve (without the
    # rule, training stops at epoch 3)
    assert result.stop_reason == "early_stopping" and result.epochs_run == first_full + 1
    assert result.best_epoch == 1


def test_orders_pick_the_easiest_the_hardest_or_a_fixed_random_share():
    difficulty = np.random.default_rng(1).permutation(100).astype(float)
    kwargs = {"start": 0.25, "full": 0.5, "epochs": 10, "batch_size": 8}
    easy = Curriculum(difficulty, "easy_first", **kwargs).rows(1)
    hard = Curriculum(difficulty, "hard_first", **kwargs).rows(1)
    assert sorted(difficulty[easy]) == list(range(25))
    assert sorted(difficulty[hard]) == list(range(75, 100))

    random = Curriculum(difficulty, "random", seed=3, **kwargs)
    assert len(random.rows(1)) == 25
    np.testing.assert_array_equal(random.rows(1), random.rows(1))
    np.testing.assert_array_equal(random.rows(1), Curriculum(-difficulty, "random", seed=3, **kwargs).rows(1))
    assert set(random.rows(1)) != set(Curriculum(difficulty, "random", seed=4, **kwargs).rows(1))
    # each epoch extends the previous one's rows, and the whole set comes back as None
    assert set(random.rows(1)) < set(random.rows(2))
    assert random.rows(5) is None


def test_an_epoch_gets_at_least_one_batch():
    curriculum = Curriculum(np.arange(100.0), "easy_first", start=0.05, full=0.5, epochs=10, batch_size=32)
    assert len(curriculum.rows(1)) == 32
    assert Curriculum(np.arange(10.0), "easy_first", start=0.1, epochs=10, batch_size=64).rows(1) is None


def test_mislabelled_rows_score_hardest():
    X, y = separable()
    flipped = np.random.default_rng(0).choice(len(y), 10, replace=False)
    y[flipped] = 1 - y[flipped]
    before = torch.get_rng_state()
    scores = difficulty_from_loss(X, y, "binary", 2, {}, seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    hardest_decile = set(np.argsort(-scores)[: len(y) // 10])
    assert len(hardest_decile & set(flipped)) >= 8
    np.testing.assert_array_equal(scores, difficulty_from_loss(X, y, "binary", 2, {}, seed=0))


def test_regression_outliers_score_hardest():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=200)
    outliers = rng.choice(200, 5, replace=False)
    y[outliers] += 8.0
    scores = difficulty_from_loss(X, y, "regression", 0, {"loss": "huber"}, seed=0)
    assert set(np.argsort(-scores)[:10]) >= set(outliers)


def test_no_row_is_scored_by_a_network_trained_on_it(monkeypatch):
    X, y = separable(120, n_classes=3)
    trained, scored = [], []
    predict_outputs = _curriculum.predict_outputs

    def recording_fit(model, head, X_train, *args, **kwargs):
        trained.append({row.tobytes() for row in X_train})
        return fit(model, head, X_train, *args, **kwargs)

    def recording_predict(model, X_held):
        scored.append({row.tobytes() for row in X_held.numpy()})
        return predict_outputs(model, X_held)

    monkeypatch.setattr(_curriculum, "fit", recording_fit)
    monkeypatch.setattr(_curriculum, "predict_outputs", recording_predict)
    difficulty_from_loss(X, y, "multiclass", 3, {}, folds=3, epochs=2, seed=0)
    assert len(trained) == len(scored) == 3
    assert all(not (train & held) for train, held in zip(trained, scored, strict=True))
    assert set().union(*scored) == {row.tobytes() for row in X}


def test_make_curriculum_follows_the_recipe(monkeypatch):
    X, y = separable(100)
    assert make_curriculum(CURRICULUM_DEFAULTS, X, y, "binary", 2, epochs=10) is None

    def no_scoring(*args, **kwargs):
        raise AssertionError("the random control needs no difficulty")

    monkeypatch.setattr(_curriculum, "difficulty_from_loss", no_scoring)
    control = make_curriculum({"curriculum": "random", "batch_size": 8}, X, y, "binary", 2, epochs=10)
    assert len(control.rows(1)) == 25
    given = make_curriculum({"curriculum": "hard_first", "batch_size": 8}, X, y, "binary", 2, epochs=10,
                            difficulty=np.arange(100))
    assert sorted(given.rows(1)) == list(range(75, 100))


def test_space_entries_are_valid_and_conditional_on_a_curriculum():
    specs = {name: ParamSpec(**entry) for name, entry in CURRICULUM_SPACE.items()}
    assert set(specs) == set(CURRICULUM_DEFAULTS)
    assert not specs["pacing"].matches({"curriculum": "none"})
    assert specs["pacing_start"].matches({"curriculum": "easy_first"})


def test_bad_settings_name_the_value():
    with pytest.raises(ConfigError, match="pacing.*'linaer'.*did you mean 'linear'"):
        pacing_share("linaer", 1, 10, 0.25, 0.5)
    with pytest.raises(ConfigError, match=r"pacing_start must be a share in \(0, 1\]; got 1.5"):
        Curriculum(np.arange(10.0), "easy_first", start=1.5)
    with pytest.raises(ConfigError, match="pacing_full.*got 0"):
        pacing_share("root", 1, 10, 0.25, 0)
    with pytest.raises(ConfigError, match="curriculum.*'easy'"):
        make_curriculum({"curriculum": "easy"}, np.zeros((4, 1)), np.zeros(4), "binary", 2, epochs=5)
    with pytest.raises(ConfigError, match=r"2 missing \(NaN\).*row 1"):
        difficulty_from_column([0.0, np.nan, 1.0, np.nan])
