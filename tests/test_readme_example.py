"""The README's example method, installed exactly as written as a plugin package, runs in a cell.

The code block is read from the README, written into a package with an entry point in the group
`metricbench.methods`, installed with pip into a folder put on the path (as `pip install` into the
environment would), discovered by the registry and run on a real cell."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from metricbench.bench.core.budget import Budget
from metricbench.bench.run.cell import CellEnv, cell_folder, run_cell
from metricbench.bench.run.suite import load_suite
from metricbench.methods import METHODS, list_methods
from test_layering import method_violations

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    section = text[text.index("## Adding a method") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_example_is_complete_short_and_follows_the_method_rules():
    code = readme_example()
    assert "..." not in code and "register_method(" in code
    assert len(code.strip().splitlines()) < 60
    assert method_violations(code) == []


@pytest.fixture
def installed_example(tmp_path, monkeypatch):
    package = tmp_path / "my-methods"
    package.mkdir()
    (package / "my_methods.py").write_text(readme_example())
    (package / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=70.1"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "my-methods"
        version = "0.1.0"

        [project.entry-points."metricbench.methods"]
        my_methods = "my_methods"

        [tool.setuptools]
        py-modules = ["my_methods"]
        """)
    )
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site)]
    subprocess.run([*pip, str(package)], check=True, capture_output=True)
    monkeypatch.syspath_prepend(str(site))
    METHODS.reload_plugins()
    yield "best-on-val-batch"
    METHODS.unregister("best-on-val-batch")
    sys.modules.pop("my_methods", None)


def test_the_readme_example_runs_as_an_installed_plugin(installed_example, tmp_path, checkpoint_cache):
    assert installed_example in list_methods()
    (cell,) = load_suite("smoke").select(tasks=["breast-cancer"], methods=["surrogate"]).cells()
    cell = type(cell)(
        **{**cell.__dict__, "method": installed_example, "method_options": {"every": 2}, "budget": Budget(steps=8, queries=1)}
    )
    env = CellEnv(device="cpu", out_dir=str(tmp_path / "out"), cache_dir=str(checkpoint_cache))
    record = run_cell(cell, env)
    assert record["status"] == "ok", record["reason"]
    assert record["spent"]["batch_queries"]["calls"] == 1 + 4 and record["spent"]["queries"]["calls"] == 0
    assert record["steps"]["optimizer_steps"] == 8 and len(record["history"]["logs"]["val_batch_metric"]) == 4
    assert (cell_folder(env.out_dir, cell) / "best.txt").read_text().startswith("misclassification on the fixed val batch")
