"""The harness's side of a method's finetuning: the step count it checks, and the val curve it draws.

A method reports its steps through `ctx.step`; the harness does not take its word for it. For the
length of `finetune` a global PyTorch optimizer-step hook counts every `optimizer.step()` that
updates the model's parameters, so a method that steps more often than it reports, or more often
than its budget allows, fails. Steps of optimizers over anything else (a copy of the model, a
value function, a bridge network) are counted apart as auxiliary steps and reported, not limited.

The runner's val curve (every task metric on all of val, every `curve_every` steps) and its anytime
test curve (`metricbench.bench.run.anytime`) are drawn here too, and kept here: they are the harness's
own evaluations and must never inform the method. Nothing a method is handed refers to a
`StepMeter`; `ctx.step` and the optimizer hook find the active one through a context variable,
and the metric library is sealed while the method runs (`metricbench.bench.core.seal`), so only
the oracle and this monitor can compute metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from metricbench.bench.api.meter import ACTIVE_METER, curve_interval
from metricbench.bench.core import interrupts, seal
from metricbench.bench.core.errors import BudgetExhausted, UnreportedSteps
from torch.optim.optimizer import register_optimizer_step_post_hook


class StepMeter:
    """Counts a cell's optimizer steps and draws its val curve; owned by the harness."""

    def __init__(
        self,
        model: torch.nn.Module,
        budget_steps: int,
        monitor: Callable[[torch.nn.Module], dict[str, float]] | None = None,
        curve_every: int = 0,
        progress=None,
        anytime=None,
    ):
        self.model = model
        self.budget_steps = budget_steps
        self.monitor = monitor
        self.interval = curve_interval(curve_every, budget_steps)
        self.progress = progress
        self.anytime = anytime  # the runner's test curve (`AnytimeCurve`), or None
        self.reported_steps = 0
        self.optimizer_steps = 0  # optimizer.step() calls that updated the model's parameters
        self.aux_optimizer_steps = 0  # optimizer.step() calls over anything else
        self.curves: dict[str, list[tuple[int, float]]] = {}
        self._model_params: dict[int, torch.nn.Parameter] = {}

    def observe(self) -> None:
        """Add a point to the val curves (the harness's evaluation: not counted, never shown to the method)."""
        if self.monitor is None:
            return
        with seal.unsealed():
            values = self.monitor(self.model)
        for name, value in values.items():
            self.curves.setdefault(name, []).append((self.reported_steps, value))

    def on_reported_step(self) -> None:
        interrupts.stop_if_requested()  # a safe point: the cell is not recorded, a rerun computes it
        self.reported_steps += 1
        if self.reported_steps % self.interval == 0 or self.reported_steps == self.budget_steps:
            self.observe()
            if self.progress is not None:
                self.progress.update(self.reported_steps - self.progress.n)
        if self.anytime is not None:
            with seal.unsealed():
                self.anytime.after_step(self.reported_steps)

    def _updates_the_model(self, optimizer: torch.optim.Optimizer) -> bool:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if any(id(p) in self._model_params for p in params):
            return True
        # the model may have gained parameters (adapters attached during finetuning): look again. The
        # cache holds the parameters themselves, so an id in it cannot be reused by another tensor
        self._model_params = {id(p): p for p in self.model.parameters()}
        return any(id(p) in self._model_params for p in params)

    def on_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self._updates_the_model(optimizer):
            self.aux_optimizer_steps += 1
            return
        self.optimizer_steps += 1
        if self.optimizer_steps > self.budget_steps:
            raise BudgetExhausted(
                f"budget 'steps' exhausted: optimizer step {self.optimizer_steps} on the model's parameters, "
                f"the budget is {self.budget_steps}"
            )
        if self.optimizer_steps > self.reported_steps + 1:
            self.raise_unreported()

    def raise_unreported(self) -> None:
        raise UnreportedSteps(
            f"the method took {self.optimizer_steps} optimizer steps on the model's parameters but reported "
            f"{self.reported_steps} with ctx.step; call ctx.step() once after every optimizer.step()"
        )

    def check_finished(self) -> None:
        """After finetuning: fail on unreported steps; end the val curve at the last step taken (a
        method may stop before its budget, between two curve points)."""
        if self.optimizer_steps > self.reported_steps:
            self.raise_unreported()
        last = [step for curve in self.curves.values() for step, _ in curve[-1:]]
        if self.monitor is not None and last and max(last) != self.reported_steps:
            self.observe()

    def to_dict(self) -> dict:
        return {
            "reported_steps": self.reported_steps,
            "optimizer_steps": self.optimizer_steps,
            "aux_optimizer_steps": self.aux_optimizer_steps,
        }


def _count_optimizer_step(optimizer, _args, _kwargs) -> None:
    # a module-level function, not a closure: the global hook table must not lead to a meter
    meter = ACTIVE_METER.get()
    if meter is not None:
        meter.on_optimizer_step(optimizer)


@contextlib.contextmanager
def metering(meter: StepMeter, method_name: str):
    """Run the body (a method's `finetune`) with `meter` counting its steps and the metrics sealed."""
    token = ACTIVE_METER.set(meter)
    hook = register_optimizer_step_post_hook(_count_optimizer_step)
    try:
        with seal.sealed(f"method '{method_name}'"):
            yield meter
    finally:
        hook.remove()
        ACTIVE_METER.reset(token)
