"""`es`: the antithetic estimate descends, fixed val mini-batches make it far less noisy, and the
method spends exactly what it says on the accounts it should."""

from __future__ import annotations

import pytest
import torch
from metricbench.bench.core.budget import Budget
from metricbench.bench.core.errors import UsageError
from metricbench.bench.run.cell import CellEnv, prepare_finetune, run_cell
from metricbench.bench.run.suite import load_suite
from metricbench.methods import create_method
from metricbench.methods.adapters import attach_film_adapters
from metricbench.methods.es import antithetic_gradient


def test_the_antithetic_estimate_descends_a_quadratic():
    target = torch.linspace(-1, 1, 20)
    phi = torch.zeros(20, requires_grad=True)
    optimizer = torch.optim.Adam([phi], lr=0.05)
    generator = torch.Generator().manual_seed(0)

    def loss(candidates):
        return ((candidates - target) ** 2).sum(dim=1)

    start = loss(phi.detach()[None]).item()
    for _ in range(300):
        gradient, _ = antithetic_gradient(loss, phi.detach(), sigma=0.1, pairs=8, generator=generator)
        phi.grad = gradient
        optimizer.step()
    assert loss(phi.detach()[None]).item() < 0.01 * start


def test_the_estimate_is_unbiased_for_a_linear_function():
    slope = torch.randn(6, generator=torch.Generator().manual_seed(1))
    estimates = [
        antithetic_gradient(lambda c: c @ slope, torch.zeros(6), 0.3, 64, torch.Generator().manual_seed(s))[0] for s in range(50)
    ]
    assert torch.allclose(torch.stack(estimates).mean(0), slope, atol=0.1)


def _cell(task, method="es", steps=5, **limits):
    (cell,) = load_suite("smoke").select(tasks=[task], methods=["surrogate"]).cells()
    budget = Budget(**{"steps": steps, "queries": 3, **limits})
    return type(cell)(**{**cell.__dict__, "method": method, "method_options": {}, "budget": budget})


def test_antithetic_pairs_on_one_fixed_batch_have_far_lower_variance_than_on_fresh_batches(cell_env):
    """The same directions in every repeat, so only the val examples differ: on one fixed batch per
    estimate a pair's two candidates see the same examples and the batch noise cancels in their
    difference; on a fresh batch per candidate it does not."""
    p = prepare_finetune(_cell("synthetic-binary", batch_queries=10_000), cell_env)
    adapters = attach_film_adapters(p.model)
    phi, oracle = adapters.vector(), p.oracle

    def on_one_batch(candidates):
        batch = oracle.batch(64)
        return oracle.query_candidates(p.model, adapters, candidates, on=batch)

    def on_fresh_batches(candidates):
        return torch.cat([oracle.query_candidates(p.model, adapters, c[None], on=oracle.batch(64)) for c in candidates])

    def variance(evaluate):
        estimates = [antithetic_gradient(evaluate, phi, 0.05, 4, torch.Generator().manual_seed(0))[0] for _ in range(12)]
        return torch.stack(estimates).var(dim=0).sum().item()

    fixed, fresh = variance(on_one_batch), variance(on_fresh_batches)
    assert fixed * 5 < fresh, (fixed, fresh)


def test_es_spends_batch_queries_only_and_is_reproducible(tmp_path, checkpoint_cache):
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache))
    records = [run_cell(_cell("breast-cancer", steps=6), env) for _ in range(2)]
    record = records[0]
    assert record["status"] == "ok", record["reason"]
    spent = {account: v["calls"] for account, v in record["spent"].items()}
    assert spent == {"steps": 6, "queries": 0, "batch_queries": 6 * 8, "batch_scores": 0, "stats": 0}
    assert record["steps"]["optimizer_steps"] == 6
    assert records[0]["metrics"] == records[1]["metrics"]
    assert [v for _, v in record["history"]["logs"]["es_value_mean"]] == [
        v for _, v in records[1]["history"]["logs"]["es_value_mean"]
    ]


def test_es_stops_when_its_batch_queries_run_out(tmp_path, checkpoint_cache):
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache))
    record = run_cell(_cell("breast-cancer", steps=10, batch_queries=20), env)
    assert record["status"] == "ok" and record["spent"]["batch_queries"]["calls"] == 16 and record["history"]["steps"] == 2
    assert all(curve[-1][0] == 2 for curve in record["curves"].values())  # the val curve ends where ES stopped


@pytest.mark.parametrize("population", [3, 0])
def test_an_odd_or_empty_population_is_refused_before_anything_runs(population):
    with pytest.raises(UsageError, match="option 'population' of method 'es' must be an even number of at least 2, got"):
        create_method("es", population=population)
