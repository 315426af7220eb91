"""What a step of `ala`, `dab` and MetricOpt costs next to a step of `surrogate`, on the digits model.

Run with `pytest tests/benchmarks/test_method_steps.py --benchmark-only -s`. Each method finetunes the
same pretrained digits model for the task's default budget (100 steps, 10 queries) through
`run_finetune`, as in a cell; a step's cost is the run's seconds over its steps, so ALA's controller
decisions (a validation-statistics call, a full-val query and a policy update every K steps) are
amortised over the steps between them, DAB's bridge and batch score are paid every step, and so are
MetricOpt's loss and value guides, its 2 x 2 candidate evaluations on a fixed val mini-batch and the
value function's online refinement (its meta-training stage, built once per task and seed before the
cells, is not part of a step: here `metricopt-no-meta`, whose value function is learned online). Each
round of the method is preceded by a round of `surrogate` on the same model, so drift of the machine
hits both alike; the ratio is method seconds / surrogate seconds.
"""

from __future__ import annotations

import copy
import statistics
import time

import pytest
import torch
from metricbench.bench.api.context import FinetuneContext
from metricbench.bench.api.oracle import MetricOracle
from metricbench.bench.core.budget import Ledger
from metricbench.bench.run.cell import CellEnv, prepare_finetune
from metricbench.bench.run.metering import StepMeter, metering
from metricbench.bench.run.suite import load_suite
from metricbench.methods import create_method
from metricbench.methods.base import run_finetune
from metricbench.tasks import TASKS

ROUNDS = 5


@pytest.mark.parametrize("method_name", ["ala", "dab", "metricopt-no-meta"])
def test_a_method_step_vs_a_surrogate_step(benchmark, tmp_path, method_name):
    (cell,) = load_suite("smoke").select(tasks=["digits"], methods=[method_name]).cells()[:1]
    entry = TASKS.entry("digits")
    cell = type(cell)(**{**cell.__dict__, "task_options": entry.resolve_options("task", {}), "budget": entry.factory.budget})
    budget = cell.budget
    env = CellEnv(device="auto", out_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    prepared = prepare_finetune(cell, env)
    pristine = copy.deepcopy(prepared.model)
    surrogate, method = create_method("surrogate"), create_method(method_name)
    surrogate_seconds = []

    def run(which, model):
        ledger = Ledger(budget)  # a fresh budget for every round
        ctx = FinetuneContext(budget, ledger, prepared.ctx.device, cell.seed)
        oracle = MetricOracle(prepared.task, prepared.splits.val, cell.target, ledger, cell.seed)
        with metering(StepMeter(model, budget.steps), which.name):
            run_finetune(which, model, prepared.view, oracle, ctx)
        if prepared.ctx.device.type == "cuda":
            torch.cuda.synchronize()

    def fresh_model():  # a copy: a method may attach adapters to the model it is handed
        model = copy.deepcopy(pristine)
        model.train()
        return model

    def setup():
        model = fresh_model()
        started = time.perf_counter()
        run(surrogate, model)
        surrogate_seconds.append(time.perf_counter() - started)
        return (fresh_model(),), {}

    benchmark.pedantic(lambda model: run(method, model), setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    method_step = benchmark.stats.stats.median / budget.steps
    surrogate_step = statistics.median(surrogate_seconds) / budget.steps
    benchmark.extra_info.update(
        {
            "method": method_name,
            "device": str(prepared.ctx.device),
            "steps": budget.steps,
            "queries": budget.queries,
            "method_step_ms": 1000 * method_step,
            "surrogate_step_ms": 1000 * surrogate_step,
            "ratio": method_step / surrogate_step,
        }
    )
    print(
        f"\n{method_name} on digits ({prepared.ctx.device}): {1000 * method_step:.2f} ms per step vs surrogate "
        f"{1000 * surrogate_step:.2f} ms: {method_step / surrogate_step:.2f}x"
    )
