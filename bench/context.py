"""What a method calls once per optimizer step, and the history it returns.

`FinetuneContext.step(loss)` enforces the step budget, keeps the loss, checks for divergence, draws
the uncounted val curve every `curve_every` steps and moves the progress bar. It avoids
a device sync on each step: losses stay tensors until a curve point or the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from metricbench.bench.errors import BudgetExhausted, Diverged
from metricbench.bench.training import Budget, curve_interval


@dataclass
class History:
    """What happened during finetuning: per-step loss, val curves, method-specific scalars."""

    steps: int = 0
    loss: list[float] = field(default_factory=list)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"steps": self.steps, "loss": self.loss, "curves": self.curves, "scalars": self.scalars}


class FinetuneContext:
    """Handed to `Method.finetune`: device, seeded generator, budget, and the per-step hook."""

    def __init__(
        self,
        budget: Budget,
        device: torch.device,
        seed: int,
        monitor: Callable[[torch.nn.Module], dict[str, float]] | None = None,
        progress=None,
        curve_every: int = 0,
    ):
        self.budget = budget
        self.device = device
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.history = History()
        self._monitor = monitor
        self.progress = progress
        self._pending: list[torch.Tensor] = []
        self._interval = curve_interval(curve_every, budget.steps)

    def step(self, model: torch.nn.Module, loss: torch.Tensor, **scalars: float) -> None:
        """Record one optimizer step (call after `optimizer.step()`)."""
        h = self.history
        if h.steps >= self.budget.steps:
            raise BudgetExhausted(f"the method took more than its budget of {self.budget.steps} steps")
        h.steps += 1
        self._pending.append(loss.detach())
        for name, value in scalars.items():
            h.scalars.setdefault(name, []).append((h.steps, float(value)))
        if h.steps % self._interval == 0 or h.steps == self.budget.steps:
            self._flush()
            self.observe(model)
            if self.progress is not None:
                self.progress.update(h.steps - self.progress.n)

    def _flush(self) -> None:
        if not self._pending:
            return
        values = torch.stack(self._pending).float().cpu()
        self._pending.clear()
        if not torch.isfinite(values).all():
            bad = self.history.steps - len(values) + 1 + int((~torch.isfinite(values)).nonzero()[0])
            raise Diverged(f"loss became {values[~torch.isfinite(values)][0].item()} at step {bad}")
        self.history.loss.extend(values.tolist())

    def observe(self, model: torch.nn.Module) -> None:
        """Add a point to the val curves (the runner's own evaluation: not a counted query)."""
        if self._monitor is None:
            return
        for name, value in self._monitor(model).items():
            self.history.curves.setdefault(name, []).append((self.history.steps, value))

    def finish(self) -> History:
        self._flush()
        return self.history
