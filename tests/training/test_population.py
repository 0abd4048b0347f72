"""Population training: members train as they would alone, and none touches another."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nntune.models import ModelMeta, build_model
from nntune.training import Member, fit, fit_population, get_metric, make_head, population_key, predict_outputs

from .._references import at_least_linear

ARCH = {"n_layers": 2, "units": 16, "activation": "relu", "dropout": 0.0, "norm": "none"}


def data(task: str = "binary", n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    signal = X[:, 0] + 0.5 * X[:, 1] - 0.3 * X[:, 2] ** 2
    if task == "regression":
        y = (signal + 0.1 * rng.normal(size=n)).astype(np.float64)
    elif task == "multiclass":
        y = np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3])).astype(np.int64)
    else:
        y = (signal > 0).astype(np.int64)
    half = n * 2 // 3
    return X[:half], y[:half], X[half:], y[half:]


def build(recipe, task, y, seed):
    n_classes = 0 if task == "regression" else int(y.max()) + 1
    head = make_head(task, y, n_classes, recipe)
    torch.manual_seed(seed)
    # (the first 3 columns count as numeric: what a numerical embedding embeds)
    module = build_model("mlp", recipe, ModelMeta(5, head.output_dim, task, extra={"numeric_columns": 3}))
    return module, head


def alone(recipe, task="binary", seed=0, **kw):
    X, y, Xv, yv = data(task)
    module, head = build(recipe, task, y, seed)
    metric = get_metric("r2" if task == "regression" else "accuracy", task)
    result = fit(module, head, X, y, recipe, X_val=Xv, y_val=yv, metric=metric, seed=seed, **kw)
    return result, module


def together(recipes, task="binary", seeds=None, **kw):
    X, y, Xv, yv = data(task)
    seeds = seeds or list(range(len(recipes)))
    members = []
    for recipe, seed in zip(recipes, seeds, strict=True):
        module, head = build(recipe, task, y, seed)
        members.append(Member(module, recipe, seed))
    metric = get_metric("r2" if task == "regression" else "accuracy", task)
    results = fit_population(members, head, X, y, X_val=Xv, y_val=yv, metric=metric, **kw)
    return results, [m.module for m in members]


def same_training(a, module_a, b, module_b, rtol=1e-4):
    assert a.best_epoch == b.best_epoch and a.epochs_run == b.epochs_run and a.stop_reason == b.stop_reason
    np.testing.assert_allclose(a.history["train_loss"], b.history["train_loss"], rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(a.history["val_loss"], b.history["val_loss"], rtol=rtol, atol=1e-6)
    X = torch.from_numpy(data()[2])
    np.testing.assert_allclose(predict_outputs(module_a, X).numpy(), predict_outputs(module_b, X).numpy(),
                               rtol=1e-3, atol=1e-4)


RECIPES = [
    pytest.param({"optimizer": "adam", "lr": 3e-3, "weight_decay": 1e-4, "schedule": "constant"}, "binary",
                 id="adam"),
    pytest.param({"optimizer": "adamw", "lr": 2e-3, "weight_decay": 3e-4, "schedule": "cosine",
                  "label_smoothing": 0.1}, "multiclass", id="adamw-cosine-smoothing"),
    pytest.param({"optimizer": "sgd", "lr": 2e-2, "momentum": 0.9, "nesterov": True, "schedule": "onecycle",
                  "norm": "layer"}, "multiclass", id="sgd-nesterov-onecycle-layernorm"),
    pytest.param({"optimizer": "adam", "lr": 1e-3, "schedule": "plateau", "activation": "tanh"}, "regression",
                 id="adam-plateau-regression"),
    pytest.param({"optimizer": "adam", "lr": 3e-3, "loss": "bce", "class_weight": "balanced",
                  "label_smoothing": 0.05}, "binary", id="bce-weighted"),
    pytest.param({"optimizer": "sgd", "lr": 1e-2, "momentum": 0.9, "schedule": "cosine", "norm": "batch"},
                 "multiclass", id="sgd-cosine-batchnorm"),
    pytest.param({"optimizer": "adamw", "lr": 2e-3, "weight_decay": 3e-4, "schedule": "constant",
                  "embedding": "plr_lite"}, "binary", id="adamw-plr-lite"),
    # (Batch norm with SGD: under Adam the bias before a batch norm has a gradient of zero up to
    # float noise, which Adam scales to full steps, so two runs' running means part by more
    # than float noise although neither is wrong.)
    pytest.param({"optimizer": "sgd", "lr": 5e-3, "momentum": 0.9, "schedule": "cosine", "norm": "batch",
                  "embedding": "plr_lite", "embedding_scale": 0.3}, "regression",
                 id="sgd-plr-lite-batchnorm-regression"),
]


@pytest.mark.parametrize(("recipe", "task"), RECIPES)
def test_a_member_trains_as_it_would_alone(recipe, task):
    """The first member against `fit` on the same network and seed; the others are wider and
    faster, so the first is padded and shares its steps with different ones."""
    first = {**ARCH, "max_epochs": 25, "batch_size": 32, "patience": 5, **recipe}
    wider = {**first, "units": 40, "lr": first["lr"] * 2}
    narrower = {**first, "units": 8, "lr": first["lr"] / 2}
    single, module = alone(first, task)
    results, modules = together([first, wider, narrower], task)
    same_training(single, module, results[0], modules[0])
    assert results[0].error is None


def test_members_are_better_than_a_linear_model():
    X, y, Xv, yv = data()
    recipes = [{**ARCH, "optimizer": "adam", "lr": lr, "batch_size": 32, "max_epochs": 60} for lr in (1e-3, 3e-3, 1e-2)]
    results, _ = together(recipes)
    at_least_linear(max(r.best_score for r in results), X, y, Xv, yv, margin=0.02)


def test_a_diverging_member_leaves_the_others_untouched():
    recipes = [{**ARCH, "optimizer": "sgd", "lr": 1e-2, "momentum": 0.9, "batch_size": 32, "max_epochs": 15,
                "dropout": 0.0} for _ in range(3)]
    recipes[1] = {**recipes[1], "lr": 1e6}  # explodes within the first epoch
    with_it, modules = together(recipes, "regression", seeds=[0, 1, 2])
    without, modules_without = together([recipes[0], recipes[2]], "regression", seeds=[0, 2])
    assert with_it[1].error is not None and with_it[1].stop_reason == "diverged"
    for a, ma, b, mb in ((with_it[0], modules[0], without[0], modules_without[0]),
                         (with_it[2], modules[2], without[1], modules_without[1])):
        same_training(a, ma, b, mb, rtol=1e-5)


def test_a_callback_that_stops_one_member_stops_that_one_only():
    recipes = [{**ARCH, "optimizer": "adam", "lr": 3e-3, "batch_size": 32, "max_epochs": 12, "patience": 50}
               for _ in range(3)]
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}

    class Pruned(Exception):
        pass

    def report(member, epoch, logs):
        seen[member].append(epoch)
        if member == 1 and epoch == 4:
            raise Pruned("pruned at epoch 4")

    results, _ = together(recipes, on_epoch_end=report)
    assert seen[1] == [1, 2, 3, 4] and seen[0] == seen[2] == list(range(1, 13))
    assert isinstance(results[1].error, Pruned) and results[1].stop_reason == "stopped"
    assert results[0].epochs_run == results[2].epochs_run == 12


def test_only_plain_networks_of_one_loop_share_a_population():
    plain = {**ARCH, "optimizer": "adam"}
    assert population_key(plain) == population_key({**plain, "units": 300, "lr": 0.1, "dropout": 0.3})
    assert population_key(plain) != population_key({**plain, "n_layers": 3})
    assert population_key(plain) != population_key({**plain, "batch_size": 128})
    for shape in ({"norm": "batch"}, {"norm": "layer"}, {"embedding": "plr_lite"}):
        assert population_key({**plain, **shape}) not in (None, population_key(plain))
    lite = {**plain, "embedding": "plr_lite"}
    assert population_key(lite) == population_key({**lite, "embedding_scale": 0.5})
    assert population_key(lite) != population_key({**lite, "embedding_dim": 16})
    for other in ({"norm": "weight"}, {"embedding": "plr"}, {"k": 4}, {"optimizer": "rmsprop"},
                  {"mixup_alpha": 0.2}, {"clip_norm": 1.0}):
        assert population_key({**plain, **other}) is None


def test_a_members_seconds_are_what_it_would_take_alone():
    # From the population's (members training, seconds) per epoch; the final model's time
    # estimate retrains the best member alone.
    from nntune.training._population import _epoch_seconds_alone

    assert _epoch_seconds_alone([(4, 1.0), (3, 0.8), (2, 0.6), (1, 0.4), (1, 0.42)]) == pytest.approx(0.41)
    assert _epoch_seconds_alone([(4, 1.0), (4, 1.0), (2, 0.6)]) == pytest.approx(0.4)  # the line to 1 member
    assert _epoch_seconds_alone([(4, 1.0), (4, 1.2)]) == pytest.approx(1.0)  # one count: a whole epoch

    def stop(member, epoch, logs):  # members 1 and 2 leave after epochs 2 and 4; member 0 trains 6
        if (member, epoch) in ((1, 2), (2, 4)):
            raise RuntimeError("stopped")

    recipe = {**ARCH, "optimizer": "adam", "lr": 3e-3, "batch_size": 32, "max_epochs": 6, "patience": 50}
    results, _ = together([recipe] * 3, on_epoch_end=stop)
    assert [r.epochs_run for r in results] == [6, 2, 4]
    # one per-epoch cost for all, times each member's own epochs (not the population's shared time)
    assert results[1].seconds == pytest.approx(results[0].seconds / 3)
    assert results[2].seconds == pytest.approx(2 * results[0].seconds / 3)
