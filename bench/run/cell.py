"""One cell's whole life: data, shared checkpoint, finetuning, test evaluation, result record.

`run_cell(cell, env)` is a self-contained unit of work (a picklable cell and picklable settings in,
a JSON-ready record out), so it can later run in another process, on another GPU or under SLURM.
The record written by `write_record` is the source of truth; MLflow is filled from it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from metricbench.bench.api.context import FinetuneContext
from metricbench.bench.api.oracle import MetricOracle, TaskView
from metricbench.bench.core import interrupts
from metricbench.bench.core.budget import Ledger
from metricbench.bench.core.errors import Diverged, UsageError
from metricbench.bench.core.files import atomic_write_bytes, key_digest
from metricbench.bench.core.seeding import mix_seed, seeded_global_rng
from metricbench.bench.run.anytime import AnytimeCurve
from metricbench.bench.run.artifacts import ArtifactStore
from metricbench.bench.run.metering import StepMeter, metering
from metricbench.bench.run.pretrain import pretrained_checkpoint, seeded_model
from metricbench.bench.run.stages import build_or_reuse
from metricbench.bench.run.suite import Cell
from metricbench.tasks.kinds.base import DataPaths


@dataclass(frozen=True)
class CellEnv:
    """Where and how cells run (not part of a cell's identity). `cache_dir` holds `pretrained/` (the
    shared checkpoints) and `datasets/` (data that embedded tasks generate)."""

    device: str
    out_dir: str
    cache_dir: str
    data_dir: str | None = None
    progress: bool = False  # progress bars (a terminal)
    lines: bool = False  # one plain line per pretraining and stage built (no terminal: a log file, CI)

    def data_paths(self) -> DataPaths:
        return DataPaths(Path(self.data_dir) if self.data_dir else None, Path(self.cache_dir) / "datasets")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class SplitCache:
    """The loaded splits of the last few (task, options, data paths), owned by whoever runs the cells.

    Not a module-level cache: a method must not be able to reach the test split through the globals
    of any function it can see."""

    def __init__(self, size: int = 4):
        self._size = size
        self._entries: OrderedDict[tuple, object] = OrderedDict()

    def get(self, task, options_json: str, paths: DataPaths):
        key = (task.name, options_json, paths)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        splits = task.load_splits(paths)
        self._entries[key] = splits
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return splits


def record_path(out_dir: str | Path, cell: Cell) -> Path:
    return Path(out_dir) / "cells" / f"{cell.cell_id}.json"


def _checksum(record: dict) -> str:
    return key_digest({k: v for k, v in record.items() if k != "checksum"})


def read_record(out_dir: str | Path, cell: Cell) -> dict | None:
    """The cell's verified record, or None. A record that does not parse or whose checksum does not
    match is reported in one line and moved aside (the cell is then computed again), never used."""
    path = record_path(out_dir, cell)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
        problem = None if record.get("checksum") == _checksum(record) else "its checksum does not match"
    except (json.JSONDecodeError, AttributeError) as exc:
        problem = f"it is not valid JSON ({exc.__class__.__name__})"
    if problem is None:
        return record
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    path.replace(aside)
    print(
        f"metricbench: warning: record {path} is corrupt ({problem}); moved to {aside.name}, the cell runs again", file=sys.stderr
    )
    return None


def write_record(out_dir: str | Path, record: dict) -> Path:
    """Write the record atomically, with a checksum of its content."""
    path = Path(out_dir) / "cells" / f"{record['cell_id']}.json"
    record["checksum"] = _checksum(record)
    payload = json.dumps(record, indent=1, sort_keys=True).encode()
    atomic_write_bytes(path, lambda handle: handle.write(payload))
    return path


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class Prepared:
    """Everything a cell's finetuning involves; a method is handed only model, view, oracle and ctx."""

    task: object
    splits: object
    model: torch.nn.Module
    view: TaskView
    oracle: MetricOracle
    ctx: FinetuneContext
    meter: StepMeter
    ledger: Ledger
    pretrained: dict


def cell_folder(out_dir: str | Path, cell: Cell) -> Path:
    """The cell's own folder: the method's files (`ctx.cell_dir`), logged with the cell's run."""
    return Path(out_dir) / "artifacts" / cell.cell_id


def pretrained_start(task_name: str, task_options: dict, seed: int, env: CellEnv, splits_cache, device):
    """(task, splits on `device`, the seed's pretrained model in train mode, checkpoint info): where every
    method of a (task, seed) starts, and what a stage meta-training on that task starts from."""
    from metricbench.tasks import create_task

    task = create_task(task_name, **task_options)
    cache = splits_cache if splits_cache is not None else SplitCache(size=1)
    splits = cache.get(task, json.dumps(task_options, sort_keys=True), env.data_paths()).to(device)
    pretrain_bar = _bar_factory(env, f"pretrain {task_name}/seed{seed}")
    state, info = pretrained_checkpoint(task, splits, seed, device, ArtifactStore(Path(env.cache_dir)), pretrain_bar)
    if info["built"]:
        say_line(env, f"pretrained {task_name} seed {seed} in {info['seconds']:.1f} s")
    model = seeded_model(task, seed).to(device)
    model.load_state_dict(state)
    model.train()
    return task, splits, model, info


def prepare_finetune(
    cell: Cell, env: CellEnv, splits_cache: SplitCache | None = None, device: torch.device | None = None
) -> Prepared:
    """Load the data, get the shared pretrained checkpoint and build what the method is handed.

    Everything that computes (training, evaluation, metrics) runs on `device` (`run_cell` resolves the
    environment's once per cell and records it), where the splits' batches land.
    """
    device = resolve_device(env.device) if device is None else device
    task, splits, model, info = pretrained_start(cell.task, cell.task_options, cell.seed, env, splits_cache, device)
    val = splits.val
    step_bar = _bar_factory(env, f"{cell.task}/{cell.method}/{cell.target}/seed{cell.seed}")
    meter = StepMeter(
        model,
        cell.budget.steps,
        monitor=lambda m: task.evaluate(m, val),
        curve_every=cell.eval_every,
        progress=step_bar(cell.budget.steps) if step_bar else None,
    )
    folder = cell_folder(env.out_dir, cell)
    shutil.rmtree(folder, ignore_errors=True)  # a rerun starts from an empty folder
    folder.mkdir(parents=True)
    ledger = Ledger(cell.budget)
    if cell.anytime:
        test = splits.test
        meter.anytime = AnytimeCurve(lambda: task.evaluate(model, test), ledger.to_dict, cell.budget, cell.anytime)
    ctx = FinetuneContext(
        cell.budget,
        ledger,
        device,
        cell.seed,
        cell_dir=folder,
        artifacts=ArtifactStore(Path(env.cache_dir) / "methods"),
        flush_every=cell.eval_every,
    )
    oracle = MetricOracle(task, val, cell.target, ledger, seed=cell.seed)
    view = TaskView(task, splits.train, cell.target, cell.seed)
    return Prepared(task, splits, model, view, oracle, ctx, meter, ledger, info)


def _other_starts(cell: Cell, env: CellEnv, splits_cache, prepared: Prepared):
    """`start(task_name) -> (task, splits, model, checkpoint info)` for a stage's other meta-training tasks:
    their default options, the cell's seed, on the cell's device."""
    from metricbench.tasks import TASKS

    def start(name: str):
        options = TASKS.entry(name).resolve_options("task", {})
        return pretrained_start(name, options, cell.seed, env, splits_cache, prepared.ctx.device)

    return start


def run_cell(cell: Cell, env: CellEnv, splits_cache: SplitCache | None = None) -> dict:
    """Run one cell and return its result record (status "ok" or "failed" with a reason)."""
    from metricbench.methods import create_method
    from metricbench.methods.base import run_finetune
    from metricbench.tasks import create_task

    started = time.time()
    device = resolve_device(env.device)  # once: the record names the device the cell ran on, never "auto"
    task = create_task(cell.task, **cell.task_options)
    record = {
        "cell_id": cell.cell_id,
        "suite": cell.suite,
        **cell.config(),
        "eval_every": cell.eval_every,
        "device": str(device),
        "target_metric": cell.target,
        "metric_names": list(task.metrics),
        "directions": task.metric_directions(),
        "status": "failed",
        "reason": "",
        "metrics": {},
        "pretrained": {},
        "spent": {},
        "steps": {},
        "history": {},
        "curves": {},
        "started_at": started,
        # the machine's load when the cell started and ended: seconds measured under contention say so
        "load_average": {"start": os.getloadavg()[0], "cores": os.cpu_count()},
    }
    p = None
    try:
        method = create_method(cell.method, **cell.method_options)
        p = prepare_finetune(cell, env, splits_cache, device)
        spec = method.stage(cell.budget)
        if spec is not None:  # built by the harness, on the stage's own budget, once for all cells that share it
            p.ctx.stage, record["stage"] = build_or_reuse(
                method, spec, cell, p, Path(env.cache_dir), Path(env.out_dir), _other_starts(cell, env, splits_cache, p)
            )
            if record["stage"]["built_here"]:
                seconds = record["stage"]["seconds"]
                say_line(env, f"stage of {cell.method} for {cell.task}/{cell.target} seed {cell.seed} built in {seconds:.1f} s")
        # the starting point's metrics, computed now with the current metric code (never cached)
        record["pretrained"] = {
            **{k: v for k, v in p.pretrained.items() if k != "built"},
            "test": p.task.evaluate(p.model, p.splits.test),
        }
        if p.meter.anytime is not None:
            p.meter.anytime.start(record["pretrained"]["test"])
        try:
            p.meter.observe()  # the val curve's step 0
            finetune_started = time.perf_counter()
            with seeded_global_rng(mix_seed("finetune", cell.seed), p.ctx.device), metering(p.meter, method.name):
                run_finetune(method, p.model, p.view, p.oracle, p.ctx)
            if p.ctx.device.type == "cuda":
                torch.cuda.synchronize(p.ctx.device)  # GPU work is asynchronous: time it when it is done
            record["finetune_seconds"] = time.perf_counter() - finetune_started
            if p.meter.anytime is not None:  # the runner's own evaluations are not the method's time
                record["finetune_seconds"] -= p.meter.anytime.seconds
            record["gpu_seconds"] = record["finetune_seconds"] if p.ctx.device.type == "cuda" else 0.0
            p.meter.check_finished()
        finally:
            record["history"] = p.ctx._history.to_dict()  # the harness's own view, also after a failure
            record["notes"] = list(p.ctx.notes)
            record["curves"] = p.meter.curves
            record["spent"] = p.ledger.to_dict()
            record["steps"] = p.meter.to_dict()
        metrics = p.task.evaluate(p.model, p.splits.test)
        bad = [k for k, v in metrics.items() if v != v]
        if bad:
            raise Diverged(f"test {bad[0]} is NaN")
        record["metrics"] = metrics
        if p.meter.anytime is not None:
            p.meter.anytime.finish(p.meter.reported_steps, metrics)
            record["anytime"] = p.meter.anytime.points
            record["anytime_seconds"] = p.meter.anytime.seconds
        record["status"] = "ok"
    except BaseException as exc:  # a failing cell is recorded and the suite goes on, even on SystemExit
        if interrupts.requested():
            # a real Ctrl-C stops the suite, whatever it made the cell raise (a DataLoader worker the
            # terminal's SIGINT ended); a method raising KeyboardInterrupt itself fails only its cell
            raise KeyboardInterrupt from exc
        if isinstance(exc, UsageError) and p is None:
            raise  # the user's data or weights cannot be used (a corrupt file): one line, exit 2, before the method ran
        record["reason"] = _one_line(exc)
        record["traceback"] = traceback.format_exc()
    finally:
        if p is not None and p.meter.progress is not None:
            p.meter.progress.close()
    record["wall_seconds"] = time.time() - started
    record["finished_at"] = time.time()
    record["load_average"]["end"] = os.getloadavg()[0]
    return record


def say_line(env: CellEnv, message: str) -> None:
    """One plain progress line on stderr, flushed at once (when no terminal shows bars)."""
    if env.lines:
        print(f"metricbench: {message}", file=sys.stderr, flush=True)


def _bar_factory(env: CellEnv, description: str):
    """`make(total)` for a progress bar, or None when progress is off."""
    if not env.progress:
        return None
    from tqdm.auto import tqdm

    return lambda total: tqdm(total=total, desc=description, unit="step", leave=False)
