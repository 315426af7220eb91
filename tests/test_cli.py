"""The command line: listing, tables, and bad input as one line with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from metricbench.bench.cli import main


def _cli(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "metricbench.bench.cli", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_a_users_own_tasks_folder_does_not_shadow_the_installed_packages(tmp_path):
    # the packages install as metricbench.*: a project folder with its own `tasks/` and `bench/` keeps both
    for name in ("tasks", "bench", "methods"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"OWNER = 'user {name}'\n")
    code = (
        "import tasks, bench, methods; from metricbench.tasks import register_task, list_tasks; "
        "from metricbench.methods import list_methods; "
        "print(tasks.OWNER, bench.OWNER, methods.OWNER, 'digits' in list_tasks(), 'surrogate' in list_methods())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["user", "tasks", "user", "bench", "user", "methods", "True", "True"]


def test_help_imports_nothing_heavy():
    code = (
        "import sys, metricbench.bench.cli; metricbench.bench.cli.build_parser(); "
        "print(sorted({'torch', 'mlflow', 'sklearn'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert "run" in _cli("--help").stdout


def test_list_shows_tasks_methods_and_suites(capsys):
    assert main(["list", "tasks"]) == 0
    assert main(["list", "methods", "--options"]) == 0
    assert main(["list", "suites"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "breast-cancer", "synthetic-binary", "surrogate", "smoke", "quick", "lr (float"):
        assert name in out


@pytest.mark.parametrize("fmt", ["md", "latex", "html", "csv"])
def test_table_renders_from_the_store(smoke_run, capsys, fmt):
    out, _ = smoke_run
    assert main(["table", "--out", str(out), "--format", fmt]) == 0
    text = capsys.readouterr().out
    assert text == (out / f"table.{ {'md': 'md', 'latex': 'tex', 'html': 'html', 'csv': 'csv'}[fmt] }").read_text()


def test_table_adds_published_rows_from_a_users_file(smoke_run, capsys, tmp_path):
    out, _ = smoke_run
    published = tmp_path / "published.csv"
    published.write_text(
        "row,task,metric,value,reported,options,source,where,protocol,provenance\n"
        "A paper (2020),digits,misclassification,0.0123,1.23%,,A paper,Table 1,same split,re-read from the PDF\n"
    )
    assert main(["table", "--out", str(out), "--published", str(published)]) == 0
    text = capsys.readouterr().out
    assert "A paper (2020)" in text and "0.0123" in text
    assert main(["table", "--out", str(out), "--published"]) == 0  # the project's own file: no row for the smoke tasks
    assert "A paper (2020)" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "smoke", "--tasks", "digitz"], "unknown task 'digitz' (did you mean 'digits'?)"),
        (["run", "smoke", "--methods", "surrogat"], "unknown method 'surrogat'"),
        (["run", "nosuch.toml"], "suite file 'nosuch.toml' does not exist"),
        (["run", "smoke", "--data-dir", "/nonexistent/data"], "--data-dir '/nonexistent/data' is not a folder"),
        (["run", "smoke", "--tracking-uri", "http://127.0.0.1:9"], "tracking server http://127.0.0.1:9 is unreachable"),
        (["run", "smoke", "--tracking-uri", "./mlruns"], "file store"),
        (["run", "smoke", "--seeds", "0"], "--seeds must be at least 1"),
        (["table", "--out", "/nonexistent"], "has no cell records"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    if args[0] == "run":
        args = [*args, "--out", str(tmp_path / "out")]
    result = _cli(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("metricbench: error: ") and message in result.stderr
    assert not (tmp_path / "out" / "cells").exists()  # nothing ran


def test_malformed_suite_file_names_the_key(tmp_path):
    suite = tmp_path / "bad.toml"
    suite.write_text('tasks = ["digits"]\nmethods = "all"\n[budget]\nsteps = -3\n')
    result = _cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "budget.steps" in result.stderr and result.stderr.count("\n") == 1


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _cli("run", "smoke", "--out", str(blocker / "out"))
    assert result.returncode == 2 and "output folder" in result.stderr and "not writable" in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = _cli("--debug", "run", "smoke", "--tasks", "digitz", "--out", str(tmp_path))
    assert result.returncode != 0 and "Traceback" in result.stderr and "UsageError" in result.stderr


def test_asking_for_cuda_without_a_gpu_is_bad_input(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    result = _cli("run", "smoke", "--device", "cuda", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "no CUDA GPU is available" in result.stderr and result.stderr.count("\n") == 1
