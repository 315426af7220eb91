"""The runner: tables and MLflow contents, resume, determinism, the shared checkpoint, failing cells."""

from __future__ import annotations

import json

import metricbench.bench.run.pretrain
import torch
from metricbench.bench.cli import main
from metricbench.bench.run.cell import CellEnv, prepare_finetune, read_record, record_path, run_cell
from metricbench.bench.run.runner import RunSettings, run_suite
from metricbench.bench.run.suite import load_suite
from metricbench.methods.base import Method
from mlflow.tracking import MlflowClient


def _child_runs(out):
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name != "Default"]
    runs = client.search_runs([experiment.experiment_id])
    return client, experiment, runs


def test_smoke_run_leaves_tables_and_a_complete_mlflow_store(smoke_run):
    out, summary = smoke_run
    assert summary.failed == 0 and summary.computed == len(load_suite("smoke").cells())
    for name in ("table.md", "table.tex", "table.csv"):
        assert (out / name).stat().st_size > 0
    assert "| surrogate |" in (out / "table.md").read_text()
    assert r"\toprule" in (out / "table.tex").read_text()
    client, experiment, runs = _child_runs(out)
    assert experiment.name == "smoke"
    cells = [r for r in runs if r.data.tags.get("metricbench.kind") == "cell"]
    (parent,) = [r for r in runs if r.data.tags.get("metricbench.kind") == "invocation"]
    assert len(cells) == len(load_suite("smoke").cells())
    for run in cells:
        params, tags, metrics = run.data.params, run.data.tags, run.data.metrics
        assert {"task", "method", "seed", "budget.steps", "budget.queries", "method.lr", "pretrained_checkpoint"} <= set(params)
        # not nested (MLflow's UI would fold the cells under the invocation): a plain tag names it
        assert tags["metricbench.invocation"] == parent.info.run_id and "mlflow.parentRunId" not in tags
        assert run.info.run_name == f"{tags['task']} {tags['method']} seed{tags['seed']}"  # the seed stays visible
        assert metrics["target_test"] == metrics[f"test/{tags['target_metric']}"]  # one column for every task
        assert {"git_commit", "torch_version", "mlflow_version", "device", "cell_id"} <= set(tags)
        assert tags["status"] == "ok" and run.info.status == "FINISHED"
        assert {
            "test/misclassification",
            "test/aucpr",
            "spent/steps_calls",
            "spent/queries_calls",
            "spent/batch_queries_examples",
            "spent/optimizer_steps",
            "wall_seconds",
        } <= set(metrics)
        curve = client.get_metric_history(run.info.run_id, "val/misclassification")
        assert [m.step for m in curve] == [0, 4, 8]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "curves.png" in artifacts and any(a.endswith(".json") for a in artifacts)


def test_running_again_trains_nothing(smoke_run, monkeypatch, checkpoint_cache):
    out, _ = smoke_run
    records = {p: p.read_text() for p in (out / "cells").glob("*.json")}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished suite was trained again")

    monkeypatch.setattr(metricbench.bench.run.pretrain, "train_steps", no_training)
    monkeypatch.setattr("metricbench.bench.run.runner.run_cell", no_training)
    summary = run_suite(load_suite("smoke"), RunSettings(out_dir=out, device="cpu", quiet=True, cache_dir=checkpoint_cache))
    assert (summary.computed, summary.skipped) == (0, len(load_suite("smoke").cells()))
    assert {p: p.read_text() for p in (out / "cells").glob("*.json")} == records


def test_the_same_seed_gives_identical_numbers_on_cpu(tmp_path):
    (cell,) = load_suite("smoke").select(tasks=["digits"], methods=["surrogate"]).cells()
    records = [
        run_cell(cell, CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(tmp_path / f"cache{i}"))) for i in range(2)
    ]
    assert records[0]["status"] == "ok"
    assert records[0]["metrics"] == records[1]["metrics"]
    assert records[0]["history"]["loss"] == records[1]["history"]["loss"]
    assert records[0]["pretrained"]["test"] == records[1]["pretrained"]["test"]


def test_every_method_of_a_task_and_seed_starts_from_one_cached_checkpoint(tmp_path, monkeypatch, temporary_method):
    class Noop(Method):
        def finetune(self, model, task, oracle, ctx):
            return ctx.finish()

    temporary_method("test-noop", Noop)
    calls = []
    real = metricbench.bench.run.pretrain.train_steps
    monkeypatch.setattr(metricbench.bench.run.pretrain, "train_steps", lambda *a, **k: (calls.append(1), real(*a, **k)))
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    cells = load_suite("smoke").select(tasks=["breast-cancer"], methods=["surrogate", "test-noop"]).cells()
    states = [prepare_finetune(c, env).model.state_dict() for c in cells]
    assert len(calls) == 1
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def _suite_file(tmp_path, methods):
    path = tmp_path / "suite.toml"
    path.write_text(
        f'name = "failing"\ntasks = ["breast-cancer"]\nmethods = {json.dumps(methods)}\n[budget]\nsteps = 6\nqueries = 2\n'
    )
    return str(path)


class Diverging(Method):
    def finetune(self, model, task, oracle, ctx):
        batches = task.train_batches(16)
        for _ in range(ctx.budget.steps):
            loss = task.loss(model, next(batches)) * float("nan")
            ctx.step(loss)
        return ctx.finish()


class Raising(Method):
    def finetune(self, model, task, oracle, ctx):
        raise RuntimeError("out of\nideas")


class ReturnsNothing(Method):
    def finetune(self, model, task, oracle, ctx):
        return None


class Greedy(Method):
    def finetune(self, model, task, oracle, ctx):
        for _ in range(ctx.budget.steps + 1):
            ctx.step(torch.tensor(1.0))
        return ctx.finish()


def test_failing_cells_are_recorded_and_the_suite_goes_on(tmp_path, temporary_method, capsys):
    for name, cls in [
        ("test-diverging", Diverging),
        ("test-raising", Raising),
        ("test-returns-nothing", ReturnsNothing),
        ("test-greedy", Greedy),
    ]:
        temporary_method(name, cls)
    methods = ["test-diverging", "surrogate", "test-raising", "test-returns-nothing", "test-greedy"]
    out = tmp_path / "out"
    code = main(["run", _suite_file(tmp_path, methods), "--out", str(out), "--quiet", "--device", "cpu"])
    assert code == 1
    client, _, runs = _child_runs(out)
    by_method = {r.data.tags["method"]: r for r in runs if r.data.tags.get("metricbench.kind") == "cell"}
    assert by_method["surrogate"].data.tags["status"] == "ok"
    reasons = {m: r.data.tags.get("failure_reason", "") for m, r in by_method.items()}
    assert reasons["test-diverging"].startswith("Diverged: loss became nan at step 1")
    assert reasons["test-raising"] == "RuntimeError: out of ideas"
    assert "return ctx.finish()" in reasons["test-returns-nothing"]
    assert "budget 'steps' exhausted: 6 of 6 spent" in reasons["test-greedy"]
    assert all(by_method[m].info.status == "FAILED" for m in methods if m != "surrogate")
    table = (out / "table.md").read_text()
    assert "failed (1/1)" in table and "test-raising / seed 0: RuntimeError: out of ideas" in table
    printed = capsys.readouterr().out
    assert "| surrogate |" in printed and "failed" in printed


def test_failed_cells_are_retried_and_records_missing_from_the_store_are_logged_without_training(
    tmp_path, temporary_method, monkeypatch
):
    temporary_method("test-raising", Raising)
    out = tmp_path / "out"
    suite = _suite_file(tmp_path, ["surrogate", "test-raising"])
    assert main(["run", suite, "--out", str(out), "--quiet", "--device", "cpu"]) == 1
    cells = load_suite(suite).cells()
    # a new store (another --tracking-uri, a moved folder, or a process that died before logging)
    assert read_record(out, cells[0])["status"] == "ok"
    ran = []
    real = run_cell
    monkeypatch.setattr(
        "metricbench.bench.run.runner.run_cell", lambda cell, env, cache: (ran.append(cell.method), real(cell, env, cache))[1]
    )
    other_store = tmp_path / "other" / "mlflow.db"
    args = ["run", suite, "--out", str(out), "--quiet", "--device", "cpu", "--tracking-uri", f"sqlite:///{other_store}"]
    assert main(args) == 1
    assert ran == ["test-raising"]
    _, _, runs = _child_runs(other_store.parent)
    logged = sorted(r.data.tags["method"] for r in runs if r.data.tags.get("metricbench.kind") == "cell")
    assert logged == ["surrogate", "test-raising"]
    assert record_path(out, cells[1]).exists()
