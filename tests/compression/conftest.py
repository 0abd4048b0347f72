"""Tiny tuned runs shared by the compression tests: two hidden layers with batch norm (so that
structured pruning has neurons and norm statistics to cut), and three with skip connections."""

from __future__ import annotations

import pytest

import nntune

from .._fresh import warm
from ._helpers import run_data


def _tune(out, trials, **space):
    warm()  # the fresh process of the reload tests imports its libraries while this trains
    # One network to prune and quantize (an ensemble of fold models takes unstructured pruning,
    # int8 and distillation only; tests/compression/test_ensemble.py covers it).
    nntune.tune(dataset="breast_cancer", trials=trials, max_epochs=10, out=out, report=False,
                threads=1, seed=0, space=space, final="refit", cv="none")  # one split: the compressing is under test
    return out


@pytest.fixture(scope="package")
def run_dir(tmp_path_factory):
    return _tune(tmp_path_factory.mktemp("compress") / "run", 2, n_layers=2, units=32, norm="batch", embedding="none")


@pytest.fixture(scope="package")
def residual_run(tmp_path_factory):
    """30 features -> 32 -> 32 -> 32: the last two blocks add their input, so all three
    hidden layers form one residual stream."""
    run = _tune(tmp_path_factory.mktemp("compress") / "residual", 1, n_layers=3, units=32,
                norm="batch", residual=True, embedding="none")
    return run_data(run)


@pytest.fixture(scope="package")
def raw_rows():
    """Raw rows as a user would pass them: the first 40 rows of the feature columns."""
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer().data[:40]
