"""Stages: what a method builds once, before its cells, and shares among them (MetricOpt's meta-trained
value function). The harness builds a stage, never the cell: a stage has its own budget and ledger,
its costs are recorded apart from every cell's (so no cell pays for it and none hides it), and it is
built once per key through the artifact store (locked: two processes asking at once build it once;
reused by later cells and invocations).

A method declares a stage with `Method.stage(budget) -> StageSpec` (given the cell's budget: its key,
the method options that shape the stage; what building it may spend) and builds it in
`Method.build_stage(model, task, oracle, ctx)`, writing files into `ctx.folder`. It is handed a copy
of the cell's pretrained model, the task view of the train split and an oracle over val with the
stage's own ledger: the splits a cell's method may see, never the test split. The stage's identity
adds the method's class (not its registered name: variants of one class whose keys agree share a
stage), the task, its options, the target metric, the seed and the starting checkpoint to the key.
In its cells, `ctx.stage` is the built stage's folder (read it, never write it).

Several tasks: a spec with `tasks` names the meta-training tasks whose train and val splits the stage
learns from (the cell's own task among them or not). The harness hands the method one `StageSource`
per task in `ctx.sources` (a copy of the task's pretrained model for the cell's seed, its train view,
an oracle over its val split for the cell's target metric, all on the stage's one ledger); other
tasks take their default options. Without `tasks`, `ctx.sources` holds the cell's task alone. No
source reaches any task's test split.

Transfer: a spec with `source` names a stage built elsewhere (another task, architecture or output
folder) instead of one to build: a stage folder or a file in it, a stage id, or the MLflow run id of a
cell that used it. The harness finds it (`find_stage`), hands its folder to the cells and records its
origin and what building it spent, so a method that reuses a stage still shows that cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from metricbench.bench.api.oracle import MetricOracle, TaskView
from metricbench.bench.core import interrupts
from metricbench.bench.core.budget import Budget, Ledger
from metricbench.bench.core.seeding import mix_seed


@dataclass(frozen=True)
class StageSpec:
    """A method's stage: `key` (JSON-able: what, besides the cell's task, target, seed and checkpoint,
    makes two stages different) and `budget` (what building it may spend)."""

    key: dict
    budget: Budget
    label: str = "stage"
    source: str = ""  # a stage built elsewhere to reuse instead (see the module docstring)
    tasks: tuple[str, ...] = ()  # the meta-training tasks (default: the cell's own)


@dataclass
class StageSource:
    """One meta-training task as a stage sees it: its name, a copy of its pretrained model, its train
    view and an oracle over its val split (on the stage's ledger)."""

    name: str
    model: torch.nn.Module
    task: TaskView
    oracle: MetricOracle


@dataclass
class StageContext:
    """Handed to `Method.build_stage`: `folder` (write the stage's files here), `key` (the spec's key, as
    `stage(budget)` resolved it: sizes taken from the cell's budget are read back here), `budget`,
    `remaining(account)`, `step()` (after every optimizer step the stage takes, e.g. on a trajectory:
    counted on its `steps` account), `device`, `seed`, `generator` (CPU, seeded), `log(name, value)`
    (kept in the stage's record), `sources` (the meta-training tasks, see the module docstring)."""

    folder: Path
    budget: Budget
    device: torch.device
    seed: int
    _ledger: Ledger
    generator: torch.Generator = field(init=False)
    key: dict = field(default_factory=dict)
    logs: dict[str, float] = field(default_factory=dict)
    sources: list[StageSource] = field(default_factory=list)

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(mix_seed("stage generator", self.seed))

    def remaining(self, account: str) -> int:
        return self._ledger.remaining(account)

    def step(self) -> None:
        self._ledger.authorise("steps")
        self._ledger.charge("steps")
        interrupts.stop_if_requested()  # a safe point: an unfinished stage is never stored

    def log(self, name: str, value) -> None:
        self.logs[name] = float(value)
