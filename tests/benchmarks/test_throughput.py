"""Runner training throughput against a bare PyTorch loop on the same model, batch and data.

Run with `pytest tests/benchmarks --benchmark-only -s`. Each round of the runner path (surrogate
method through `run_finetune`, with the step hook, budget checks and divergence checks) is
preceded by a round of the bare loop, so drift of the machine hits both alike. The runner path
includes what every cell pays: the global optimizer-step hook that counts steps and the sealed
metric library. The ratio is
bare seconds / runner seconds (1.0 = no overhead); the target is >= 0.95. The runner's uncounted val
curve is measured separately ("with curve"): it is evaluation, not training, and its cost is set by
`budget.eval_every`. The device-resident transform path (a batched random crop on the device) is
measured against the same batches without it.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch
from metricbench.bench.api.context import FinetuneContext
from metricbench.bench.core.budget import Budget, Ledger
from metricbench.bench.core.training import make_optimizer, make_scheduler
from metricbench.bench.run.cell import CellEnv, prepare_finetune
from metricbench.bench.run.metering import StepMeter, metering
from metricbench.bench.run.suite import load_suite
from metricbench.methods import create_method
from metricbench.methods.base import run_finetune
from metricbench.methods.loss_training import finetune_recipe
from metricbench.tasks import TASKS
from metricbench.tasks.data.sampling import ShuffledBatches
from metricbench.tasks.data.splits import TensorSplit

STEPS = 150
ROUNDS = 7


def bare_loop(model, train, batch_size, recipe, seed):
    """The plainest loop: shuffled index batches from tensors, loss, backward, step."""
    optimizer = make_optimizer(model.parameters(), recipe)
    scheduler = make_scheduler(optimizer, recipe)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits if train.targets.max() == 1 else None
    model.train()
    step, n = 0, len(train)
    while step < recipe.steps:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            x, y = train.inputs[idx], train.targets[idx]
            out = model(x)
            loss = loss_fn(out.reshape(-1), y.float()) if loss_fn else torch.nn.functional.cross_entropy(out, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step == recipe.steps:
                return


@pytest.mark.parametrize("task", ["digits", "synthetic-binary"])
@pytest.mark.parametrize("curve", [False, True], ids=["training", "with-curve"])
def test_runner_throughput_vs_bare_loop(benchmark, tmp_path, task, curve):
    (cell,) = load_suite("smoke").select(tasks=[task], methods=["surrogate"]).cells()
    budget = Budget(steps=STEPS, queries=0)
    cell = type(cell)(
        **{
            **cell.__dict__,
            "task": task,
            "task_options": TASKS.entry(task).resolve_options("task", {}),
            "target": TASKS.entry(task).factory.metrics[0],
            "budget": budget,
        }
    )
    method = create_method("surrogate")
    env = CellEnv(device="auto", out_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    prepared = prepare_finetune(cell, env)
    recipe = finetune_recipe(method.options, prepared.view.finetune_recipe, STEPS)
    state = {k: v.clone() for k, v in prepared.model.state_dict().items()}
    monitor = (lambda m: prepared.task.evaluate(m, prepared.splits.val)) if curve else None
    bare_seconds = []

    def fresh_model():
        model = prepared.model
        model.load_state_dict(state)
        return model

    def setup():
        model = fresh_model()
        _sync()
        started = time.perf_counter()
        bare_loop(model, prepared.splits.train, recipe.batch_size, recipe, cell.seed)
        _sync()
        bare_seconds.append(time.perf_counter() - started)
        model = fresh_model()
        ctx = FinetuneContext(budget, Ledger(budget), prepared.ctx.device, cell.seed, flush_every=15)
        return (model, ctx, StepMeter(model, STEPS, monitor=monitor, curve_every=15)), {}

    def runner(model, ctx, meter):
        # as in a cell: the optimizer-step hook counts every step, the metric library is sealed
        with metering(meter, method.name):
            run_finetune(method, model, prepared.view, prepared.oracle, ctx)
        _sync()

    benchmark.pedantic(runner, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    ratio = statistics.median(bare_seconds) / benchmark.stats.stats.median
    benchmark.extra_info.update(
        {
            "task": task,
            "device": str(prepared.ctx.device),
            "steps": STEPS,
            "batch_size": recipe.batch_size,
            "bare_median_s": statistics.median(bare_seconds),
            "runner_median_s": benchmark.stats.stats.median,
            "ratio": ratio,
            "steps_per_s_runner": STEPS / benchmark.stats.stats.median,
        }
    )
    print(
        f"\n{task} [{'with curve' if curve else 'training'}] on {prepared.ctx.device}: "
        f"bare {STEPS / statistics.median(bare_seconds):.0f} steps/s, runner {STEPS / benchmark.stats.stats.median:.0f} steps/s, "
        f"ratio {ratio:.3f} (target >= 0.95 for training)"
    )
    if not curve:
        assert ratio >= 0.95


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@pytest.mark.parametrize("transform", [False, True], ids=["plain", "random-crop"])
def test_device_resident_batches_with_and_without_the_batched_transform(benchmark, tmp_path, transform):
    """glyphs-retrieval's training split (uint8 on the device): 300 batches of 64, with its batched
    random crop (padding 2) or without; the data path alone, then one training step per batch."""
    # the task at its own size (the metricopt suite's; quick shrinks it), as docs/performance.md's figures were measured
    (cell,) = load_suite("metricopt").select(tasks=["glyphs-retrieval"], methods=["surrogate"], seeds=1).cells()
    env = CellEnv(device="auto", out_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    prepared = prepare_finetune(cell, env)
    train = prepared.splits.train
    split = train if transform else TensorSplit(train.inputs, train.targets)
    stream_steps = 300

    def data_path():
        batches = split.train_batches(ShuffledBatches(len(split), 64, seed=0))
        for _ in range(stream_steps):
            batch = next(batches)
        _sync()
        return batch

    benchmark.pedantic(data_path, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    per_batch_us = benchmark.stats.stats.median / stream_steps * 1e6
    benchmark.extra_info.update({"device": str(prepared.ctx.device), "batches": stream_steps, "us_per_batch": per_batch_us})
    print(
        f"\nglyphs-retrieval batches on {prepared.ctx.device}, {'random crop' if transform else 'no transform'}: "
        f"{per_batch_us:.0f} us per batch of 64 ({stream_steps / benchmark.stats.stats.median:.0f} batches/s)"
    )
