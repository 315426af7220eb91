"""What a method holds besides the model: steps with or without a loss, diagnostics logged without a
sync per call, seeded generators, precision settings, its own folder and the shared artifact store."""

from __future__ import annotations

import pytest
import torch
from metricbench.bench.api.context import FinetuneContext
from metricbench.bench.core.budget import Budget, Ledger
from metricbench.bench.core.errors import BudgetExhausted, Diverged


def _ctx(steps=10, flush_every=5, seed=0):
    budget = Budget(steps=steps, queries=1)
    return FinetuneContext(budget, Ledger(budget), torch.device("cpu"), seed, flush_every=flush_every)


def test_a_step_needs_no_loss_and_the_steps_account_is_charged():
    ctx = _ctx()
    ctx.step()
    ctx.step(torch.tensor(0.5))
    assert ctx.steps == 2 and ctx.spent["steps"]["calls"] == 2 and ctx.remaining("steps") == 8
    history = ctx.finish()
    assert history.loss == [0.5] and history.steps == 2


def test_a_step_beyond_the_budget_is_refused():
    ctx = _ctx(steps=2)
    ctx.step()
    ctx.step()
    with pytest.raises(BudgetExhausted, match="budget 'steps' exhausted: 2 of 2"):
        ctx.step()


def test_logged_values_stay_tensors_until_a_flush_and_land_at_their_step():
    ctx = _ctx(flush_every=5)
    ctx.log("meta_loss", torch.tensor(3.0))  # before any step (a stage before finetuning): step 0
    ctx.log("explicit", 1.5, step=7)
    for i in range(4):
        ctx.step(torch.tensor(float(i)), grad_norm=torch.tensor(i * 2.0))
    pending = [value for _, _, value in ctx._pending_logs]
    assert [isinstance(v, torch.Tensor) for v in pending] == [True, False, True, True, True, True]
    assert ctx._history.logs == {}  # nothing converted (no device sync) before the flush interval
    ctx.step(torch.tensor(4.0), grad_norm=8.0)  # step 5: a flush
    logs = ctx._history.logs
    assert logs["meta_loss"] == [(0, 3.0)] and logs["explicit"] == [(7, 1.5)]
    assert logs["grad_norm"] == [(1, 0.0), (2, 2.0), (3, 4.0), (4, 6.0), (5, 8.0)]
    assert ctx.finish().loss == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_non_finite_loss_is_reported_with_its_step():
    ctx = _ctx(flush_every=3)
    ctx.step(torch.tensor(1.0))
    ctx.step(torch.tensor(float("nan")))
    with pytest.raises(Diverged, match="loss became nan at step 2"):
        ctx.step(torch.tensor(1.0))


def test_generators_are_seeded_by_the_cell_and_live_where_they_are_used():
    a, b, c = _ctx(seed=3), _ctx(seed=3), _ctx(seed=4)
    draw = lambda ctx: torch.randn(4, generator=ctx.generator)
    assert torch.equal(draw(a), draw(b)) and not torch.equal(draw(_ctx(seed=3)), draw(c))
    assert a.device_generator.device == a.device
    assert not torch.equal(
        torch.randn(4, generator=_ctx(seed=3).generator), torch.randn(4, generator=_ctx(seed=3).device_generator)
    )


def test_autocast_is_off_on_the_cpu():
    ctx = _ctx()
    assert ctx.precision == "fp32"
    with ctx.autocast():
        out = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert out.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_autocast_is_bf16_on_cuda():
    budget = Budget(steps=1, queries=1)
    ctx = FinetuneContext(budget, Ledger(budget), torch.device("cuda"), 0)
    assert ctx.precision == "bf16" and ctx.device_generator.device.type == "cuda"
    with ctx.autocast():
        out = torch.nn.Linear(4, 4).cuda()(torch.randn(2, 4, device="cuda"))
    assert out.dtype == torch.bfloat16
