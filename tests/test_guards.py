"""Guards a mutation run found unguarded: for each, a fast test that passes on the code as it is and
fails when the guard is broken the way `tests/mutation_check.py` breaks it (that script applies each
mutation to a copy of the repository and checks that the tests named there fail).

The guarantees: a crashed write leaves the old file whole; an unreported optimizer step fails the
cell, even the last one; an optimizer holding any of the model's parameters is the model's; the
runner's test-curve evaluations are timed apart and not charged to the method; evaluating a model
gives it back in the mode it had; tables mark and bold by Holm-adjusted p-values only; a stage is
keyed by its target metric; a stage works on a copy of the cell's model; a record without a checksum
is never taken as verified.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from metricbench.bench.api.stages import StageSpec
from metricbench.bench.core.budget import Budget
from metricbench.bench.core.errors import UnreportedSteps
from metricbench.bench.core.files import atomic_write_bytes, key_digest
from metricbench.bench.report import render, tables
from metricbench.bench.report.records import CellResult
from metricbench.bench.run import cell as cell_module
from metricbench.bench.run.anytime import AnytimeCurve
from metricbench.bench.run.cell import prepare_finetune, read_record, record_path, run_cell, write_record
from metricbench.bench.run.metering import metering
from metricbench.bench.run.stages import build_or_reuse, stage_identity
from metricbench.bench.run.suite import load_suite
from metricbench.methods.base import Method

REPOSITORY = Path(__file__).resolve().parents[1]


def _cell(method="surrogate", steps=4, queries=2, target=None, anytime=0, **accounts):
    """A breast-cancer cell of the smoke suite (a pretraining of well under a second) with a tiny budget."""
    (cell,) = load_suite("smoke").select(tasks=["breast-cancer"], methods=["surrogate"]).cells()
    return dataclasses.replace(
        cell,
        method=method,
        method_options={},
        budget=Budget(steps=steps, queries=queries, **accounts),
        target=target or cell.target,
        anytime=anytime,
    )


def _sgd_step(model, task, optimizer, batches, extra=None):
    """One optimizer step on the surrogate loss (plus `extra`'s square, so `extra` gets a gradient)."""
    loss = task.loss(model, next(batches))
    if extra is not None:
        loss = loss + (extra**2).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


# ----------------------------------------------------------------------------- 1. atomic writes


def test_a_crash_mid_write_leaves_the_old_file_whole_and_no_temporary_file(tmp_path):
    path = tmp_path / "record.json"
    atomic_write_bytes(path, lambda handle: handle.write(b"the old content"))

    def crash(handle):
        handle.write(b"half of the new")  # some bytes are out before the writer dies
        handle.flush()
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        atomic_write_bytes(path, crash)
    assert path.read_bytes() == b"the old content"
    # the temporary file is removed too: a crash loop must not fill the folder with dot files
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


# ----------------------------------------------------------------------------- 2. unreported steps


class StepsOnceUnreported(Method):
    """Takes one optimizer step on the model and never calls ctx.step: the trailing step a loop that
    reports before stepping would hide."""

    def finetune(self, model, task, oracle, ctx):
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        _sgd_step(model, task, optimizer, task.train_batches(16))
        return ctx.finish()


def test_a_single_trailing_unreported_step_fails_the_check_at_the_end(cell_env):
    p = prepare_finetune(_cell(), cell_env)
    optimizer = torch.optim.SGD(p.model.parameters(), lr=1e-3)
    batches = p.view.train_batches(16)
    with metering(p.meter, "probe"):
        for _ in range(2):
            _sgd_step(p.model, p.view, optimizer, batches)
            p.ctx.step()
        _sgd_step(p.model, p.view, optimizer, batches)  # the last step, unreported
    # during finetuning one step ahead is allowed (ctx.step follows optimizer.step); at the end none is
    assert (p.meter.optimizer_steps, p.meter.reported_steps) == (3, 2)
    with pytest.raises(UnreportedSteps, match="took 3 optimizer steps .* but reported 2"):
        p.meter.check_finished()


def test_a_method_whose_only_step_is_unreported_fails_its_cell(temporary_method, cell_env):
    temporary_method("test-steps-once-unreported", StepsOnceUnreported)
    record = run_cell(_cell("test-steps-once-unreported"), cell_env)
    assert record["status"] == "failed", record["steps"]
    assert record["reason"].startswith("UnreportedSteps: the method took 1 optimizer steps"), record["reason"]
    assert record["metrics"] == {}


# ----------------------------------------------------------------------------- 3. whose optimizer


class StepsWithAnExtraParameter(Method):
    """Optimizes the model's parameters together with one of its own (a learned loss weight, say):
    those steps update the model, so they are the budget's, not auxiliary."""

    def finetune(self, model, task, oracle, ctx):
        extra = torch.nn.Parameter(torch.zeros(3))
        optimizer = torch.optim.SGD([*model.parameters(), extra], lr=1e-3)
        batches = task.train_batches(16)
        for _ in range(ctx.budget.steps):
            ctx.step(_sgd_step(model, task, optimizer, batches, extra))
        return ctx.finish()


def test_an_optimizer_over_model_and_other_parameters_counts_as_the_models(cell_env):
    p = prepare_finetune(_cell(), cell_env)
    extra = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([*p.model.parameters(), extra], lr=1e-3)
    with metering(p.meter, "probe"):
        _sgd_step(p.model, p.view, optimizer, p.view.train_batches(16), extra)
    assert (p.meter.optimizer_steps, p.meter.aux_optimizer_steps) == (1, 0)
    # unreported, it is caught like any step on the model
    with pytest.raises(UnreportedSteps):
        p.meter.check_finished()


def test_steps_of_a_mixed_optimizer_are_charged_to_the_cells_budget(temporary_method, cell_env):
    temporary_method("test-extra-parameter", StepsWithAnExtraParameter)
    record = run_cell(_cell("test-extra-parameter", steps=3), cell_env)
    assert record["status"] == "ok", record["reason"]
    assert record["steps"] == {"reported_steps": 3, "optimizer_steps": 3, "aux_optimizer_steps": 0}


# ----------------------------------------------------------------------------- 4. the test curve's time

SLOW = 0.4  # seconds added to each of the test curve's evaluations: far more than the method's own time


class ReportsEveryStep(Method):
    """Plain SGD on the surrogate loss, every step reported: a method whose own time is milliseconds."""

    def finetune(self, model, task, oracle, ctx):
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        batches = task.train_batches(16)
        for _ in range(ctx.budget.steps):
            ctx.step(_sgd_step(model, task, optimizer, batches))
        return ctx.finish()


def test_the_test_curve_accumulates_the_time_of_every_evaluation():
    budget = Budget(steps=4, queries=0, batch_queries=0, batch_scores=0, stats=0)

    def slow_evaluation():
        time.sleep(SLOW / 4)
        return {"misclassification": 0.5}

    curve = AnytimeCurve(slow_evaluation, lambda: {}, budget, points=4)
    for step in range(1, 5):
        curve.after_step(step)
    evaluations = len(curve.points)
    assert evaluations == 4  # marks 1, 2, 3, 4
    assert curve.seconds >= evaluations * SLOW / 4  # all of them, not only the last


def test_the_runners_test_curve_time_is_recorded_apart_and_not_charged_to_the_method(temporary_method, cell_env, monkeypatch):
    temporary_method("test-reports-every-step", ReportsEveryStep)
    evaluations = []

    class SlowCurve(AnytimeCurve):
        """The runner's curve with each evaluation slowed down: time the method must not be charged."""

        def __init__(self, evaluate, *args, **kwargs):
            def slow_evaluate():
                evaluations.append(time.perf_counter())
                time.sleep(SLOW)
                return evaluate()

            super().__init__(slow_evaluate, *args, **kwargs)

    monkeypatch.setattr(cell_module, "AnytimeCurve", SlowCurve)
    record = run_cell(_cell("test-reports-every-step", steps=4, queries=0, anytime=4), cell_env)
    assert record["status"] == "ok", record["reason"]
    assert len(evaluations) >= 2
    slept = SLOW * len(evaluations)
    assert record["anytime_seconds"] >= slept
    # four SGD steps on a 30-feature MLP take milliseconds; one slowed evaluation alone is SLOW seconds
    assert record["finetune_seconds"] < SLOW, (record["finetune_seconds"], slept)


# ----------------------------------------------------------------------------- 5. evaluation keeps the mode


def _modes(model) -> set[bool]:
    return {module.training for module in model.modules()}


@pytest.mark.parametrize("training", [True, False], ids=["train-mode", "eval-mode"])
def test_evaluation_and_oracle_queries_give_the_model_back_in_its_mode(training, cell_env):
    p = prepare_finetune(_cell(queries=2, batch_queries=2, stats=2), cell_env)
    p.model.train(training)
    evaluations = {
        "task.evaluate": lambda: p.task.evaluate(p.model, p.splits.val),
        "oracle.query": lambda: p.oracle.query(p.model),
        "oracle.query(on=batch)": lambda: p.oracle.query(p.model, on=p.oracle.batch(16)),
        "oracle.statistics": lambda: p.oracle.statistics(p.model),
    }
    for name, evaluate in evaluations.items():
        evaluate()
        # a method in train mode that queries the oracle must not go on training in eval mode (BatchNorm
        # would stop updating its statistics), nor a model the method put in eval mode come back training
        assert _modes(p.model) == {training}, name


# ----------------------------------------------------------------------------- 6. Holm in tables

START = [0.20, 0.24, 0.18, 0.22, 0.26, 0.21]  # each seed's checkpoint error
# per seed, how much lower the lucky row's error is than the baseline's: paired t p = 0.027 alone,
# 0.080 after Holm's correction over the table's three comparisons
LUCKY = [0.004, 0.001, 0.006, 0.000, 0.005, 0.002]
# two rows without an effect (p about 0.95), slightly worse than the baseline
FLAT = {"flat-a": [0.003, -0.003, 0.002, -0.002, 0.004, -0.0035], "flat-b": [-0.002, 0.003, -0.004, 0.0025, -0.001, 0.002]}


def _result(method, seed, error):
    directions = {"misclassification": "lower", "aucpr": "higher"}
    metrics = {"misclassification": error, "aucpr": 1 - error}
    pretrained = {"misclassification": START[seed], "aucpr": 1 - START[seed]}
    return CellResult("t", method, seed, "ok", "", metrics, pretrained, directions)


def test_a_raw_p_below_alpha_is_not_marked_or_bold_when_holms_adjusted_p_is_not():
    results = []
    for seed, start in enumerate(START):
        baseline = start - 0.010  # the baseline improves on its start, so bold is only a matter of the test
        results.append(_result("surrogate", seed, baseline))
        results.append(_result("lucky", seed, baseline - LUCKY[seed]))
        results += [_result(name, seed, baseline + worse[seed]) for name, worse in FLAT.items()]
    table = tables.build(results)
    column = ("t", "misclassification", "lower")
    lucky = table.rows["lucky"][column[:2]]
    # the premise: significant alone, not after the correction; best of its column, improved on its start
    assert table.comparisons == 3
    assert lucky.p < tables.ALPHA <= lucky.p_holm
    means = {row: entries[column[:2]].value.mean for row, entries in table.rows.items() if column[:2] in entries}
    assert lucky.change.mean > 0 and min(means, key=means.get) == "lucky"
    assert lucky.verdict == 0 and not lucky.bold
    assert table.best(column) == set()
    for layout in tables.LAYOUTS:
        # the table's rows, not its caption (which explains the marks)
        grid = [line for line in render.to_markdown(table, layout).splitlines() if line.startswith("|")]
        assert grid and not any(render.MARKS[1] in line or "**" in line for line in grid), grid


# ----------------------------------------------------------------------------- 7-8. stages


class PerturbsItsStageModel(Method):
    """A stage that scribbles over the model it is handed: the weights, the BatchNorm statistics, the mode."""

    def stage(self, budget):
        return StageSpec({"perturbs": True}, Budget(steps=0, queries=0, batch_queries=0, batch_scores=0, stats=0))

    def build_stage(self, model, task, oracle, ctx):
        with torch.no_grad():
            for tensor in [*model.parameters(), *(b for b in model.buffers() if b.is_floating_point())]:
                tensor.add_(1.0)
        model.eval()
        (ctx.folder / "built.txt").write_text("built\n")

    def finetune(self, model, task, oracle, ctx):
        return ctx.finish()


def test_the_stage_identity_holds_the_target_metric():
    misclassification, aucpr = _cell(target="misclassification"), _cell(target="aucpr")
    spec = PerturbsItsStageModel().stage(misclassification.budget)
    identities = [stage_identity(PerturbsItsStageModel(), c, spec, "checkpoint") for c in (misclassification, aucpr)]
    assert key_digest(identities[0]) != key_digest(identities[1])


def test_a_stage_built_for_one_target_is_not_reused_for_another(cell_env, tmp_path):
    # a cache of its own: a stage left by another test must not make this one's first build a reuse
    cache = tmp_path / "stage-cache"
    stages = []
    for target in ("misclassification", "aucpr", "misclassification"):
        cell = _cell(target=target)
        p = prepare_finetune(cell, cell_env)
        stages.append(build_or_reuse(PerturbsItsStageModel(), PerturbsItsStageModel().stage(cell.budget), cell, p, cache))
    (first, one), (second, other), (again, reused) = stages
    assert first != second and (one["built_here"], other["built_here"]) == (True, True)
    assert again == first and not reused["built_here"]  # the same target does reuse it


def test_a_stage_works_on_a_copy_and_leaves_the_cells_model_untouched(cell_env, tmp_path):
    cell = _cell()
    p = prepare_finetune(cell, cell_env)
    before = {name: tensor.clone() for name, tensor in p.model.state_dict().items()}
    folder, info = build_or_reuse(
        PerturbsItsStageModel(), PerturbsItsStageModel().stage(cell.budget), cell, p, tmp_path / "cache"
    )
    assert info["built_here"] and (folder / "built.txt").is_file()  # the stage really ran
    after = p.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert _modes(p.model) == {True}  # the method is handed the model in train mode, as documented


def test_a_cell_with_a_perturbing_stage_starts_from_the_shared_checkpoint(temporary_method, cell_env):
    temporary_method("test-perturbing-stage", PerturbsItsStageModel)
    temporary_method("test-no-stage", ReportsEveryStep)
    staged = run_cell(_cell("test-perturbing-stage", steps=1), cell_env)
    plain = run_cell(_cell("test-no-stage", steps=1), cell_env)
    assert staged["status"] == plain["status"] == "ok", (staged["reason"], plain["reason"])
    assert staged["stage"]["built_here"]
    assert staged["pretrained"]["test"] == plain["pretrained"]["test"]


# ----------------------------------------------------------------------------- 9. records


def test_a_record_without_a_checksum_is_not_verified_and_is_moved_aside(tmp_path):
    cell = _cell()
    write_record(tmp_path, {"cell_id": cell.cell_id, "status": "ok", "metrics": {"misclassification": 0.1}})
    path = record_path(tmp_path, cell)
    assert read_record(tmp_path, cell)["metrics"] == {"misclassification": 0.1}  # intact: taken
    record = json.loads(path.read_text())
    del record["checksum"]  # what a hand edit, or a writer from before checksums, leaves
    path.write_text(json.dumps(record))
    assert read_record(tmp_path, cell) is None
    assert not path.exists()
    assert [p.name.split(".corrupt-")[0] for p in path.parent.glob("*.corrupt-*")] == [path.name]


# ----------------------------------------------------------------------------- the mutation table


def test_every_snippet_of_the_mutation_table_is_still_in_the_code():
    """A refactor that moves guarded code must update `tests/mutation_check.py`, or it checks nothing."""
    done = subprocess.run(
        [sys.executable, str(REPOSITORY / "tests" / "mutation_check.py"), "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPOSITORY,
    )
    assert done.returncode == 0, done.stdout + done.stderr
