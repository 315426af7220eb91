"""`ctx.note(text)`: a line a method says about its run (MetricOpt: "value function uninformative")
reaches the record, MLflow and the table, with the seeds that said it."""

from __future__ import annotations

from metricbench.bench.report import render, tables
from metricbench.bench.run.runner import RunSettings, run_suite
from metricbench.bench.run.suite import load_suite
from metricbench.bench.track.collect import collect
from metricbench.methods.base import Method


class NotesOnSeedZero(Method):
    def finetune(self, model, task, oracle, ctx):
        if ctx.seed == 0:
            ctx.note("the   first seed\nwas special")  # one line, whitespace folded
            ctx.note("the first seed was special")  # said twice, kept once
        for _ in range(ctx.budget.steps):
            ctx.step()
        return ctx.finish()


def test_a_note_reaches_the_record_the_store_and_the_table(tmp_path, temporary_method, checkpoint_cache):
    temporary_method("test-notes", NotesOnSeedZero)
    path = tmp_path / "suite.toml"
    path.write_text(
        'name = "notes"\ntasks = ["breast-cancer"]\nmethods = ["test-notes"]\nseeds = 2\n[budget]\nsteps = 2\nqueries = 0\n'
    )
    settings = RunSettings(out_dir=tmp_path / "out", device="cpu", quiet=True, cache_dir=checkpoint_cache)
    assert run_suite(load_suite(str(path)), settings).failed == 0
    line = "- breast-cancer / test-notes: the first seed was special (seeds 0 of 2)"
    assert line in (tmp_path / "out" / "table.md").read_text()
    from_store, _ = collect(f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}", "notes")
    assert line in render.to_markdown(tables.build(from_store))
