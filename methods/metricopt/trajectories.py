"""The data MetricOpt's value function learns from: trajectories of the FiLM adapters phi under the
surrogate loss, with sparse observations of the black-box metric.

A trajectory finetunes phi alone (the backbone theta frozen: MetricOpt's compact parameters) from the
pretrained point, under one `TrajectorySetting` (learning rate, batch order, a random perturbation of
the starting phi), on a deep copy of the model, so the caller's model (weights, adapters, BatchNorm
statistics) is untouched. Every `observe_every` steps, and after the last, the metric is queried on a
fixed val mini-batch (`oracle.query(copy, on=batch)`, one batch query each); phi is recorded at every
step. The settings vary what the specification asks for (ours: learning rates log-uniform over a
tenth to ten times the base, a fresh batch order each, and every trajectory started from phi plus
Gaussian noise), because a value function trained on trajectories that differ only in learning rate
generalised unreliably in a prototype.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from metricbench.methods.adapters import attach_film_adapters
from metricbench.methods.metricopt.value_function import PhiProjection, Trajectory, densify


@dataclass(frozen=True)
class TrajectorySetting:
    lr: float
    batch_seed: int
    start_noise: float


@dataclass
class ObservedTrajectory:
    """phi at steps 0..T (T+1 x n, CPU) and the metric observed at some of those steps."""

    phis: torch.Tensor
    observed_steps: list[int]
    observed_values: list[float]

    def for_value_function(self, projection: PhiProjection, sigma_0: float = 0.01, growth: float = 0.01) -> Trajectory:
        values, sigmas = densify(self.observed_steps, self.observed_values, len(self.phis), sigma_0, growth)
        return Trajectory(projection(self.phis), values, sigmas)


def trajectory_settings(
    count: int, base_lr: float, generator: torch.Generator, lr_range: float = 10.0, start_noise: float = 0.05
) -> list[TrajectorySetting]:
    """`count` settings: learning rates log-uniform in [base / lr_range, base * lr_range], batch seeds and
    the starting perturbation's scale, all drawn from `generator`."""
    settings = []
    for _ in range(count):
        u = float(torch.rand((), generator=generator))
        lr = base_lr * math.exp((2 * u - 1) * math.log(lr_range))
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        settings.append(TrajectorySetting(lr, seed, start_noise))
    return settings


def collect_trajectory(
    model: torch.nn.Module,
    task,
    oracle,
    setting: TrajectorySetting,
    steps: int,
    observe_every: int,
    val_batch,
    batch_size: int,
    generator: torch.Generator,
    on_step=None,
) -> ObservedTrajectory:
    """One trajectory of phi from `model`'s current point (see the module docstring). Spends
    ceil(steps / observe_every) + 1 batch queries (at most; never twice at the last step);
    `on_step()` is called after each optimizer step (a stage counts its steps with it)."""
    work = copy.deepcopy(model)
    for p in work.parameters():
        p.requires_grad_(False)
    adapters = attach_film_adapters(work)
    start = adapters.vector()
    noise = setting.start_noise * torch.randn(start.numel(), generator=generator).to(start)
    adapters.set_vector(start + noise)
    params = adapters.parameters()
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=setting.lr)
    batches = task.train_batches(batch_size, seed=setting.batch_seed)
    phis, observed_steps, observed_values = [adapters.vector().cpu()], [], []
    work.train()
    for step in range(steps + 1):
        if step % observe_every == 0 or step == steps:
            observed_steps.append(step)
            observed_values.append(oracle.query(work, on=val_batch))
        if step == steps:
            break
        loss = task.train_step(work, next(batches)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step()
        phis.append(adapters.vector().cpu())
    return ObservedTrajectory(torch.stack(phis), observed_steps, observed_values)
