"""Evaluating 16 candidate adapter vectors on one fixed val mini-batch (what ES does every step):
functional forwards through the oracle (a loop, and `torch.func.vmap`), against 16 deep copies of the
model with their adapters set, on the digits model.

Run with `pytest tests/benchmarks/test_candidates.py --benchmark-only -s`. Each path computes the same
16 metric values (checked); the ratio printed is deepcopy seconds / oracle seconds (above 1: the
oracle's path is faster).
"""

from __future__ import annotations

import copy
import statistics
import time

import pytest
import torch
from metricbench.bench.core.budget import Budget
from metricbench.bench.run.cell import CellEnv, prepare_finetune
from metricbench.bench.run.suite import load_suite
from metricbench.methods.adapters import attach_film_adapters

CANDIDATES = 16
ROUNDS = 7


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@pytest.mark.parametrize("batched", [False, True], ids=["functional-loop", "functional-vmap"])
def test_candidates_on_one_batch_vs_deepcopies(benchmark, tmp_path, batched):
    # the task at its own size (the metricopt suite's; quick shrinks it), as docs/performance.md's figures were measured
    cells = load_suite("metricopt").select(tasks=["digits"], methods=["surrogate"], seeds=1).cells()
    (cell,) = [c for c in cells if c.target == "misclassification"]
    cell = type(cell)(**{**cell.__dict__, "budget": Budget(steps=1, queries=1, batch_queries=10**6)})
    env = CellEnv(device="auto", out_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    p = prepare_finetune(cell, env)
    adapters = attach_film_adapters(p.model)
    vectors = adapters.vector() + 0.05 * torch.randn(CANDIDATES, len(adapters), generator=torch.Generator().manual_seed(0))
    batch = p.oracle.batch(p.oracle.max_batch_size)

    def deepcopies():
        values = []
        for vector in vectors:
            candidate = copy.deepcopy(p.model)
            attach_film_adapters(candidate).set_vector(vector)
            values.append(p.oracle.query(candidate, on=batch))
        _sync()
        return torch.tensor(values, dtype=torch.float64)

    copy_seconds = []

    def setup():
        started = time.perf_counter()
        setup.reference = deepcopies()
        copy_seconds.append(time.perf_counter() - started)
        return (), {}

    def functional():
        values = p.oracle.query_candidates(p.model, adapters, vectors, on=batch, batched=batched)
        _sync()
        return values

    values = benchmark.pedantic(functional, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert torch.allclose(values, setup.reference, atol=1e-6)
    ratio = statistics.median(copy_seconds) / benchmark.stats.stats.median
    benchmark.extra_info.update(
        {
            "device": str(p.ctx.device),
            "candidates": CANDIDATES,
            "batch": batch.size,
            "deepcopy_median_s": statistics.median(copy_seconds),
            "ratio": ratio,
        }
    )
    print(
        f"\ndigits, {CANDIDATES} candidates on a batch of {batch.size}, {p.ctx.device}: "
        f"{'vmap' if batched else 'loop'} {benchmark.stats.stats.median * 1e3:.1f} ms, "
        f"deepcopies {statistics.median(copy_seconds) * 1e3:.1f} ms, ratio {ratio:.2f}"
    )
