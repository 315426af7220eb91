"""metricopt-learned's update rule on toy problems with known answers: untrained, it is momentum on the
normalised estimate; as a torch optimizer it moves parameters against their gradient; meta-trained on a
known value function it lowers that function along its unrolled runs, and the radius penalty keeps
its runs where the value function was trained."""

from __future__ import annotations

import torch
from metricbench.methods.metricopt.learned_update import LearnedUpdate, UpdateRule, normalised, train_update_rule
from metricbench.methods.metricopt.value_function import PhiProjection
from torch import nn


class Quadratic(nn.Module):
    """A value function with a known minimum: |x - target|^2 (one parameter, so it can be frozen and restored)."""

    def __init__(self, target: torch.Tensor):
        super().__init__()
        self.target = nn.Parameter(target.clone())

    def forward(self, x):
        return ((x - self.target) ** 2).sum(-1)


def test_an_untrained_rule_is_momentum_on_the_normalised_estimate():
    rule = UpdateRule()
    g = torch.tensor([3.0, -1.0, 0.5])
    m = torch.tensor([0.1, 0.2, -0.3])
    assert torch.allclose(rule(normalised(g), m), m)
    assert torch.allclose(normalised(g).pow(2).mean(), torch.tensor(1.0))


def test_the_learned_update_steps_against_the_gradient():
    phi = nn.Parameter(torch.zeros(4))
    optimizer = LearnedUpdate([phi], UpdateRule(), lr=0.1)
    for _ in range(3):
        phi.grad = torch.tensor([1.0, -2.0, 0.0, 4.0])
        optimizer.step()
    assert phi[0] < 0 and phi[1] > 0 and phi[2] == 0 and phi[3] < 0


def test_meta_training_lowers_the_value_along_the_runs_and_leaves_the_value_function_trainable():
    torch.manual_seed(0)
    start = torch.zeros(12)
    projection = PhiProjection(start, width=6, scale=1.0)
    value_function = Quadratic(projection(torch.full((12,), 0.5)))
    rule = UpdateRule()
    losses = train_update_rule(
        rule, value_function, projection, start, sign=1.0, lr=0.05, generator=torch.Generator().manual_seed(0),
        meta_steps=60, unroll=10, rule_lr=1e-2, noise=0.5, start_noise=0.0,
    )  # fmt: skip
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10
    assert all(p.requires_grad for p in value_function.parameters())


def test_the_radius_penalty_keeps_the_runs_near_what_the_value_function_knows():
    start = torch.zeros(12)
    projection = PhiProjection(start, width=6, scale=1.0)
    far = projection(torch.full((12,), 5.0))
    value_function = Quadratic(far)  # its minimum lies far outside the radius it was "trained" on

    def final_distance(radius):
        rule = UpdateRule()
        train_update_rule(
            rule, value_function, projection, start, 1.0, 0.2, torch.Generator().manual_seed(1),
            meta_steps=40, unroll=10, rule_lr=1e-2, noise=0.0, start_noise=0.0, radius=radius,
        )  # fmt: skip
        optimizer_phi = nn.Parameter(start.clone())
        optimizer = LearnedUpdate([optimizer_phi], rule, lr=0.2)
        for _ in range(10):
            x = projection(optimizer_phi)
            (optimizer_phi.grad,) = torch.autograd.grad(value_function(x), optimizer_phi)
            optimizer.step()
        return float(projection(optimizer_phi.detach()).norm())

    assert final_distance(radius=0.5) < final_distance(radius=None)
