from __future__ import annotations

import numpy as np
import pytest
import torch

from nntune.models import ModelMeta, build_model
from nntune.training import (
    OPTIMIZERS,
    SCHEDULES,
    TrainingDiverged,
    fit,
    get_metric,
    make_head,
    pick_device,
    predict_outputs,
    score_all,
)

from .._references import at_least_linear


def blobs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return X[: n // 2], y[: n // 2], X[n // 2:], y[n // 2:]


def learned(result, margin: float = 0.05) -> None:
    """The network's best validation accuracy is within `margin` of logistic regression's on the
    same rows (about 0.99: blobs are linearly separable) and well above the majority class."""
    at_least_linear(result.best_score, *blobs(), margin=margin)


def train(recipe, task="binary", **kwargs):
    X, y, Xv, yv = blobs()
    head = make_head(task, y, 2, recipe)
    torch.manual_seed(0)
    model = build_model("mlp", {"n_layers": 1, "units": 16}, ModelMeta(4, head.output_dim, task))
    result = fit(model, head, X, y, {"max_epochs": 30, **recipe}, X_val=Xv, y_val=yv,
                 metric=get_metric("accuracy", task), **kwargs)
    return model, head, result


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_learns(optimizer):
    lr = 0.05 if optimizer in ("sgd", "adagrad") else 0.01
    _, _, result = train({"optimizer": optimizer, "lr": lr})
    learned(result)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_learns(schedule):
    _, _, result = train({"schedule": schedule, "lr": 0.01, "warmup_epochs": 2})
    learned(result)


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_cosine_schedule_lowers_the_rate():
    from nntune.training import Schedule, make_optimizer

    model = torch.nn.Linear(2, 1)
    recipe = {"optimizer": "adam", "lr": 0.1, "weight_decay": 0.0, "schedule": "cosine",
              "warmup_epochs": 0, "patience": 10}
    opt = make_optimizer(model.parameters(), recipe)
    schedule = Schedule(opt, recipe, epochs=10, steps_per_epoch=5)
    for _ in range(5):
        schedule.step_epoch(0.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05, rel=1e-6)


def test_warmup_starts_low_and_reaches_the_rate():
    from nntune.training import Schedule, make_optimizer

    model = torch.nn.Linear(2, 1)
    recipe = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "nesterov": False,
              "weight_decay": 0.0, "schedule": "constant", "warmup_epochs": 3, "patience": 10}
    opt = make_optimizer(model.parameters(), recipe)
    schedule = Schedule(opt, recipe, epochs=10, steps_per_epoch=5)
    rates = [opt.param_groups[0]["lr"]]
    for _ in range(4):
        schedule.step_epoch(0.0)
        rates.append(opt.param_groups[0]["lr"])
    assert rates[0] == pytest.approx(0.025) and rates[-1] == pytest.approx(0.1)
    assert rates == sorted(rates)


def test_early_stopping_restores_the_best_epoch():
    model, head, result = train({"lr": 0.05, "patience": 3, "max_epochs": 200})
    assert result.stop_reason == "early_stopping"
    assert result.epochs_run == result.best_epoch + 3
    _, _, Xv, yv = blobs()
    restored = get_metric("accuracy", "binary")(yv, head.scores(predict_outputs(model, torch.from_numpy(Xv))))
    assert restored == pytest.approx(result.best_score)


def test_divergence_is_a_failed_trial():
    with pytest.raises(TrainingDiverged, match="loss became nan"):
        train({"optimizer": "sgd", "lr": 1e30, "momentum": 0.9})


def test_same_seed_same_model():
    a, _, ra = train({"dropout": 0.2}, seed=7)
    b, _, rb = train({"dropout": 0.2}, seed=7)
    assert ra.history == rb.history
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_regularisers_shrink_weights():
    norms = {}
    for name, recipe in {"none": {}, "l1": {"l1": 1e-2}, "l2": {"l2": 1e-2}}.items():
        model, _, _ = train({**recipe, "patience": 100, "max_epochs": 20})
        norms[name] = sum(p.abs().sum().item() for p in model.parameters() if p.dim() > 1)
    assert norms["l1"] < norms["none"] and norms["l2"] < norms["none"]


def test_gradient_clipping_by_norm_and_value_still_learns():
    learned(train({"clip_norm": 0.5, "lr": 0.01})[2])
    learned(train({"clip_value": 0.01, "lr": 0.01})[2])


def test_losses_for_each_task():
    X, y, Xv, yv = blobs()
    for loss in ("cross_entropy", "bce"):
        _, _, result = train({"loss": loss, "label_smoothing": 0.1, "class_weight": "balanced", "lr": 0.01})
        learned(result)
    target = X[:, 0] * 3 + 1
    for loss in ("mse", "mae", "huber"):
        head = make_head("regression", target, 0, {"loss": loss})
        model = build_model("mlp", {"n_layers": 1}, ModelMeta(4, 1, "regression"))
        fit(model, head, X, target, {"loss": loss, "lr": 0.01}, epochs=40)
        predicted = head.scores(predict_outputs(model, torch.from_numpy(Xv)))
        r2 = score_all("regression", Xv[:, 0] * 3 + 1, predicted)["r2"]
        at_least_linear(r2, X, target, Xv, Xv[:, 0] * 3 + 1, margin=0.05, task="regression")


def test_time_deadline_stops_training():
    import time

    _, _, result = train({"max_epochs": 10_000, "patience": 10_000}, deadline=time.monotonic() + 0.5)
    assert result.stop_reason == "time" and result.epochs_run < 10_000


def test_device_is_cpu_here():
    assert pick_device().type in ("cpu", "cuda", "mps")
    assert pick_device("cpu").type == "cpu"


def test_thread_count_is_set_deliberately():
    from nntune.training import available_cores, set_threads

    assert set_threads(1) == 1 and torch.get_num_threads() == 1
    chosen = set_threads(None)
    assert 1 <= chosen <= available_cores() and torch.get_num_threads() == chosen
    assert set_threads(None, workers=available_cores() * 4) == 1


def test_final_fit_keeps_its_last_epoch():
    """Without validation data the epoch count was chosen on validation data elsewhere (the
    refit): the weights after the last epoch are kept, not those of the lowest training loss."""
    X, y, _, _ = blobs()
    head = make_head("binary", y, 2, {})
    torch.manual_seed(0)
    model = build_model("mlp", {"n_layers": 1}, ModelMeta(4, head.output_dim, "binary"))
    # An oscillating recipe: SGD with a large rate and no momentum.
    result = fit(model, head, X, y, {"optimizer": "sgd", "lr": 3.0, "momentum": 0.0}, epochs=15)
    assert result.best_epoch == result.epochs_run == 15


def test_a_horizon_keeps_the_schedule_of_the_longer_run(monkeypatch):
    """A refit stopped at epoch 5 of a 20-epoch cosine recipe follows the trial's schedule: it
    ends at the rate the trial had at epoch 5, not at the schedule's end."""
    from nntune.training import _trainer

    X, y, _, _ = blobs()
    head = make_head("binary", y, 2, {})
    made = []

    class Spy(_trainer.Schedule):
        def __init__(self, optimizer, *args, **kwargs):
            super().__init__(optimizer, *args, **kwargs)
            made.append(self)

    monkeypatch.setattr(_trainer, "Schedule", Spy)
    for horizon in (None, 20):
        torch.manual_seed(0)
        model = build_model("mlp", {"n_layers": 1}, ModelMeta(4, head.output_dim, "binary"))
        fit(model, head, X, y, {"optimizer": "sgd", "lr": 0.1, "schedule": "cosine"}, epochs=5, horizon=horizon)
    squeezed, kept = (s.optimizer.param_groups[0]["lr"] for s in made)
    assert squeezed < 1e-6  # the whole cosine in 5 epochs
    assert kept == pytest.approx(0.1 * (1 + np.cos(np.pi * 5 / 20)) / 2, rel=1e-6)


def test_the_numpy_metrics_agree_with_scikit_learn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 50)
    p = rng.dirichlet(np.ones(3), 50)
    assert get_metric("accuracy", "multiclass")(y, p) == pytest.approx(skm.accuracy_score(y, p.argmax(1)))
    assert get_metric("log_loss", "multiclass")(y, p) == pytest.approx(skm.log_loss(y, p, labels=[0, 1, 2]))
    for target in (rng.normal(size=50), rng.normal(size=(50, 3)), np.ones(50)):  # one output, a horizon, constant
        predicted = target + rng.normal(scale=0.5, size=target.shape)
        assert get_metric("r2", "regression")(target, predicted) == pytest.approx(skm.r2_score(target, predicted))
        assert get_metric("rmse", "regression")(target, predicted) == pytest.approx(
            skm.root_mean_squared_error(target, predicted))
        assert get_metric("mae", "regression")(target, predicted) == pytest.approx(
            skm.mean_absolute_error(target, predicted))
