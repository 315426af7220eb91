"""What a method holds besides the model, the task view and the oracle: its `FinetuneContext`.

`ctx.step(loss)` after every optimizer step (the loss is optional: ES has none); `ctx.log(name,
value)` for diagnostics; `ctx.note(text)` for a line the tables show; generators on the CPU and on
the device, seeded from the cell; autocast settings; a per-cell folder whose files become MLflow
artifacts; an artifact store shared by cells and invocations. Losses and logged values stay
tensors, on their device, until a flush, so a step costs no device sync.

The context holds only the method's own data and its ledger. The harness's val curve, its monitor
and the splits are elsewhere (`bench.run.metering`); `ctx.step` reaches the harness's step meter
through a context variable, never through an attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from metricbench.bench.api.meter import active_meter, curve_interval
from metricbench.bench.core.budget import Budget, Ledger
from metricbench.bench.core.errors import Diverged
from metricbench.bench.core.seeding import mix_seed


@dataclass
class History:
    """What the method did: the steps it reported, its per-step losses, and what it logged."""

    steps: int = 0
    loss: list[float] = field(default_factory=list)
    logs: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"steps": self.steps, "loss": self.loss, "logs": self.logs}


class FinetuneContext:
    """Handed to `Method.finetune`. Attributes: `budget` (the limits), `device`, `seed`, `generator`
    (CPU) and `device_generator` (on `device`), `precision` ("bf16" on CUDA, "fp32" on the CPU),
    `cell_dir` (files written there are logged with the cell), `artifacts` (an `ArtifactStore`
    shared across cells and invocations: `get_or_build(kind, key, build)`), `stage` (the folder of
    the method's stage, built by the harness before the cell; None without one)."""

    def __init__(
        self,
        budget: Budget,
        ledger: Ledger,
        device: torch.device,
        seed: int,
        cell_dir: Path | None = None,
        artifacts=None,
        flush_every: int = 0,
    ):
        self.budget = budget
        self._ledger = ledger
        self.device = torch.device(device)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(mix_seed("method generator", seed))
        self.device_generator = torch.Generator(device=self.device).manual_seed(mix_seed("method device generator", seed))
        self.precision = "bf16" if self.device.type == "cuda" else "fp32"
        self.cell_dir = cell_dir
        self.artifacts = artifacts
        self.stage: Path | None = None  # the folder of the method's built stage, if it declares one
        self._history = History()
        self.notes: list[str] = []  # what the method says about its run, for the tables (`note`)
        self._pending_loss: list[torch.Tensor] = []
        self._pending_logs: list[tuple[str, int, torch.Tensor | float]] = []
        self._flush_every = curve_interval(flush_every, budget.steps)

    # ---- budget
    def remaining(self, account: str) -> int:
        """How many calls of `account` ("steps", "queries", "batch_queries", "batch_scores", "stats") are left."""
        return self._ledger.remaining(account)

    @property
    def spent(self) -> dict[str, dict]:
        """A copy of the ledger: {account: {calls, examples, seconds, limit}}."""
        return self._ledger.to_dict()

    @property
    def steps(self) -> int:
        """Steps reported so far."""
        return self._history.steps

    # ---- reporting
    def step(self, loss: torch.Tensor | None = None, **scalars: torch.Tensor | float) -> None:
        """Report one optimizer step on the model (call it after every `optimizer.step()`), with the
        step's loss if it has one and scalars to log at this step."""
        self._ledger.authorise("steps")
        self._ledger.charge("steps")
        h = self._history
        h.steps += 1
        if loss is not None:
            self._pending_loss.append(loss.detach().reshape(()))
        for name, value in scalars.items():
            self.log(name, value)
        meter = active_meter()
        if meter is not None:
            meter.on_reported_step()
        if h.steps % self._flush_every == 0 or h.steps == self.budget.steps:
            self._flush()

    def log(self, name: str, value: torch.Tensor | float, step: int | None = None) -> None:
        """Log a diagnostic (logged to MLflow as `method/<name>`); `step` defaults to the steps reported
        so far, so values logged before the first step (e.g. a meta-training stage) sit at step 0.
        A tensor stays on its device until the next flush."""
        if isinstance(value, torch.Tensor):
            value = value.detach().reshape(())
        else:
            value = float(value)
        self._pending_logs.append((name, self._history.steps if step is None else int(step), value))

    def note(self, text: str) -> None:
        """Say something about this run that a reader of the table should see (e.g. "value function
        uninformative"): one line, kept with the record and listed under the table with how many seeds said it."""
        line = " ".join(str(text).split())[:200]
        if line and line not in self.notes and len(self.notes) < 10:
            self.notes.append(line)

    def autocast(self):
        """`with ctx.autocast():` runs the body in the cell's precision (bf16 autocast on CUDA, off on the CPU)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _flush(self) -> None:
        if self._pending_loss:
            values = _to_floats(self._pending_loss)
            self._pending_loss.clear()
            bad = [i for i, v in enumerate(values) if v != v or v in (float("inf"), float("-inf"))]
            if bad:
                step = self._history.steps - len(values) + 1 + bad[0]
                raise Diverged(f"loss became {values[bad[0]]} at step {step}")
            self._history.loss.extend(values)
        if self._pending_logs:
            floats = _to_floats([value for _, _, value in self._pending_logs])
            for (name, step, _), value in zip(self._pending_logs, floats, strict=True):
                self._history.logs.setdefault(name, []).append((step, value))
            self._pending_logs.clear()

    def finish(self) -> History:
        """End of finetuning: flush what is pending and return the history (`return ctx.finish()`)."""
        self._flush()
        return self._history


def _to_floats(values: list[torch.Tensor | float]) -> list[float]:
    """Floats from a mix of numbers and 0-d tensors, with one device-to-host copy per device."""
    out: list[float | None] = [v if isinstance(v, float) else None for v in values]
    by_device: dict[torch.device, list[int]] = {}
    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor):
            by_device.setdefault(v.device, []).append(i)
    for indices in by_device.values():
        stacked = torch.stack([values[i].float() for i in indices]).cpu().tolist()
        for i, v in zip(indices, stacked, strict=True):
            out[i] = v
    return out  # type: ignore[return-value]
