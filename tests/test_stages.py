"""Stages: what a method builds once before its cells is built by the harness on its own budget, shared
by the cells whose stage key matches (also by two processes started at once), kept out of the cells'
ledgers, handed to `finetune` as `ctx.stage`, and shown once in the spending table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from metricbench.bench.core.budget import Budget
from metricbench.bench.report import costs, tables
from metricbench.bench.report.records import from_record
from metricbench.bench.run.cell import CellEnv, run_cell
from metricbench.bench.run.suite import load_suite
from metricbench.bench.track.collect import collect
from metricbench.methods import Option
from metricbench.methods.base import Method, StageSpec

STAGE_BUDGET = Budget(steps=3, queries=2, batch_queries=0, batch_scores=0, stats=0)


class BuildsAStage(Method):
    """Queries val twice while building its stage (a file with the values), reads it back in finetune."""

    def stage(self, budget):
        return StageSpec({"size": self.options["size"]}, STAGE_BUDGET)

    def build_stage(self, model, task, oracle, ctx):
        values = [oracle.query(model) for _ in range(2)]
        for _ in range(3):
            ctx.step()
        (ctx.folder / "values.json").write_text(json.dumps(values))
        with open(os.environ["STAGE_BUILDS"], "a") as log:
            log.write("built\n")
        ctx.log("first_value", values[0])

    def finetune(self, model, task, oracle, ctx):
        stored = json.loads((ctx.stage / "values.json").read_text())
        ctx.log("stage_values", len(stored))
        for _ in range(ctx.budget.steps):
            ctx.step()
        return ctx.finish()


OPTIONS = {"size": Option(int, 1, "shapes the stage"), "lr": Option(float, 0.1, "does not")}


def _cells(method, lrs):
    (cell,) = load_suite("smoke").select(tasks=["breast-cancer"], methods=["surrogate"]).cells()
    budget = Budget(steps=2, queries=0)
    return [
        type(cell)(**{**cell.__dict__, "method": method, "method_options": {"size": 1, "lr": lr}, "budget": budget}) for lr in lrs
    ]


def test_two_cells_share_one_stage_built_on_its_own_budget(tmp_path, temporary_method, checkpoint_cache, monkeypatch):
    builds = tmp_path / "builds.txt"
    monkeypatch.setenv("STAGE_BUILDS", str(builds))
    temporary_method("test-stage", type("BuildsASharedStage", (BuildsAStage,), {}), OPTIONS)  # its own class: its own stages
    env = CellEnv(device="cpu", out_dir=str(tmp_path / "out"), cache_dir=str(checkpoint_cache))
    records = [run_cell(cell, env) for cell in _cells("test-stage", [0.1, 0.2])]
    assert [r["status"] for r in records] == ["ok", "ok"], [r["reason"] for r in records]
    assert builds.read_text() == "built\n"
    first, second = (r["stage"] for r in records)
    assert first["id"] == second["id"] and (first["built_here"], second["built_here"]) == (True, False)
    assert first["spent"]["queries"]["calls"] == 2 and second["spent"] == first["spent"]
    assert first["logs"] == {"first_value": second["logs"]["first_value"]}
    for r in records:  # the stage's queries are not the cells'
        assert r["spent"]["queries"]["calls"] == 0
        assert r["history"]["logs"]["stage_values"] == [(0, 2.0)]

    table = tables.build([from_record(r) for r in records])
    stage_rows = [key for key in table.costs if key[0].endswith("(stage)")]
    assert stage_rows == [("test-stage (lr=0.1) (stage)", "breast-cancer"), ("test-stage (lr=0.2) (stage)", "breast-cancer")]
    # the stage each row used, once
    assert all((table.costs[row].n, table.costs[row].means["queries_calls"]) == (1, 2) for row in stage_rows)
    doubled = tables.build([from_record(r) for r in records + records[:1]])  # a row's cells sharing one stage
    assert doubled.costs[stage_rows[0]].n == 1
    assert "A `(stage)` row is what a method built once" in costs.costs_markdown(table)


def test_a_different_stage_key_builds_another_stage(tmp_path, temporary_method, checkpoint_cache, monkeypatch):
    monkeypatch.setenv("STAGE_BUILDS", str(tmp_path / "builds.txt"))
    # a class of its own: the stage belongs to the class, and BuildsAStage's size-1 stage may exist already
    temporary_method("test-stage-sizes", type("BuildsAnotherStage", (BuildsAStage,), {}), OPTIONS)
    env = CellEnv(device="cpu", out_dir=str(tmp_path / "out"), cache_dir=str(checkpoint_cache))
    small, large = _cells("test-stage-sizes", [0.1, 0.1])
    large = type(large)(**{**large.__dict__, "method_options": {"size": 2, "lr": 0.1}})
    ids = {run_cell(cell, env)["stage"]["id"] for cell in (small, large)}
    assert len(ids) == 2 and (tmp_path / "builds.txt").read_text() == "built\nbuilt\n"


SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {tests!r})
    from test_stages import BuildsAStage, OPTIONS, _cells
    from metricbench.methods import METHODS
    from metricbench.bench.run.cell import CellEnv, run_cell

    class SlowStage(BuildsAStage):
        def build_stage(self, model, task, oracle, ctx):
            time.sleep(1.0)  # long enough that the other process asks while this one builds
            super().build_stage(model, task, oracle, ctx)

    METHODS.register("test-slow-stage", "test", OPTIONS)(SlowStage)
    (cell,) = _cells("test-slow-stage", [float(sys.argv[1])])
    record = run_cell(cell, CellEnv(device="cpu", out_dir=sys.argv[2], cache_dir=sys.argv[3]))
    print(json.dumps({{"status": record["status"], "reason": record["reason"], "stage": record.get("stage")}}))
    """
)


def test_two_processes_started_at_once_build_the_stage_once(tmp_path, checkpoint_cache):
    builds = tmp_path / "builds.txt"
    script = SCRIPT.format(tests=str(Path(__file__).parent))
    env = {**os.environ, "STAGE_BUILDS": str(builds)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, lr, str(tmp_path / f"out{lr}"), str(checkpoint_cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for lr in ("0.1", "0.2")
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert all(r["status"] == "ok" for r in results), [
        (r["reason"], err[-2000:]) for r, (_, err) in zip(results, outputs, strict=True)
    ]
    assert builds.read_text() == "built\n"
    assert sorted(r["stage"]["built_here"] for r in results) == [False, True]
    assert len({r["stage"]["id"] for r in results}) == 1


def test_a_suite_run_logs_the_stage_and_the_table_from_the_store_shows_it(
    tmp_path, temporary_method, checkpoint_cache, monkeypatch
):
    from metricbench.bench.run.runner import RunSettings, run_suite

    monkeypatch.setenv("STAGE_BUILDS", str(tmp_path / "builds.txt"))
    temporary_method("test-stage-suite", type("BuildsASuiteStage", (BuildsAStage,), {}), OPTIONS)  # its own class: its own stages
    path = tmp_path / "suite.toml"
    path.write_text('name = "stages"\ntasks = ["breast-cancer"]\nmethods = ["test-stage-suite"]\nseeds = 2\n')
    path.write_text(path.read_text() + "[budget]\nsteps = 2\nqueries = 0\n")
    settings = RunSettings(out_dir=tmp_path / "out", device="cpu", quiet=True, cache_dir=checkpoint_cache)
    assert run_suite(load_suite(str(path)), settings).failed == 0
    assert (tmp_path / "builds.txt").read_text() == "built\nbuilt\n"  # one stage per seed
    from_store, _ = collect(f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}", "stages")
    table = tables.build(from_store)
    stage = table.costs[("test-stage-suite (stage)", "breast-cancer")]  # one stage per seed: two, each 2 queries
    assert (stage.n, stage.means["queries_calls"]) == (2, 2)
    assert "| test-stage-suite (stage) | breast-cancer | 2 | – | 2 |" in (tmp_path / "out" / "costs.md").read_text()


class OverspendsItsStage(BuildsAStage):
    def stage(self, budget):
        return StageSpec({"size": 1}, Budget(steps=3, queries=1))


def test_a_stage_that_overspends_fails_the_cell_and_stores_nothing(tmp_path, temporary_method, checkpoint_cache, monkeypatch):
    monkeypatch.setenv("STAGE_BUILDS", str(tmp_path / "builds.txt"))
    temporary_method("test-stage-overspends", OverspendsItsStage, OPTIONS)
    env = CellEnv(device="cpu", out_dir=str(tmp_path / "out"), cache_dir=str(checkpoint_cache))
    (cell,) = _cells("test-stage-overspends", [0.1])
    record = run_cell(cell, env)
    assert record["status"] == "failed" and "BudgetExhausted" in record["reason"] and "queries" in record["reason"]
    stored = [p for p in (checkpoint_cache / "stages").iterdir() if p.is_dir() and p.name.startswith("test-stage-overspends")]
    assert stored == []  # nothing half-built looks complete
