"""The anchors of the tabular benchmark (benchmarks/tabular.py) that tune nothing themselves.

Each function runs inside its own worker process and returns (test predictions, details); the
caller scores the predictions on the shared test rows. `split` is nntune's EncodedSplit of the
shared train/test rows (preprocessing fitted on the training rows only), `table` nntune's
TabularData (features as nntune conforms them, target encoded: class codes or float values).

  logreg        LogisticRegression / Ridge with scikit-learn's defaults on the encoded features:
                the linear reference.
  torch_mlp     the network a user writes by hand: 2 x 128 ReLU, Adam 1e-3, batch 128, at most
                TORCH_EPOCHS epochs with early stopping on a random 10% slice of the training
                rows (best epoch's weights kept), in a plain DataLoader loop.
  realmlp_td    pytabkit's RealMLP_TD_Classifier / _Regressor, its tuned defaults.
  tabm_d        pytabkit's TabM_D_Classifier / _Regressor, its defaults.
  autogluon_nn  AutoGluon's TabularPredictor restricted to its two neural models (NN_TORCH,
                FASTAI) at their defaults, time_limit = the budget, num_cpus=1; it runs under
                .venv-autogluon (`make bench-env-autogluon`: pandas 2.3, which AutoGluon needs).

pytabkit and AutoGluon read a table themselves: they get nntune's conformed features (datetimes
already split into numbers), numeric columns median-imputed on the training rows (pytabkit
refuses missing numbers), categorical ones as pandas categories, with the same target codes.
None of these honours the wall-clock budget except AutoGluon (and torch_mlp, which stops at it
if its epochs would overrun); the benchmark records every method's seconds beside its score.
"""

from __future__ import annotations

import time

# The hand-written MLP: a fixed recipe, as a user would write it without tuning.
TORCH_WIDTH = 128
TORCH_LAYERS = 2
TORCH_LR = 1e-3
TORCH_BATCH = 128
TORCH_EPOCHS = 200
TORCH_PATIENCE = 20
TORCH_VAL_SHARE = 0.1

MISSING_CATEGORY = "__missing__"


def run_logreg(split, task, seed):
    import numpy as np
    from sklearn.linear_model import LogisticRegression, Ridge

    if task == "regression":
        model = Ridge()
    else:
        model = LogisticRegression(max_iter=1000, random_state=seed)
    model.fit(split.X_train, split.y_train)
    n_iter = getattr(model, "n_iter_", None)  # Ridge's direct solvers leave it None
    details = {"n_iter": int(np.max(n_iter))} if n_iter is not None else {}
    return model.predict(split.X_eval), details


def run_torch_mlp(split, task, n_classes, seconds, seed):
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    started = time.monotonic()
    regression = task == "regression"
    X, y = split.X_train, split.y_train
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = max(1, int(round(TORCH_VAL_SHARE * len(y))))
    val, fit = order[:n_val], order[n_val:]
    mean, std = (float(y[fit].mean()), float(y[fit].std()) or 1.0) if regression else (0.0, 1.0)

    def target(rows):
        if regression:
            return torch.from_numpy(((y[rows] - mean) / std).astype(np.float32)).reshape(-1, 1)
        return torch.from_numpy(y[rows].astype(np.int64))

    layers, width = [], X.shape[1]
    for _ in range(TORCH_LAYERS):
        layers += [nn.Linear(width, TORCH_WIDTH), nn.ReLU()]
        width = TORCH_WIDTH
    layers.append(nn.Linear(width, 1 if regression else n_classes))
    model = nn.Sequential(*layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=TORCH_LR)
    loss_fn = nn.MSELoss() if regression else nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(torch.from_numpy(X[fit]), target(fit)),
                        batch_size=TORCH_BATCH, shuffle=True)
    X_val, y_val = torch.from_numpy(X[val]), target(val)

    best_loss, best_state, best_epoch, stopped, epoch = float("inf"), None, -1, "epochs", -1
    epoch_seconds = []
    for epoch in range(TORCH_EPOCHS):
        t0 = time.monotonic()
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(model(X_val), y_val))
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        epoch_seconds.append(time.monotonic() - t0)
        if epoch - best_epoch >= TORCH_PATIENCE:
            stopped = "patience"
            break
        if time.monotonic() - started + float(np.mean(epoch_seconds)) > seconds:
            stopped = "budget"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(split.X_eval))
    predicted = out.reshape(-1).numpy() * std + mean if regression else out.argmax(1).numpy()
    return predicted, {"epochs": epoch + 1, "best_epoch": best_epoch + 1, "stopped": stopped,
                       "best_val_loss": best_loss}


def table_frames(table, train_rows, test_rows):
    """The training and test rows as a DataFrame a library reads itself: nntune's conformed
    columns, numbers median-imputed on the training rows, categories as pandas categories
    (missing and unseen values as one category of their own)."""
    import pandas as pd

    features = table.features
    train, test = features.iloc[train_rows], features.iloc[test_rows]
    out_train, out_test = {}, {}
    categorical = set(table.schema.categorical)
    for name in features.columns:
        if name in categorical:
            fit_values = train[name].fillna(MISSING_CATEGORY).astype(str)
            categories = sorted(set(fit_values) | {MISSING_CATEGORY})
            test_values = test[name].fillna(MISSING_CATEGORY).astype(str)
            test_values = test_values.where(test_values.isin(categories), MISSING_CATEGORY)
            out_train[name] = pd.Categorical(fit_values, categories=categories)
            out_test[name] = pd.Categorical(test_values, categories=categories)
        else:
            median = train[name].median()
            fill = 0.0 if pd.isna(median) else float(median)
            out_train[name] = train[name].astype("float32").fillna(fill).to_numpy()
            out_test[name] = test[name].astype("float32").fillna(fill).to_numpy()
    return pd.DataFrame(out_train), pd.DataFrame(out_test)


def run_pytabkit(method, table, train_rows, test_rows, seed):
    from importlib.metadata import version

    import pytabkit

    regression = table.task == "regression"
    classes = {
        "realmlp_td": (pytabkit.RealMLP_TD_Regressor, pytabkit.RealMLP_TD_Classifier),
        "tabm_d": (pytabkit.TabM_D_Regressor, pytabkit.TabM_D_Classifier),
    }[method]
    cls = classes[0] if regression else classes[1]
    X_train, X_test = table_frames(table, train_rows, test_rows)
    model = cls(device="cpu", random_state=seed, n_threads=1, verbosity=0)
    model.fit(X_train, table.y[train_rows])
    return model.predict(X_test), {"estimator": cls.__name__,
                                   "pytabkit_version": version("pytabkit")}


def run_autogluon_nn(table, train_rows, test_rows, seconds, seed):
    """AutoGluon as its documentation has it: TabularPredictor(label, eval_metric, path,
    verbosity).fit(train_data, time_limit, hyperparameters) with only its two neural models at
    their default hyperparameters, on one CPU (fit's num_cpus is the whole fit's total), then
    predict on the test rows. Runs under .venv-autogluon (`make bench-env-autogluon`)."""
    import tempfile
    from importlib.metadata import version

    from autogluon.tabular import TabularPredictor

    label = "__target__"
    train, test = table_frames(table, train_rows, test_rows)
    train[label] = table.y[train_rows]
    regression = table.task == "regression"
    # AutoGluon seeds each model itself (0 unless its hyperparameters name a seed: NN_TORCH's
    # `seed_value`, FASTAI's `random_seed`) and draws its validation rows with the learner's
    # random_state (0 by default): both get the benchmark's seed, nothing else is changed.
    hyperparameters = {"NN_TORCH": {"seed_value": seed}, "FASTAI": {"random_seed": seed}}
    with tempfile.TemporaryDirectory(prefix="autogluon-bench-") as tmp:
        predictor = TabularPredictor(label=label, problem_type=table.task,
                                     eval_metric="r2" if regression else "accuracy",
                                     path=tmp, verbosity=0, learner_kwargs={"random_state": seed})
        predictor.fit(train, hyperparameters=hyperparameters, time_limit=seconds,
                      num_cpus=1, num_gpus=0)
        predicted = predictor.predict(test).to_numpy()
        models = predictor.leaderboard(silent=True)["model"].tolist()
        best = predictor.model_best
    return predicted, {"models": models, "model_best": best,
                       "autogluon_version": version("autogluon.tabular"),
                       "pandas_version": version("pandas")}
