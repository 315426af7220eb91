"""How the harness finds, builds and reuses a method's stage (the types a method sees are in
`metricbench.bench.api.stages`, with what a stage is).

A stage is built by the harness, never the cell, once per identity (`stage_identity`: the method's
class, its stage key, the task, its options, the target, the seed and the starting checkpoint)
through the artifact store, with its own budget and ledger; `find_stage` resolves a spec's `source`
(a stage built elsewhere) to its folder.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch
from metricbench.bench.api.oracle import MetricOracle, TaskView
from metricbench.bench.api.stages import StageContext, StageSource, StageSpec
from metricbench.bench.core.budget import Ledger
from metricbench.bench.core.errors import HookContractError, UsageError
from metricbench.bench.core.files import key_digest
from metricbench.bench.core.seeding import mix_seed, seeded_global_rng
from metricbench.bench.run.artifacts import ArtifactStore

STAGE_RECORD = "stage.json"


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
