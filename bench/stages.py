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

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from metricbench.bench import interrupts
from metricbench.bench.artifacts import ArtifactStore, key_digest
from metricbench.bench.budget import Budget, Ledger
from metricbench.bench.errors import HookContractError, UsageError
from metricbench.bench.oracle import MetricOracle, TaskView
from metricbench.bench.pretrain import seeded_global_rng
from metricbench.tasks.sampling import mix_seed

STAGE_RECORD = "stage.json"


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


def stage_identity(method, cell, spec: StageSpec, checkpoint: str, others: dict[str, str] | None = None) -> dict:
    identity = {
        # the class that builds it, not the registered name: variants of one class (MetricOpt's SGD and Adam)
        # whose stage keys agree share one stage
        "method": f"{type(method).__module__}.{type(method).__qualname__}",
        "stage": spec.key,
        "task": cell.task,
        "task_options": cell.task_options,
        "target": cell.target,
        "seed": cell.seed,
        "checkpoint": checkpoint,
    }
    if spec.tasks:  # the meta-training tasks and the checkpoints their trajectories start from
        identity["meta_tasks"] = [{"task": name, "checkpoint": (others or {}).get(name, checkpoint)} for name in spec.tasks]
    return identity


def find_stage(reference: str, cache_dir: Path, out_dir: Path | None = None) -> Path:
    """The folder of the stage `reference` names: a stage folder or a file in one; a stage id (in this
    cache's store); or the MLflow run id of a cell in `out_dir` whose method used a stage. A reference
    that names none raises `UsageError` saying what was looked for."""
    path = Path(reference).expanduser()
    if path.is_file():
        path = path.parent
    if (path / STAGE_RECORD).is_file():
        return path
    stage_id = reference
    if out_dir is not None and (Path(out_dir) / "cells").is_dir():
        for record_file in sorted((Path(out_dir) / "cells").glob("*.json")):
            try:
                record = json.loads(record_file.read_text())
            except (OSError, ValueError):
                continue  # a damaged record is the runner's to report, not this lookup's
            if record.get("mlflow_run_id") == reference and record.get("stage"):
                stage_id = record["stage"]["id"]
                break
    stages = Path(cache_dir) / "stages"
    if stage_id.isalnum() and stages.is_dir():  # an id is hex digits: nothing a glob would read as a pattern
        found = [f for f in stages.glob(f"*-{stage_id}") if f.is_dir() and (f / STAGE_RECORD).is_file()]
        if len(found) == 1:
            return found[0]
    raise UsageError(
        f"stage '{reference}' not found: it is not a stage folder (holding {STAGE_RECORD}) or a file in one, "
        f"a stage id under {stages}, or the MLflow run id of a cell in {out_dir} that used a stage; "
        "give the folder's path (e.g. <out>/cache/stages/<name>) or a stage id from a cell record's `stage.id`"
    )


def reuse_source(spec: StageSpec, cache_dir: Path, out_dir: Path | None) -> tuple[Path, dict]:
    folder = find_stage(spec.source, cache_dir, out_dir)
    built = json.loads((folder / STAGE_RECORD).read_text())
    return folder, {
        "id": key_digest(built["identity"]),
        "built_here": False,
        "transferred_from": spec.source,
        "spent": built["spent"],
        "seconds": built["seconds"],
        "logs": built["logs"],
    }


def build_or_reuse(
    method, spec: StageSpec, cell, prepared, cache_dir: Path, out_dir: Path | None = None, start_of=None
) -> tuple[Path, dict]:
    """The stage's folder (built now if no one has, or found where `spec.source` says) and its record:
    its id, whether this call built it, and what building it spent (ledger and seconds). `start_of(name)`
    gives another meta-training task's (task, splits, model, checkpoint info)."""
    if not isinstance(spec, StageSpec):
        raise HookContractError(
            f"method '{method.name}': stage(budget) returned {type(spec).__name__}, expected a StageSpec or None"
        )
    if spec.source:
        return reuse_source(spec, cache_dir, out_dir)
    others = {name: start_of(name) for name in spec.tasks if name != cell.task} if spec.tasks else {}
    checkpoints = {name: info.get("key", "") for name, (_, _, _, info) in others.items()}
    identity = stage_identity(method, cell, spec, prepared.pretrained.get("key", ""), checkpoints)

    seed = mix_seed("stage", cell.seed)  # the stage's batches, oracle draws and global RNG: not the cell's

    def build(folder: Path) -> dict:
        ledger = Ledger(spec.budget)
        ctx = StageContext(folder, spec.budget, prepared.ctx.device, cell.seed, ledger, key=spec.key)

        def source(name, task, splits, model):  # a copy: the cell's model is the cell's, the stage works on its own
            view = TaskView(task, splits.train, cell.target, seed)
            return StageSource(name, copy.deepcopy(model), view, MetricOracle(task, splits.val, cell.target, ledger, seed=seed))

        own = source(cell.task, prepared.task, prepared.splits, prepared.model)
        ctx.sources = [own if name == cell.task else source(name, *others[name][:3]) for name in spec.tasks or (cell.task,)]
        started = time.perf_counter()
        with seeded_global_rng(seed, prepared.ctx.device):
            method.build_stage(own.model, own.task, own.oracle, ctx)
        if prepared.ctx.device.type == "cuda":
            torch.cuda.synchronize(prepared.ctx.device)
        record = {"identity": identity, "spent": ledger.to_dict(), "seconds": time.perf_counter() - started, "logs": ctx.logs}
        (folder / STAGE_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True))
        return {"spent": record["spent"], "seconds": record["seconds"], "logs": ctx.logs}

    artifact = ArtifactStore(cache_dir).get_or_build(
        "stages", identity, build, label=f"{type(method).__name__.lower()}-{cell.task}-{spec.label}"
    )
    return artifact.path, {"id": key_digest(identity), "built_here": artifact.built, **artifact.info}
