"""One tiny tuned run shared by the compression tests (two hidden layers with batch norm, so
that structured pruning has neurons and norm statistics to cut)."""

from __future__ import annotations

import pytest

import nntune


@pytest.fixture(scope="package")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("compress") / "run"
    nntune.tune(dataset="breast_cancer", trials=2, max_epochs=10, out=out, report=False, threads=1, seed=0,
                space={"n_layers": 2, "units": 32, "norm": "batch"})
    return out


@pytest.fixture(scope="package")
def raw_rows():
    """Raw rows as a user would pass them: the first 40 rows of the feature columns."""
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer().data[:40]
