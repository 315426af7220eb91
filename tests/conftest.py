"""Shared fixtures: one MLflow SQLite store per test session, one smoke run reused by many tests."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("MLFLOW_TRACKING_URI", None)

import pytest
import torch
from metricbench.bench.run.cell import CellEnv
from metricbench.bench.run.runner import RunSettings, run_suite
from metricbench.bench.run.suite import load_suite

# one intra-op thread per test process, as the harness's own default: the tests run in one worker per
# core (bench/dev.py), and two-thread workers on two cores would oversubscribe them
torch.set_num_threads(1)


# the slow tier's longest files first: xdist hands whole files to the workers in collection order
# (bench/dev.py passes --no-loadscope-reorder), so the quick suite's 7 minutes start at once beside the
# real-process tests instead of after them
LONGEST_FIRST = ("test_quick_suite.py", "test_reliability.py", "test_paper_suites.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory):
    """One SQLite store for the whole session (creating one costs over a second)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def checkpoint_cache(tmp_path_factory):
    """Pretrained checkpoints shared across tests (same key -> same checkpoint)."""
    return tmp_path_factory.mktemp("pretrained")


@pytest.fixture(scope="session")
def suite_cache(tmp_path_factory):
    """The cache (checkpoints, generated datasets, stages) the whole-suite reproduction tests share: a
    checkpoint their suites have in common is trained once."""
    return tmp_path_factory.mktemp("suite-cache")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, checkpoint_cache):
    """`metricbench run smoke` once, into its own folder with its own store (as a user would)."""
    out = tmp_path_factory.mktemp("smoke")
    summary = run_suite(load_suite("smoke"), RunSettings(out_dir=out, device="cpu", quiet=True, cache_dir=checkpoint_cache))
    return out, summary


@pytest.fixture
def cell_env(tmp_path, checkpoint_cache):
    return CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache))


def _temporary_entries(registry):
    """Register test-only entries in `registry`, and remove them when the test ends."""
    added = []

    def register(name, factory, options=None):
        registry.register(name, f"test {registry.kind} {name}", options)(factory)
        added.append(name)
        return factory

    yield register
    for name in added:
        registry.unregister(name)


@pytest.fixture
def temporary_method():
    """Register test-only methods (so `methods = "all"` never sees them after the test)."""
    from metricbench.methods import METHODS

    yield from _temporary_entries(METHODS)


@pytest.fixture
def temporary_task():
    """Register test-only tasks (e.g. a built-in task with a tiny pretraining recipe)."""
    from metricbench.tasks import TASKS

    yield from _temporary_entries(TASKS)
