"""What a cell is and what it reuses: the target metric as an axis, the checkpoint's identity, the
device every computation runs on, and data checked before anything runs."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import metricbench.bench.run.pretrain
import torch
from metricbench.bench.cli import main
from metricbench.bench.core.training import TrainRecipe
from metricbench.bench.run.cell import CellEnv, run_cell
from metricbench.bench.run.pretrain import checkpoint_key
from metricbench.bench.run.runner import RunSettings, run_suite
from metricbench.bench.run.suite import load_suite
from metricbench.tasks import TASKS
from metricbench.tasks.digits import DigitsTask
from metricbench.tasks.glyphs_retrieval import GlyphsRetrievalTask


def _suite(tmp_path, text):
    path = tmp_path / "suite.toml"
    path.write_text(textwrap.dedent(text))
    return load_suite(str(path))


def test_two_targets_are_two_cells_with_their_own_oracle_and_one_pretraining(tmp_path, monkeypatch):
    suite = _suite(
        tmp_path,
        """
        name = "targets"
        tasks = ["digits"]
        methods = ["surrogate"]
        [targets]
        digits = ["misclassification", "aucpr"]
        [budget]
        steps = 4
        queries = 2
        [task_options.digits]
        width = 8
        """,
    )
    cells = suite.cells()
    assert [c.target for c in cells] == ["misclassification", "aucpr"] and cells[0].cell_id != cells[1].cell_id
    pretrainings = []
    real = metricbench.bench.run.pretrain.train_steps
    monkeypatch.setattr(metricbench.bench.run.pretrain, "train_steps", lambda *a, **k: (pretrainings.append(1), real(*a, **k)))
    out = tmp_path / "out"
    summary = run_suite(suite, RunSettings(out_dir=out, device="cpu", quiet=True))
    assert summary.failed == 0 and summary.computed == 2
    assert len(pretrainings) == 1
    table = (out / "table.md").read_text()  # the paper's layout: a row per target, each method's run that optimised it
    assert "| digits | misclassification ↓ |" in table and "| digits | aucpr ↑ |" in table
    records = sorted((out / "cells").glob("*.json"))
    assert {r.name.split("--")[1] for r in records} == {"misclassification", "aucpr"}


def test_a_target_that_is_not_a_metric_of_the_task_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('tasks = ["digits"]\nmethods = ["surrogate"]\n[targets]\ndigits = ["aucp"]\n')
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "target 'aucp' of task 'digits'" in err and "did you mean 'aucpr'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "cells").exists()


def test_the_val_curve_interval_is_not_part_of_a_cells_identity(tmp_path):
    text = 'tasks = ["digits"]\nmethods = ["surrogate"]\n[budget]\nsteps = 10\neval_every = {}\n'
    (a,) = _suite(tmp_path, text.format(2)).cells()
    (b,) = _suite(tmp_path, text.format(5)).cells()
    assert a.eval_every == 2 and b.eval_every == 5 and a.cell_id == b.cell_id


def _task_package(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "mytask.py").write_text(
        "from metricbench.tasks.digits import DigitsTask\n\n\nclass MyTask(DigitsTask):\n    pass\n"
    )
    sys.path.insert(0, str(tmp_path))
    module = importlib.import_module(f"{name}.mytask")
    return folder, module.MyTask(**TASKS.entry("digits").resolve_options("task", {}))


def test_the_checkpoint_key_follows_the_tasks_own_module_not_its_folder(tmp_path):
    folder, task = _task_package(tmp_path, "keytest_pkg")
    try:
        key = checkpoint_key(task, 0, "cpu")
        (folder / "another_task.py").write_text("# an unrelated task added beside it\n")
        assert checkpoint_key(task, 0, "cpu") == key
        with open(folder / "mytask.py", "a") as handle:
            handle.write("# the task's own module changed\n")
        changed = checkpoint_key(task, 0, "cpu")
        assert changed != key
        type(task).version = "2"
        assert checkpoint_key(task, 0, "cpu") != changed
        assert checkpoint_key(task, 1, "cpu") != checkpoint_key(task, 0, "cpu")
        assert checkpoint_key(task, 0, "cuda") != checkpoint_key(task, 0, "cpu")
    finally:
        sys.path.remove(str(tmp_path))


def test_the_checkpoint_holds_weights_only_and_the_pretrained_metrics_are_recomputed(tmp_path):
    (cell,) = load_suite("smoke").select(tasks=["breast-cancer"], methods=["surrogate"]).cells()
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    record = run_cell(cell, env)
    (checkpoint,) = (tmp_path / "cache" / "pretrained").glob("*/weights.pt")
    assert set(torch.load(checkpoint, weights_only=True)) == {"state_dict"}
    assert set(json.loads((checkpoint.parent / "manifest.json").read_text())["info"]) == {"key", "recipe", "seconds"}
    assert set(record["pretrained"]["test"]) == set(record["metric_names"])


class TinyGlyphs(GlyphsRetrievalTask):
    pretrain = TrainRecipe(steps=2, batch_size=32, optimizer="adam", lr=1e-3)


def test_a_cpu_cell_computes_its_metrics_on_the_cpu_even_when_a_gpu_is_present(
    tmp_path, monkeypatch, temporary_task, checkpoint_cache
):
    temporary_task("test-glyphs", TinyGlyphs, TASKS.entry("glyphs-retrieval").options)
    import metricbench.tasks.kinds.retrieval
    import metricbench.tasks.metrics.retrieval

    devices = []
    real = metricbench.tasks.kinds.retrieval.retrieval_metrics

    def spy(embeddings, labels, *args, **kwargs):
        devices.append((embeddings.device.type, kwargs["device"]))
        return real(embeddings, labels, *args, **kwargs)

    monkeypatch.setattr(metricbench.tasks.kinds.retrieval, "retrieval_metrics", spy)
    # a metric left on device="auto" would now pick CUDA (and fail on this machine)
    monkeypatch.setattr(metricbench.tasks.metrics.retrieval, "_auto_device", lambda embeddings: torch.device("cuda"))
    suite = load_suite("smoke").select(methods=["surrogate"])
    suite.tasks, suite.task_options, suite.budget = ["test-glyphs"], {"test-glyphs": {"classes": 30}}, {"steps": 2, "queries": 1}
    (cell,) = suite.cells()
    record = run_cell(cell, CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache)))
    assert record["status"] == "ok", record.get("traceback")
    assert devices and set(devices) == {("cpu", "cpu")}


class NeedsData(DigitsTask):
    requires_data = True


def test_a_task_that_needs_data_without_a_data_dir_is_one_line_and_exit_2_before_anything_runs(tmp_path, capsys, temporary_task):
    temporary_task("test-needs-data", NeedsData, TASKS.entry("digits").options)
    path = tmp_path / "suite.toml"
    path.write_text('tasks = ["test-needs-data"]\nmethods = ["surrogate"]\n')
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "task 'test-needs-data'" in err[0] and "--data-dir" in err[0]
    assert not (out / "mlflow.db").exists() and not (out / "cells").exists()
