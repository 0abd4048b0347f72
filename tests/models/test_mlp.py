from __future__ import annotations

import pytest
import torch
from torch import nn

from nntune.errors import ConfigError
from nntune.models import ModelMeta, build_model, count_parameters, family_names, get_family

META = ModelMeta(input_dim=10, output_dim=3, task="multiclass")


def linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("n_layers", [0, 1, 4])
def test_depth_and_width(n_layers):
    model = build_model("mlp", {"n_layers": n_layers, "units": 32}, META)
    layers = linears(model)
    assert len(layers) == n_layers + 1
    assert layers[0].in_features == 10 and layers[-1].out_features == 3
    assert model(torch.randn(5, 10)).shape == (5, 3)
    if n_layers == 0:  # zero hidden layers is a linear model
        assert count_parameters(model) == 10 * 3 + 3


def test_per_layer_units():
    model = build_model("mlp", {"n_layers": 3, "units_0": 64, "units_1": 32, "units_2": 16}, META)
    assert [lin.out_features for lin in linears(model)] == [64, 32, 16, 3]


@pytest.mark.parametrize("norm, kind", [("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm)])
def test_norm_layers(norm, kind):
    model = build_model("mlp", {"n_layers": 2, "norm": norm}, META)
    assert sum(isinstance(m, kind) for m in model.modules()) == 2


def test_weight_norm_parametrizes_weights():
    model = build_model("mlp", {"n_layers": 1, "norm": "weight"}, META)
    first = model.blocks[0].linear
    assert hasattr(first, "parametrizations") and "weight" in first.parametrizations


def test_residual_adds_identity_only_where_shapes_match():
    params = {"n_layers": 3, "units": 16, "residual": True}
    model = build_model("mlp", params, ModelMeta(16, 1, "regression"))
    assert [b.residual for b in model.blocks] == [True, True, True]
    model = build_model("mlp", params, ModelMeta(8, 1, "regression"))
    assert [b.residual for b in model.blocks] == [False, True, True]


@pytest.mark.parametrize("init", ["xavier", "kaiming", "orthogonal"])
def test_inits_change_weights_and_zero_biases(init):
    torch.manual_seed(0)
    default = build_model("mlp", {"n_layers": 1, "units": 32}, META)
    torch.manual_seed(0)
    model = build_model("mlp", {"n_layers": 1, "units": 32, "init": init}, META)
    assert not torch.allclose(linears(default)[0].weight, linears(model)[0].weight)
    assert torch.count_nonzero(linears(model)[0].bias) == 0
    if init == "orthogonal":
        w = linears(model)[0].weight
        assert torch.allclose(w.T @ w, torch.eye(10), atol=1e-4)  # (32, 10): columns orthonormal


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gelu", "silu", "tanh", "selu"])
def test_every_activation_builds_and_runs(activation):
    model = build_model("mlp", {"activation": activation, "dropout": 0.2}, META)
    assert torch.isfinite(model(torch.randn(4, 10))).all()


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="activation must be one of .*got 'rellu'.*did you mean 'relu'"):
        build_model("mlp", {"activation": "rellu"}, META)
    with pytest.raises(ConfigError, match="model family must be one of"):
        build_model("cnnn", {}, META)


@pytest.mark.parametrize("name", family_names("table"))
def test_family_contract(name):
    """Every family for tables builds from its defaults alone and declares a valid space (the
    other kinds' families have the same check with their own samples in their test files)."""
    from nntune.config import ParamSpec

    family = get_family(name)
    for entry in family.space.values():
        ParamSpec.model_validate(entry)
    model = build_model(name, {}, META)
    assert isinstance(model, nn.Module) and model(torch.randn(2, 10)).shape == (2, 3)


def widths(model: nn.Module) -> list[int]:
    return [lin.out_features for lin in linears(model)][:-1]


def test_brick_is_the_default_shape():
    assert widths(build_model("mlp", {"n_layers": 3, "units": 40}, META)) == [40, 40, 40]
    assert widths(build_model("mlp", {"n_layers": 3, "units": 40, "shape": "brick"}, META)) == [40, 40, 40]


@pytest.mark.parametrize("n_layers, units, expected", [
    (1, 64, [64]),
    (2, 64, [64, 34]),               # 64 - 1 * (64 - 3) / 2 = 33.5, halves round up
    (4, 256, [256, 193, 130, 66]),   # steps of (256 - 3) / 4 = 63.25
    (3, 3, [3, 3, 3]),               # no wider than the output: a brick
    (2, 2, [2, 2]),                  # narrower than the output: never widened
])
def test_funnel_shrinks_linearly_towards_the_output(n_layers, units, expected):
    model = build_model("mlp", {"n_layers": n_layers, "units": units, "shape": "funnel"}, META)
    assert widths(model) == expected
    assert model(torch.randn(4, 10)).shape == (4, 3)


def test_funnel_with_no_hidden_layer_is_linear():
    model = build_model("mlp", {"n_layers": 0, "units": 64, "shape": "funnel"}, META)
    assert widths(model) == [] and count_parameters(model) == 10 * 3 + 3


def test_per_layer_units_win_over_the_shape():
    params = {"n_layers": 3, "units": 90, "shape": "funnel", "units_1": 7}
    assert widths(build_model("mlp", params, META)) == [90, 7, 32]  # step (90 - 3) / 3 = 29


def test_unknown_shape_is_a_config_error():
    with pytest.raises(ConfigError, match="shape must be one of .*got 'funel'.*did you mean 'funnel'"):
        build_model("mlp", {"shape": "funel"}, META)


def test_switches_and_recipe_keys_are_ignored_by_the_builder():
    """Cocktail switches and training values travel in the same parameter dict."""
    params = {"n_layers": 2, "units": 16, "use_dropout": False, "use_mixup": True, "mixup_alpha": 0.3}
    torch.manual_seed(0)
    a = build_model("mlp", params, META)
    torch.manual_seed(0)
    b = build_model("mlp", {"n_layers": 2, "units": 16}, META)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


# --- Numerical embeddings, TabM members, robust scaling (models/_tabular_blocks.py) -----------

TABLE_META = ModelMeta(input_dim=7, output_dim=3, task="multiclass", extra={"numeric_columns": 4})


def test_parameters_left_out_rebuild_the_plain_network():
    """Models saved before embeddings and members existed carry neither key: plain MLP, as trained."""
    from nntune.models.mlp import MLP

    model = build_model("mlp", {"n_layers": 2, "units": 16}, TABLE_META)
    assert type(model) is MLP and "blocks.0.linear.weight" in model.state_dict()
    # Without numeric columns there is nothing to embed: the plain network too.
    plain = build_model("mlp", {"embedding": "plr"}, ModelMeta(5, 2, "binary", extra={"numeric_columns": 0}))
    assert type(plain) is MLP


@pytest.mark.parametrize("kind", ["periodic", "plr", "plr_lite"])
def test_embeddings_touch_only_the_numeric_columns(kind):
    torch.manual_seed(0)
    model = build_model("mlp", {"embedding": kind, "embedding_dim": 5}, TABLE_META)
    x = torch.randn(6, 7)
    embedded = model.embedding(x)
    assert embedded.shape == (6, 4 * 5 + 3)
    assert torch.equal(embedded[:, 20:], x[:, 4:])  # the one-hot columns pass unchanged
    changed = x.clone()
    changed[:, 0] += 1.0  # a numeric column moves only its own embedding
    delta = (model.embedding(changed) - embedded).abs().sum(dim=0)
    assert delta[:5].sum() > 0 and delta[5:].sum() == 0
    assert model.blocks[0].linear.in_features == 23


def test_embeddings_need_to_know_the_numeric_columns():
    with pytest.raises(ConfigError, match="which input columns are numeric"):
        build_model("mlp", {"embedding": "plr"}, META)


@pytest.mark.parametrize("ensemble", ["tabm", "mini", "packed"])
@pytest.mark.parametrize("task, output_dim", [("multiclass", 3), ("binary", 1), ("regression", 1)])
def test_members_average_their_predictions(ensemble, task, output_dim):
    """Training output: one prediction per member; eval output: their mean, as the head reads it
    (mean of softmax or sigmoid probabilities, mean value for regression)."""
    from torch.nn import functional as F

    torch.manual_seed(0)
    meta = ModelMeta(7, output_dim, task, extra={"numeric_columns": 4})
    model = build_model("mlp", {"k": 4, "ensemble": ensemble, "embedding": "plr_lite"}, meta)
    x = torch.randn(9, 7)
    model.train()
    members = model(x)  # no dropout or batch norm: train and eval compute the same members
    assert members.shape == (9, 4, output_dim)
    assert not torch.allclose(members[:, 0], members[:, 1])  # the members differ
    model.eval()
    mean = model(x)
    assert mean.shape == (9, output_dim)
    if task == "multiclass":
        assert torch.allclose(F.softmax(mean, dim=1), F.softmax(members, dim=-1).mean(dim=1), atol=1e-6)
    elif task == "binary":
        assert torch.allclose(torch.sigmoid(mean), torch.sigmoid(members).mean(dim=1), atol=1e-6)
    else:
        assert torch.allclose(mean, members.mean(dim=1), atol=1e-6)


def test_each_member_is_trained_with_its_own_loss():
    from nntune.models._tabular_blocks import MemberLoss

    loss = nn.CrossEntropyLoss()
    outputs, target = torch.randn(5, 3, 4), torch.randint(0, 4, (5,))
    per_member = torch.stack([loss(outputs[:, j], target) for j in range(3)]).mean()
    assert torch.allclose(MemberLoss(loss)(outputs, target), per_member)
    assert torch.allclose(MemberLoss(loss)(outputs[:, 0], target), loss(outputs[:, 0], target))
    assert MemberLoss.around(loss, build_model("mlp", {}, META)) is loss


def test_tabm_members_share_weights_and_keep_the_mlp_initialisation():
    torch.manual_seed(0)
    model = build_model("mlp", {"k": 8, "units": 32, "init": "orthogonal", "norm": "batch"}, TABLE_META)
    first = model.blocks[0].linear
    assert first.weight.shape == (32, 7) and first.r.shape == (8, 7) and first.s.shape == (8, 32)
    assert torch.allclose(first.weight.T @ first.weight, torch.eye(7), atol=1e-4)  # (32, 7): columns orthonormal
    assert model.head.weight.shape == (8, 32, 3)  # every member its own output layer
    assert sum(p.numel() for p in model.parameters()) < 8 * count_parameters(build_model("mlp", {"units": 32}, META))


def test_bad_member_options_are_config_errors():
    with pytest.raises(ConfigError, match="k .* must be a whole number >= 1"):
        build_model("mlp", {"k": 0}, TABLE_META)
    with pytest.raises(ConfigError, match="norm 'weight'.*k > 1"):
        build_model("mlp", {"k": 4, "norm": "weight"}, TABLE_META)
    with pytest.raises(ConfigError, match="ensemble must be one of"):
        build_model("mlp", {"k": 4, "ensemble": "tabn"}, TABLE_META)
    with pytest.raises(ConfigError, match="embedding must be one of"):
        build_model("mlp", {"embedding": "plx"}, TABLE_META)


def test_shape_of_weights_reads_embeddings_and_members():
    from nntune.models.mlp import shape_of_weights

    for params in ({"k": 4, "ensemble": "packed", "units": 24}, {"k": 3, "ensemble": "mini", "embedding": "plr_lite"},
                   {"embedding": "plr", "embedding_dim": 6, "norm": "layer", "n_layers": 3}):
        model = build_model("mlp", params, TABLE_META)
        rebuilt = build_model("mlp", shape_of_weights(model.state_dict()), TABLE_META)
        rebuilt.load_state_dict(model.state_dict())  # every name and shape fits


def test_robust_scaling_is_fitted_on_training_rows_only():
    import numpy as np
    import pandas as pd

    from nntune.data import encode_split, load_tabular

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"c": rng.choice(["a", "b"], 100), "x": rng.normal(size=100), "y": rng.integers(0, 2, 100)})
    frame.loc[80:, "x"] += 1000.0  # rows the scaler must not see
    table = load_tabular(frame, "y")
    train, rest = np.arange(80), np.arange(80, 100)
    split = encode_split(table, train, rest)
    scaler = split.preprocessor.named_transformers_["numeric"].named_steps["scale"]
    x = frame["x"].to_numpy()
    assert np.isclose(scaler.center_[0], np.median(x[train]))
    q25, q75 = np.quantile(x[train], [0.25, 0.75])
    assert np.isclose(scaler.factor_[0], 1 / (q75 - q25))
    assert split.model_input()["extra"] == {"numeric_columns": 1}  # numeric first, then one-hot
    scaled = (x[train] - np.median(x[train])) / (q75 - q25)
    assert np.allclose(split.X_train[:, 0], scaled / np.sqrt(1 + (scaled / 3) ** 2), atol=1e-6)
    assert np.all(np.abs(split.X_eval[:, 0]) < 3) and np.all(split.X_eval[:, 0] > 2.9)  # clipped smoothly
    assert set(np.unique(split.X_train[:, 1:])) <= {0.0, 1.0}


def test_scaling_standard_is_still_available_and_bad_names_are_refused():
    import pandas as pd
    from sklearn.preprocessing import StandardScaler

    from nntune.data import infer_schema, make_preprocessor

    schema = infer_schema(pd.DataFrame({"x": [1.0, 2.0]}))
    numeric = make_preprocessor(schema, "standard").transformers[0][1]
    assert isinstance(numeric.named_steps["scale"], StandardScaler)
    with pytest.raises(ConfigError, match="scaling must be one of"):
        make_preprocessor(schema, "robustt")


def test_compression_refuses_members_and_structured_pruning_of_embeddings_with_one_line():
    from types import SimpleNamespace

    from nntune.compression import RunData
    from nntune.compression._prune import prune

    def run(**params):
        model = SimpleNamespace(info={"family": "mlp", "params": params},
                                module=build_model("mlp", params, TABLE_META))
        return RunData(model, None, None, None, None, None, "accuracy")

    with pytest.raises(ConfigError, match=r"^prune works on one network; this model averages 8 TabM members: "
                                          r"distill it into one \(--method distill\), then prune that$"):
        run(k=8).require_mlp("prune")
    run(k=8).require_mlp("distill")  # the student is a plain MLP
    run(embedding="plr_lite").require_mlp("quantize")  # int8 and unstructured pruning take embeddings
    with pytest.raises(ConfigError, match=r"^structured pruning works on a plain MLP; this model has numerical "
                                          r"embeddings \(plr_lite\): prune it unstructured"):
        prune(run(embedding="plr_lite"), 0.5, structured=True)


def _mixed_table(task: str, n: int = 150):
    """Numbers (one heavy-tailed, one with gaps) and a category, with a target of `task`."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.lognormal(sigma=2, size=n),
                          "c": rng.choice(["p", "q", "r"], n), "d": rng.normal(size=n)})
    frame.loc[::7, "d"] = np.nan
    signal = frame["a"] + np.log(frame["b"]) + (frame["c"] == "q")
    if task == "regression":
        frame["y"] = signal + rng.normal(scale=0.3, size=n)
    elif task == "binary":
        frame["y"] = np.where(signal > signal.median(), "yes", "no")
    else:
        frame["y"] = pd.qcut(signal, 3, labels=["lo", "mid", "hi"]).astype(str)
    return frame


SAVED_CASES = {
    "plr": ("multiclass", {"embedding": "plr", "k": 1}),
    "periodic_mini": ("multiclass", {"embedding": "periodic", "k": 4, "ensemble": "mini", "norm": "layer"}),
    "plr_lite_tabm_bce": ("binary", {"embedding": "plr_lite", "k": 4, "ensemble": "tabm", "norm": "batch",
                                     "loss": "bce"}),
    "packed_regression": ("regression", {"k": 3, "ensemble": "packed", "dropout": 0.2}),
}


@pytest.mark.slow
def test_every_new_option_trains_saves_and_predicts_identically_in_a_fresh_process(tmp_path):
    import json

    import numpy as np

    import nntune
    from nntune.models._tabular_blocks import TabularMLP
    from tests._fresh import run_script, warm

    warm()  # the fresh process imports its libraries while the models train
    expected = {}
    for name, (task, space) in SAVED_CASES.items():
        frame = _mixed_table(task)
        result = nntune.tune(frame, target="y", trials=1, max_epochs=3, patience=2, threads=1, report=False,
                             cv=None, final="refit", space=space, out=tmp_path / name)
        module = result.model.module
        assert isinstance(module, TabularMLP) and module.members == space["k"], name
        assert {k: result.model.info["params"][k] for k in space} == space
        features = frame.drop(columns="y")
        features.to_csv(tmp_path / f"{name}.csv", index=False)
        values = result.model.predict_proba(features) if task != "regression" else result.model.predict(features)
        expected[name] = np.asarray(values, dtype=float)
    code = ("import json, sys, numpy as np, pandas as pd, nntune\n"
            "root, out = sys.argv[1], {}\n"
            f"for name, task in {({n: t for n, (t, _) in SAVED_CASES.items()})!r}.items():\n"
            "    model, X = nntune.load(f'{root}/{name}/model'), pd.read_csv(f'{root}/{name}.csv')\n"
            "    out[name] = (model.predict(X) if task == 'regression' else model.predict_proba(X)).tolist()\n"
            "print(json.dumps(out))\n")
    done = run_script(code, tmp_path)
    assert done.returncode == 0, done.stderr
    for name, values in json.loads(done.stdout).items():
        assert np.allclose(np.asarray(values), expected[name], rtol=0, atol=1e-6), name


@pytest.mark.slow
def test_the_tuned_default_scores_at_least_as_well_as_logistic_regression():
    """The first trial of every mlp run (MODERN_RECIPE, robust scaling), trained as a trial is
    (early stopping on a validation split; mean of 3 seeds), against logistic regression on the
    same encoded split of a small real table. Breast cancer is nearly linear: logistic
    regression is near the ceiling there (0.97), and the margin catches a broken default (the
    majority class scores 0.63), not a point or two."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from nntune.data import encode_split, load_tabular, make_folds, split_train_test
    from nntune.models.mlp import MODERN_RECIPE, STARTING_POINTS
    from nntune.search._objective import split_meta
    from nntune.training import DEFAULTS, fit, get_metric, make_head, predict_outputs

    assert STARTING_POINTS[0] is MODERN_RECIPE
    table = load_tabular(load_breast_cancer(as_frame=True).frame, "target")
    train, test = split_train_test(table, 0.2, 0)
    (fit_rows, val_rows), = make_folds(table, train, None, 0.2, 0)
    split = encode_split(table, fit_rows, val_rows)
    final = encode_split(table, fit_rows, test)  # the same preprocessing, applied to the test rows
    recipe = {**DEFAULTS, **MODERN_RECIPE}
    head = make_head(table.task, split.y_train, len(table.classes), recipe)
    scores = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = build_model("mlp", recipe, split_meta(split, head.output_dim, table.task))
        fit(model, head, split.X_train, split.y_train, recipe, X_val=split.X_eval, y_val=split.y_eval,
            metric=get_metric("accuracy", table.task), seed=seed)
        predicted = head.scores(predict_outputs(model, torch.from_numpy(final.X_eval))).argmax(1)
        scores.append(float(np.mean(predicted == final.y_eval)))
    reference = LogisticRegression(max_iter=5000).fit(final.X_train, final.y_train).score(final.X_eval, final.y_eval)
    assert np.mean(scores) >= reference - 0.05, (scores, reference)


@pytest.mark.slow
def test_unstructured_pruning_and_int8_keep_working_with_embeddings(tmp_path):
    import numpy as np

    import nntune
    from nntune.api import _run_arrays
    from nntune.compression import RunData, compressed_model

    nntune.tune(dataset="breast_cancer", trials=1, max_epochs=3, out=tmp_path / "run", report=False, threads=1,
                seed=0, final="refit", space={"n_layers": 2, "units": 16, "norm": "batch", "embedding": "plr_lite"})
    run = RunData(**_run_arrays(tmp_path / "run", None, None, "compress"))
    rows = run.X_test
    for method, options in (("prune", {"sparsity": 0.5, "steps": 1, "finetune_epochs": 1}), ("quantize", {})):
        model, weights, _ = compressed_model(run, method, **options)
        model.save(tmp_path / method, weights=weights)
        again = nntune.load(tmp_path / method)
        before = model.head.scores(model.module(torch.from_numpy(rows)))
        after = again.head.scores(again.module(torch.from_numpy(rows)))
        assert np.allclose(before, after, atol=1e-6), method
