"""Shared fixtures: small tables made on the spot, and a way to run the CLI in process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ._fresh import warm

# The few small real files the tests read live in the repository (sources and licences in its
# README), so that a clone runs its tests without ../shared beside it.
TEST_DATA = Path(__file__).resolve().parent / "data" / "files"


def make_churn_frame() -> pd.DataFrame:
    """A 300-row binary table with numeric, categorical and missing values; learnable."""
    rng = np.random.default_rng(0)
    n = 300
    tenure = rng.integers(1, 72, n).astype(float)
    charges = rng.normal(70, 20, n)
    plan = rng.choice(["basic", "plus", "pro"], n)
    risk = -0.05 * tenure + 0.03 * charges + (plan == "basic") * 1.0
    churned = np.where(risk + rng.normal(0, 0.5, n) > np.median(risk), "yes", "no")
    tenure[rng.choice(n, 15, replace=False)] = np.nan
    return pd.DataFrame({"tenure": tenure, "charges": charges, "plan": plan, "churned": churned})


@pytest.fixture
def churn_frame() -> pd.DataFrame:
    return make_churn_frame()


@pytest.fixture
def churn_csv(tmp_path: Path, churn_frame: pd.DataFrame) -> Path:
    path = tmp_path / "churn.csv"
    churn_frame.to_csv(path, index=False)
    return path


@pytest.fixture
def cli(capsys):
    """Run `nntune ARGS...` in process; returns (exit code, stdout, stderr)."""
    from nntune.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _start_postgres() -> None:
    """Start the machine's PostgreSQL cluster if it is not running (tests never skip it)."""
    import glob
    import subprocess

    for version in sorted(glob.glob("/etc/postgresql/*")):
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", Path(version).name, "main", "start"],
                       check=False, capture_output=True, timeout=60)


@pytest.fixture
def postgres_url():
    """A fresh database on the local PostgreSQL server (127.0.0.1:5432, trust auth), dropped
    afterwards. Yields its SQLAlchemy URL."""
    import time
    import uuid

    import psycopg

    def connect():
        return psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres",
                               autocommit=True)

    try:
        admin = connect()
    except psycopg.OperationalError:
        _start_postgres()
        for _ in range(30):
            try:
                admin = connect()
                break
            except psycopg.OperationalError:
                time.sleep(1)
        else:
            raise
    name = f"nntune_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


FRESH_HELPERS = {"run_script", "start_script", "run_fresh", "fresh_predict_proba"}


def pytest_collection_finish(session):
    """When a selected test runs a script in a fresh process (anywhere in the suite), start the
    helper interpreter now: its imports then overlap the first tests instead of delaying one."""
    if any(FRESH_HELPERS & set(getattr(getattr(item, "function", None), "__code__", None).co_names)
           for item in session.items if hasattr(getattr(item, "function", None), "__code__")):
        warm()
