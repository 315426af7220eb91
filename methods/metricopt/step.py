"""One MetricOpt finetuning step (meta-testing with Guided ES) and the value function's online refinement.

At a step, with theta frozen and phi the FiLM adapters:
1. the guides: the surrogate loss's gradient in phi (one training forward and backward) and the value
   function's gradient in phi, signed so that both point uphill of the objective to be minimised
   (the metric for a lower-is-better metric, its negative otherwise);
2. Guided ES: P antithetic pairs drawn along those guides, each candidate's metric measured on one
   fixed val mini-batch (`oracle.query_candidates`, 2P batch queries);
3. the estimate is handed to the optimizer as phi's gradient.
The 2P candidates and their measured values are new observations of the metric around phi: the
caller keeps them, projected (`ObservationBuffer`), and refines the value function on them (`refine`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from metricbench.methods.metricopt.guided_es import guided_es_gradient
from metricbench.methods.metricopt.value_function import PhiProjection, ValueFunction, value_loss


@dataclass
class StepReport:
    """What a step measured: the loss, the cosine between the loss and value guides, the candidates
    and their metric values (signed: lower is better), and the gradient estimate."""

    loss: torch.Tensor
    guide_cosine: float
    candidates: torch.Tensor
    values: torch.Tensor
    gradient: torch.Tensor
    seconds: dict[str, float] = field(default_factory=dict)  # guides; es (perturbations, the candidates' queries, update)


def guides(model, adapters, task, batch, value_function: ValueFunction | None, projection: PhiProjection | None, sign: float):
    """(loss, guide rows k x n): the surrogate loss's gradient in phi, then (with a value function)
    sign * the value function's gradient in phi."""
    loss = task.train_step(model, batch).loss
    loss_gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, adapters.parameters())])
    rows = [loss_gradient.detach()]
    if value_function is not None:
        phi = adapters.vector().requires_grad_(True)
        (value_gradient,) = torch.autograd.grad(value_function(projection(phi)).sum(), phi)
        rows.append(sign * value_gradient.detach().to(loss_gradient))
    return loss.detach(), torch.stack(rows)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else 0.0


def metricopt_step(
    model,
    adapters,
    task,
    oracle,
    train_batch,
    val_batch,
    optimizer: torch.optim.Optimizer,
    value_function: ValueFunction | None,
    projection: PhiProjection | None,
    pairs: int,
    generator: torch.Generator,
    sigma: float = 0.1,
    alpha: float = 0.5,
    beta: float = 2.0,
) -> StepReport:
    """One step (see the module docstring); `value_function` None is Guided ES with the loss guide alone."""
    sign = oracle.sign
    started = time.perf_counter()
    loss, rows = guides(model, adapters, task, train_batch, value_function, projection, sign)
    phi = adapters.vector()
    seconds = {"guides": time.perf_counter() - started}

    def evaluate(candidates):
        return sign * oracle.query_candidates(model, adapters, candidates, on=val_batch)

    started = time.perf_counter()
    gradient, candidates, values = guided_es_gradient(evaluate, phi, rows, pairs, generator, sigma, alpha, beta)
    optimizer.zero_grad(set_to_none=False)
    for p, g in zip(adapters.parameters(), adapters.as_dict(gradient).values(), strict=True):
        p.grad = g.clone()
    optimizer.step()
    seconds["es"] = time.perf_counter() - started  # the candidates' queries among it: the ledger times those
    guide_cosine = cosine(rows[0], rows[1]) if len(rows) > 1 else 0.0
    return StepReport(loss, guide_cosine, candidates, values, gradient, seconds)


@dataclass
class ObservationBuffer:
    """Metric observations (the value function's input x = projection(phi), signed value) kept for its
    online refinement; the oldest are dropped beyond `capacity`. Projected on arrival: a raw phi can
    hold tens of thousands of values, x holds the projection's width."""

    capacity: int = 2048
    xs: list[torch.Tensor] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, x: torch.Tensor, values: torch.Tensor) -> None:
        self.xs.extend(x.detach().cpu())
        self.values.extend(values.detach().cpu().tolist())
        del self.xs[: -self.capacity], self.values[: -self.capacity]

    def __len__(self) -> int:
        return len(self.values)


def refine(
    value_function: ValueFunction,
    optimizer: torch.optim.Optimizer,
    buffer: ObservationBuffer,
    steps: int,
    generator: torch.Generator,
    sign: float,
    sigma: float = 0.01,
    points: int = 64,
    **loss_options,
) -> None:
    """`steps` optimizer steps of `value_loss` on observations drawn from the buffer (direct observations:
    uncertainty `sigma` each). The buffer holds signed values; the value function predicts the metric."""
    if len(buffer) < 2:
        return
    device = next(value_function.parameters()).device
    xs = torch.stack(buffer.xs).to(device)
    values = sign * torch.tensor(buffer.values, dtype=torch.float32, device=device)
    for _ in range(steps):
        pick = torch.randperm(len(values), generator=generator)[:points].to(device)
        loss = value_loss(
            value_function, xs[pick], values[pick], torch.full((len(pick),), sigma, device=device), generator, **loss_options
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
