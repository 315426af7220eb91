"""`metricopt-learned`'s update rule: a small per-coordinate network, meta-trained on the value function
in MetricOpt's stage, that turns the Guided-ES gradient estimate into a step on the adapters phi.

The paper names a learned optimizer among MetricOpt's variants without a design we could follow; this
one is ours, in the family of learned optimizers that apply one tiny network to every coordinate
(Andrychowicz et al. 2016, without the recurrent state):

- features per coordinate: the estimate g normalised by its root mean square over all of phi (ES
  estimates vary in scale by orders of magnitude between steps and tasks), and a momentum m of it
  (decay 0.9);
- step: phi <- phi - lr * (a * g_hat + b * m + mlp(g_hat, m)), with a = 0, b = 1 and the network's
  last layer zero at initialisation, so an untrained rule is momentum on the normalised estimate;
- meta-training (`train_update_rule`): unrolled runs of the rule on the meta-trained value function
  from the starting phi plus noise, fed the value function's gradient plus Gaussian noise of
  `noise` times its RMS (the ES estimate is noisy; ours: 1), minimising the mean predicted metric
  (signed: lower is better) along the run. Gradients do not flow through the fed gradient (first order,
  as in most learned-optimizer training), and a penalty keeps the runs within the radius the value
  function was trained on, so the rule cannot learn to exploit its extrapolation.
"""

from __future__ import annotations

import torch
from torch import nn

MOMENTUM = 0.9


def normalised(gradient: torch.Tensor) -> torch.Tensor:
    return gradient / gradient.pow(2).mean().sqrt().clamp_min(1e-12)


class UpdateRule(nn.Module):
    """direction(g_hat, m) = a * g_hat + b * m + mlp([g_hat, m]), coordinate by coordinate."""

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.mix = nn.Parameter(torch.tensor([0.0, 1.0]))
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, g_hat: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        features = torch.stack([g_hat, m], dim=-1)
        return self.mix[0] * g_hat + self.mix[1] * m + self.net(features).squeeze(-1)


class LearnedUpdate(torch.optim.Optimizer):
    """The rule as a torch optimizer over phi's parameters (reads `p.grad`, as SGD and Adam do)."""

    def __init__(self, params, rule: UpdateRule, lr: float):
        super().__init__(params, {"lr": lr})
        self.rule = rule
        self.momentum = None

    @torch.no_grad()
    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"]]
        gradient = torch.cat([p.grad.reshape(-1) for p in params])
        g_hat = normalised(gradient)
        self.momentum = (1 - MOMENTUM) * g_hat if self.momentum is None else MOMENTUM * self.momentum + (1 - MOMENTUM) * g_hat
        rule_device = next(self.rule.parameters()).device
        direction = self.rule(g_hat.to(rule_device), self.momentum.to(rule_device)).to(gradient)
        start = 0
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(direction[start : start + p.numel()].view_as(p), alpha=-group["lr"])
                start += p.numel()


def train_update_rule(
    rule: UpdateRule,
    value_function: nn.Module,
    projection,
    start: torch.Tensor,
    sign: float,
    lr: float,
    generator: torch.Generator,
    meta_steps: int = 100,
    unroll: int = 20,
    rule_lr: float = 1e-3,
    noise: float = 1.0,
    start_noise: float = 0.05,
    radius: float | None = None,
) -> list[float]:
    """Meta-train `rule` on `value_function` (see the module docstring); returns the meta-loss per step.
    `radius`: the largest |x| the value function was trained on (None: no penalty)."""
    device = next(value_function.parameters()).device
    for p in value_function.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.Adam(rule.parameters(), lr=rule_lr)
    start = start.to(device)
    losses = []
    try:
        for _ in range(meta_steps):
            phi = start + start_noise * torch.randn(start.shape, generator=generator).to(device)
            momentum = torch.zeros_like(phi)
            total = 0.0
            for _ in range(unroll):
                probe = phi.detach().requires_grad_(True)
                (gradient,) = torch.autograd.grad(sign * value_function(projection(probe)), probe)
                gradient = gradient + noise * gradient.pow(2).mean().sqrt() * torch.randn(phi.shape, generator=generator).to(
                    device
                )
                g_hat = normalised(gradient)
                momentum = MOMENTUM * momentum + (1 - MOMENTUM) * g_hat
                phi = phi - lr * rule(g_hat, momentum.detach())
                x = projection(phi)
                total = total + sign * value_function(x)
                if radius is not None:
                    total = total + torch.relu(x.norm() - radius) ** 2
            loss = total / unroll
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        for p in value_function.parameters():
            p.requires_grad_(True)
    return losses
