"""MetricOpt's value function (Huang et al., CVPR 2021): a differentiable model of a black-box metric as
a function of the adapter parameters phi, learned from metric observations along finetuning
trajectories and meta-trained across them with Reptile.

The pieces, each a plain function or module so the method (and its tests) compose them:

- `densify(observed_steps, observed_values, steps)`: a trajectory's sparse metric observations
  interpolated to every step (ours: linear in the step), with an uncertainty that grows with the
  distance to the nearest observation (ours: `sigma_0 + c * distance / interval`).
- `PhiProjection`: phi relative to its starting point, divided by a scale, projected to a fixed width
  by a seeded Gaussian matrix (ours), so a value function fits adapters of any size (transfer).
- `ValueFunction`: f_w = head(g(x)), an MLP embedding g and a scalar head.
- `value_loss`: `gamma * L_regress + L_oe`, the uncertainty-weighted regression and the ordinal-
  embedding triplet loss whose positives and negatives are chosen by Fisher's ratio of their metrics.
- `reptile_step` and `meta_train`: Reptile over trajectories (inner Adam steps of `value_loss` on one
  trajectory, then w <- w + eps * (w_adapted - w), eps annealed to 0).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Trajectory:
    """A trajectory as the value function sees it: inputs x_t (T x width, projected phi), the densified
    metric values and their uncertainties (T each)."""

    x: torch.Tensor
    values: torch.Tensor
    sigmas: torch.Tensor


def densify(
    observed_steps: list[int], observed_values: list[float], steps: int, sigma_0: float = 0.01, growth: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, sigmas) at steps 0..steps-1: linear interpolation between observations (flat beyond the
    first and last), uncertainty sigma_0 at an observation plus `growth` per observation interval of
    distance to the nearest one."""
    if not observed_steps:
        raise ValueError("a trajectory needs at least one metric observation")
    at = torch.tensor(observed_steps, dtype=torch.float64)
    values = torch.tensor(observed_values, dtype=torch.float64)
    order = at.argsort()
    at, values = at[order], values[order]
    t = torch.arange(steps, dtype=torch.float64)
    right = torch.searchsorted(at, t).clamp(1, max(len(at) - 1, 1))
    left = right - 1
    if len(at) == 1:
        dense = values.expand(steps).clone()
    else:
        span = (at[right] - at[left]).clamp_min(1e-12)
        weight = ((t - at[left]) / span).clamp(0, 1)
        dense = values[left] + weight * (values[right] - values[left])
    interval = float((at[1:] - at[:-1]).mean()) if len(at) > 1 else max(steps, 1)
    distance = (t[:, None] - at[None, :]).abs().min(dim=1).values
    sigmas = sigma_0 + growth * distance / max(interval, 1.0)
    return dense.float(), sigmas.float()


class PhiProjection:
    """x = P (phi - phi_0) / scale: relative to the starting point, so every run starts at x = 0;
    a seeded Gaussian P (width x n, entries N(0, 1 / width)) maps any adapter size to `width` inputs."""

    def __init__(self, start: torch.Tensor, width: int, scale: float = 1.0, seed: int = 0):
        self.start = start.detach().float().cpu()
        self.scale = scale
        self.width = width
        generator = torch.Generator().manual_seed(seed)
        self.matrix = torch.randn(width, start.numel(), generator=generator) / math.sqrt(width)

    def __call__(self, phis: torch.Tensor) -> torch.Tensor:
        """phis: n or T x n -> width or T x width (on phis' device, differentiable in phis)."""
        matrix = self.matrix.to(phis.device, phis.dtype)
        start = self.start.to(phis.device, phis.dtype)
        return (phis - start) @ matrix.T / self.scale


class ValueFunction(nn.Module):
    """f_w(x) = head(g(x)); `embed(x)` is g, the penultimate features the ordinal loss works on."""

    def __init__(self, width: int, hidden: int = 64, embedding: int = 32):
        super().__init__()
        self.embedding = nn.Sequential(nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, embedding), nn.Tanh())
        self.head = nn.Linear(embedding, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x)).squeeze(-1)


def regression_loss(predicted: torch.Tensor, values: torch.Tensor, sigmas: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """(1 / sum 1/sigma) * sum |f - M| / sigma (or the squared error, same weights)."""
    error = (predicted - values).abs()
    if squared:
        error = error**2
    weights = 1 / sigmas
    return (weights * error).sum() / weights.sum()


def fisher_ratio(values: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """F(a, b) = (M_a - M_b)^2 / (sigma_a^2 + sigma_b^2), all pairs (T x T)."""
    return (values[:, None] - values[None, :]) ** 2 / (sigmas[:, None] ** 2 + sigmas[None, :] ** 2)


def ordinal_embedding_loss(
    embeddings: torch.Tensor, values: torch.Tensor, sigmas: torch.Tensor, generator: torch.Generator, threshold: float = 1.0
) -> torch.Tensor:
    """mean over anchors of log(1 + exp(-(D(a, n) - D(a, p)))): for each anchor a, one positive p
    (Fisher's ratio below `threshold`: a metric indistinguishable from a's) and one negative n (above
    it), drawn uniformly; anchors without both are skipped (0 if none has both)."""
    ratio = fisher_ratio(values.detach(), sigmas.detach())
    eye = torch.eye(len(values), dtype=torch.bool, device=ratio.device)
    positive = (ratio < threshold) & ~eye
    negative = ratio >= threshold
    anchors = (positive.any(dim=1) & negative.any(dim=1)).nonzero().squeeze(1)
    if len(anchors) == 0:
        return embeddings.sum() * 0
    cpu = torch.device("cpu")
    p = torch.multinomial(positive[anchors].float().to(cpu), 1, generator=generator).squeeze(1).to(anchors.device)
    n = torch.multinomial(negative[anchors].float().to(cpu), 1, generator=generator).squeeze(1).to(anchors.device)
    d_positive = (embeddings[anchors] - embeddings[p]).norm(dim=1)
    d_negative = (embeddings[anchors] - embeddings[n]).norm(dim=1)
    return nn.functional.softplus(-(d_negative - d_positive)).mean()


def value_loss(
    value_function: ValueFunction,
    x: torch.Tensor,
    values: torch.Tensor,
    sigmas: torch.Tensor,
    generator: torch.Generator,
    gamma: float = 1.0,
    ordinal: bool = True,
    threshold: float = 1.0,
    squared: bool = False,
) -> torch.Tensor:
    """gamma * L_regress + L_oe (the ordinal term off: the `no-oe` ablation)."""
    embeddings = value_function.embed(x)
    loss = gamma * regression_loss(value_function.head(embeddings).squeeze(-1), values, sigmas, squared)
    if ordinal:
        loss = loss + ordinal_embedding_loss(embeddings, values, sigmas, generator, threshold)
    return loss


@torch.no_grad()
def reptile_step(value_function: nn.Module, adapted: nn.Module, epsilon: float) -> None:
    """w <- w + epsilon * (w_adapted - w), parameter by parameter."""
    for w, w_adapted in zip(value_function.parameters(), adapted.parameters(), strict=True):
        w.add_(epsilon * (w_adapted - w))


def adapt(
    value_function: ValueFunction,
    trajectory: Trajectory,
    steps: int,
    lr: float,
    generator: torch.Generator,
    points: int = 64,
    **loss_options,
) -> ValueFunction:
    """A copy of `value_function` after `steps` Adam steps of `value_loss` on one trajectory, each on
    `points` of its points drawn at random (all of them if fewer)."""
    x, values, sigmas = trajectory.x, trajectory.values, trajectory.sigmas
    adapted = copy.deepcopy(value_function)
    optimizer = torch.optim.Adam(adapted.parameters(), lr=lr)
    for _ in range(steps):
        pick = torch.randperm(len(values), generator=generator)[:points].to(values.device)
        loss = value_loss(adapted, x[pick], values[pick], sigmas[pick], generator, **loss_options)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return adapted


def meta_train(
    value_function: ValueFunction,
    trajectories: list[Trajectory],
    meta_steps: int,
    generator: torch.Generator,
    inner_steps: int = 5,
    inner_lr: float = 1e-3,
    epsilon: float = 0.1,
    **loss_options,
) -> list[float]:
    """Reptile: `meta_steps` times, adapt a copy to one trajectory drawn at random and move the weights
    toward it with epsilon annealed linearly to 0. Returns the inner loss after each adaptation."""
    losses = []
    for step in range(meta_steps):
        trajectory = trajectories[int(torch.randint(len(trajectories), (1,), generator=generator))]
        adapted = adapt(value_function, trajectory, inner_steps, inner_lr, generator, **loss_options)
        reptile_step(value_function, adapted, epsilon * (1 - step / meta_steps))
        with torch.no_grad():
            losses.append(float(regression_loss(adapted(trajectory.x), trajectory.values, trajectory.sigmas)))
    return losses
