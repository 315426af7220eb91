"""Shared fixtures: one MLflow SQLite store per test session, one smoke run reused by many tests."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("MLFLOW_TRACKING_URI", None)

import pytest

from bench.cell import CellEnv
from bench.runner import RunSettings, run_suite
from bench.suite import load_suite


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory):
    """One SQLite store for the whole session (creating one costs over a second)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def checkpoint_cache(tmp_path_factory):
    """Pretrained checkpoints shared across tests (same key -> same checkpoint)."""
    return tmp_path_factory.mktemp("pretrained")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, checkpoint_cache):
    """`metricbench run smoke` once, into its own folder with its own store (as a user would)."""
    out = tmp_path_factory.mktemp("smoke")
    summary = run_suite(load_suite("smoke"), RunSettings(out_dir=out, device="cpu", quiet=True, cache_dir=checkpoint_cache))
    return out, summary


@pytest.fixture
def cell_env(tmp_path, checkpoint_cache):
    return CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache))


@pytest.fixture
def temporary_method():
    """Register test-only methods and remove them afterwards (so `methods = "all"` never sees them)."""
    from methods import METHODS

    added = []

    def register(name, cls, options=None):
        METHODS.register(name, f"test method {name}", options)(cls)
        added.append(name)
        return cls

    yield register
    for name in added:
        METHODS.unregister(name)


@pytest.fixture
def temporary_task():
    """Register test-only tasks (e.g. a built-in task with a tiny pretraining recipe) and remove them afterwards."""
    from tasks import TASKS

    added = []

    def register(name, cls, options=None):
        TASKS.register(name, f"test task {name}", options)(cls)
        added.append(name)
        return cls

    yield register
    for name in added:
        TASKS.unregister(name)
