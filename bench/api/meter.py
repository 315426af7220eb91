"""How `ctx.step` reaches the harness without holding it: the step meter as a Protocol and a context variable.

The harness's step meter (`metricbench.bench.run.metering.StepMeter`) counts a cell's optimizer steps
and draws its val curve; a method must never hold a reference to it. So the context finds the active
meter through `ACTIVE_METER`, set by the harness for the length of `finetune`, and knows it only as
this Protocol.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Protocol


class StepMeter(Protocol):
    def on_reported_step(self) -> None:
        """Called by `ctx.step` after the method reported one optimizer step."""


ACTIVE_METER: ContextVar[StepMeter | None] = ContextVar("metricbench_active_step_meter", default=None)


def active_meter() -> StepMeter | None:
    return ACTIVE_METER.get()


def curve_interval(curve_every: int, steps: int) -> int:
    """Steps between points of the runner's val curve (`curve_every`; 0: a tenth of the steps)."""
    return curve_every or max(1, steps // 10)
