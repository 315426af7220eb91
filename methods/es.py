"""`es`: antithetic evolution strategies on the FiLM adapters, from metric queries alone.

What the metric signal alone buys at equal budget: no loss gradient, only the target metric of
perturbed adapter vectors on fixed val mini-batches. Each step draws `population / 2` Gaussian
directions e_i, evaluates phi + sigma e_i and phi - sigma e_i on one val mini-batch (the same
examples for both signs, so batch noise cancels in each pair's difference), and estimates

    g = 1 / (population / 2 * sigma) * sum_i (f(phi + sigma e_i) - f(phi - sigma e_i)) / 2 * e_i

with f the metric signed so that lower is better. The estimate is handed to the optimizer as the
adapters' gradient (Adam by default), so the harness counts ES's steps like any other method's.
All defaults are ours (no paper fixes them for this baseline); they are in the option help.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from metricbench.methods import Option, non_negative, positive, register_method
from metricbench.methods.adapters import attach_film_adapters
from metricbench.methods.base import Method


def antithetic_gradient(
    evaluate: Callable[[torch.Tensor], torch.Tensor], phi: torch.Tensor, sigma: float, pairs: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(gradient estimate at `phi`, the 2 x pairs values) of `evaluate`, which maps k x d candidates
    to k values to be minimised. Directions are drawn on the CPU from `generator` (the same on any
    device), candidates are evaluated in one call: +e_1..+e_p, then -e_1..-e_p."""
    directions = torch.randn(pairs, phi.numel(), generator=generator, dtype=torch.float32).to(phi.device, phi.dtype)
    candidates = torch.cat([phi + sigma * directions, phi - sigma * directions])
    values = evaluate(candidates).to(phi.device, phi.dtype)
    differences = (values[:pairs] - values[pairs:]) / 2
    return differences @ directions / (pairs * sigma), values


@register_method(
    "es",
    "antithetic evolution strategies on the FiLM adapters from metric queries on fixed val mini-batches (no loss gradient)",
    options={
        "population": Option(
            int,
            8,
            "candidates per step (population / 2 antithetic pairs); our default",
            check=lambda n: n >= 2 and n % 2 == 0,
            requirement="an even number of at least 2",
        ),
        "sigma": Option(
            float,
            0.05,
            "standard deviation of the perturbations of the adapter values; our default",
            check=positive,
            requirement="positive",
        ),
        "lr": Option(
            float,
            0.01,
            "learning rate of the optimizer step on the adapters; our default",
            check=positive,
            requirement="positive",
        ),
        "optimizer": Option(str, "adam", "optimizer the gradient estimate is handed to", ("adam", "sgd")),
        "batch_size": Option(
            int,
            0,
            "val examples per mini-batch (0: 256, or half of val if smaller); our default",
            check=non_negative,
            requirement="0 or more",
        ),
        "refresh_every": Option(
            int, 1, "draw a fresh val mini-batch every this many steps; our default", check=positive, requirement="at least 1"
        ),
    },
)
class EvolutionStrategies(Method):
    def finetune(self, model, task, oracle, ctx):
        o = self.options
        pairs = o["population"] // 2
        for p in model.parameters():
            p.requires_grad_(False)  # only the adapters move
        adapters = attach_film_adapters(model)
        params = adapters.parameters()
        optimizer = (torch.optim.Adam if o["optimizer"] == "adam" else torch.optim.SGD)(params, lr=o["lr"])
        sign = oracle.sign  # ES minimises: a higher-is-better metric is negated
        batch_size = o["batch_size"] or min(256, oracle.max_batch_size)
        steps = min(ctx.budget.steps, ctx.remaining("batch_queries") // o["population"])
        batch = None
        for step in range(steps):
            if step % o["refresh_every"] == 0:
                batch = oracle.batch(batch_size)
            phi = adapters.vector()

            def evaluate(candidates, on=batch):
                return sign * oracle.query_candidates(model, adapters, candidates, on=on)

            gradient, values = antithetic_gradient(evaluate, phi, o["sigma"], pairs, ctx.generator)
            optimizer.zero_grad(set_to_none=False)
            for p, g in zip(params, adapters.as_dict(gradient).values(), strict=True):
                p.grad = g.clone()
            optimizer.step()
            ctx.step(es_value_mean=sign * values.mean(), es_gradient_norm=gradient.norm())
        return ctx.finish()
