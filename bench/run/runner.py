"""Running a suite: expand the grid, skip finished cells, run the rest, log, render tables."""

from __future__ import annotations

import contextlib
import fcntl
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from metricbench.bench.core import interrupts
from metricbench.bench.core.errors import UsageError
from metricbench.bench.core.faults import pause_point
from metricbench.bench.core.files import atomic_write_bytes, check_writable_folder, ensure_writable_folder
from metricbench.bench.core.registry import suggest
from metricbench.bench.report import outputs, records, render
from metricbench.bench.run.cell import (
    CellEnv,
    SplitCache,
    cell_folder,
    read_record,
    record_path,
    resolve_device,
    run_cell,
    say_line,
    write_record,
)
from metricbench.bench.run.suite import Suite
from metricbench.bench.track.environment import environment_tags
from metricbench.bench.track.tracker import Tracker
from metricbench.bench.track.uri import check_tracking_uri, resolve_tracking_uri, sqlite_path, ui_hint

# One intra-op thread per process. On a machine other work keeps busy, every extra thread waits on the
# others at each parallel region: on the 2-core development machine (docs/performance.md, "Threads") PyTorch's
# own default (one per core) made `smoke` 8x slower under load, while idle it was at most about 2x
# faster (the quick suite's image tasks). `--threads 0` restores it.
DEFAULT_THREADS = 1


@dataclass
class RunSettings:
    out_dir: Path
    device: str = "auto"
    tracking_uri: str | None = None
    data_dir: str | None = None
    cache_dir: Path | None = None
    quiet: bool = False
    threads: int = DEFAULT_THREADS


@dataclass
class RunSummary:
    computed: int
    skipped: int
    failed: int
    tracking_uri: str
    experiment_id: str
    table_markdown: str

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def check_device(device: str) -> None:
    import torch

    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"--device must be auto, cpu or cuda, got '{device}'")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available; use --device auto or cpu")


def check_data(cells, env: CellEnv) -> None:
    """Every task finds what it needs on disk, checked before anything runs (one line, exit 2 if not)."""
    from metricbench.tasks import create_task

    seen = set()
    for cell in cells:
        key = (cell.task, json.dumps(cell.task_options, sort_keys=True))
        if key not in seen:
            seen.add(key)
            create_task(cell.task, **cell.task_options).check_data(env.data_paths())


def check_stage_sources(cells, env: CellEnv) -> None:
    """Every stage a method reuses from elsewhere (transfer) exists and every meta-training task a stage
    names can be used, checked before anything runs."""
    from metricbench.bench.run.stages import find_stage
    from metricbench.methods import create_method

    seen = set()
    for cell in cells:
        key = (cell.method, json.dumps(cell.method_options, sort_keys=True), cell.budget)
        if key not in seen:
            seen.add(key)
            spec = create_method(cell.method, **cell.method_options).stage(cell.budget)
            if spec is None:
                continue
            if spec.source:
                find_stage(spec.source, Path(env.cache_dir), Path(env.out_dir))
            for name in spec.tasks:
                check_meta_task(name, cell, env)


def check_meta_task(name: str, cell, env: CellEnv) -> None:
    """A stage's meta-training task exists, has the cell's target metric and finds its data."""
    from metricbench.tasks import TASKS, create_task

    if name not in TASKS.names():
        raise UsageError(f"method '{cell.method}': meta-training task '{name}' is not registered{suggest(name, TASKS.names())}")
    task = create_task(name)
    if cell.target not in task.metrics:
        raise UsageError(
            f"method '{cell.method}': meta-training task '{name}' has no metric '{cell.target}' (the target of "
            f"{cell.task}'s cells); its metrics: {', '.join(task.metrics)}; meta-train on tasks that share the target"
        )
    task.check_data(env.data_paths())


def apply_threads(threads: int) -> int:
    """Set PyTorch's intra-op threads (0: leave its default); return the number in effect."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def run_suite(suite: Suite, settings: RunSettings) -> RunSummary:
    """Run the suite's unfinished cells, log what is not logged yet, and write the tables.

    Every input is validated before anything is created. One invocation at a time works in an output
    folder (a lock; a second waits, then finds the cells done); a real Ctrl-C marks the invocation
    KILLED and propagates as `KeyboardInterrupt` (the CLI exits 130)."""
    out_dir = Path(settings.out_dir)
    if settings.data_dir is not None and not Path(settings.data_dir).is_dir():
        raise UsageError(f"--data-dir '{settings.data_dir}' is not a folder; point it at where the datasets live")
    check_device(settings.device)
    if settings.threads < 0:
        raise UsageError(f"--threads must be 0 (PyTorch's default) or more, got {settings.threads}")
    cells = suite.cells()  # validates every name and option before anything runs
    env = CellEnv(
        device=str(resolve_device(settings.device)),  # "auto" resolved once: every tag and record names the device
        out_dir=str(out_dir),
        cache_dir=str(settings.cache_dir or out_dir / "cache"),
        data_dir=settings.data_dir,
        progress=not settings.quiet and sys.stderr.isatty(),
        lines=not settings.quiet and not sys.stderr.isatty(),
    )
    check_data(cells, env)
    check_stage_sources(cells, env)
    unwritable = "output folder '{folder}' is not writable ({reason}); choose another with --out"
    check_writable_folder(out_dir, unwritable)  # creates nothing
    uri = resolve_tracking_uri(settings.tracking_uri, out_dir)  # creates nothing
    check_tracking_uri(uri)  # --tracking-uri, $MLFLOW_TRACKING_URI or the default; creates nothing
    ensure_writable_folder(out_dir, unwritable)  # every input is valid: now the folder may be made
    threads = apply_threads(settings.threads)
    with folder_lock(out_dir, settings.quiet), interrupts.ctrl_c_stops_the_suite():
        return _run_locked(suite, settings, cells, env, uri, threads)


def _run_locked(suite: Suite, settings: RunSettings, cells, env: CellEnv, uri: str, threads: int) -> RunSummary:
    out_dir = Path(settings.out_dir)
    interrupts.stop_if_requested()  # a Ctrl-C during validation: nothing was started
    env_tags = {**environment_tags(env.device), "torch_threads": str(threads)}
    with store_lock(uri):  # creating a new store migrates its schema: one process at a time
        tracker = Tracker(uri, suite.name)
        tracker.start_invocation(
            params={
                "suite": suite.name,
                "tasks": ",".join(sorted({c.task for c in cells})),
                "methods": ",".join(sorted({c.method for c in cells})),
                "seeds": ",".join(map(str, suite.seeds)),
                "cells": len(cells),
                "targets": json.dumps(
                    {t: sorted({c.target for c in cells if c.task == t}) for t in sorted({c.task for c in cells})}
                ),
                "device": env.device,
                "threads": threads,
                "out_dir": str(out_dir.resolve()),
            },
            tags=env_tags,
        )
        logged = tracker.cell_runs()  # one read for the whole suite
    computed = skipped = failed = 0
    interrupted = False
    bar = _cell_bar(len(cells), settings.quiet)
    splits_cache = SplitCache()  # this invocation's, held here and never by anything a method is handed
    say_line(env, f"suite {suite.name}: {len(cells)} cells into {out_dir}")
    try:
        for number, cell in enumerate(cells, 1):
            interrupts.stop_if_requested()  # a safe point between cells
            record = read_record(out_dir, cell)
            # a finished cell without the test curve now asked for runs again (the curve changes no result)
            if record is not None and record.get("status") == "ok" and (not cell.anytime or "anytime" in record):
                skipped += 1
            else:
                if bar is not None:
                    bar.set_postfix_str(f"{cell.task}/{cell.target}/{cell.method}/seed{cell.seed}")
                record = run_cell(cell, env, splits_cache)
                write_record(out_dir, record)
                pause_point("record-written")
                computed += 1
                say_line(env, _cell_line(number, len(cells), record))
                if record["status"] != "ok":
                    failed += 1
                    _say(f"cell {cell.cell_id} failed: {record['reason']}", settings.quiet)
            _log_if_needed(tracker, uri, record, out_dir, cell, env_tags, logged)
            if bar is not None:
                bar.update(1)
        interrupts.stop_if_requested()  # the last cell's logging
        if skipped:
            say_line(env, f"{skipped} of {len(cells)} cells were already finished in {out_dir}")

        # what produced the results, beside them (git commit, versions, CPU, threads)
        environment = {"suite": suite.name, **{k: v for k, v in env_tags.items() if k != "host"}}
        payload = (json.dumps(environment, indent=1, sort_keys=True) + "\n").encode()
        atomic_write_bytes(out_dir / "environment.json", lambda handle: handle.write(payload))
        # tables, costs, cost to target, profiles and figures come from the records, the source of truth
        derived = outputs.derive(records.load_records(out_dir, {c.cell_id for c in cells}))
        figures = outputs.write_outputs(out_dir, derived)
        with store_lock(uri):
            tracker.log_figures(figures)  # on the invocation's run, beside its cells
        interrupts.stop_if_requested()  # while the tables were written: a rerun writes them again
    except KeyboardInterrupt:
        interrupted = True
        raise
    except UsageError:  # bad data found while loading a task (a corrupt file): the cells done so far stay
        failed += 1
        raise
    finally:
        if bar is not None:
            bar.close()
        with store_lock(uri):
            tracker.finish_invocation(failed, computed, skipped, interrupted)
    return RunSummary(computed, skipped, failed, uri, tracker.experiment_id, render.to_markdown(derived.table))


def _log_if_needed(tracker: Tracker, uri: str, record: dict, out_dir: Path, cell, env_tags: dict, known: dict) -> None:
    """Log the record unless this very record is completely logged already. The record is the source
    of truth: a cell computed again, a logging cut short by a kill, or a new store is logged now
    (without training), and the cell's earlier runs are marked superseded. `known` holds the store's
    runs as read at the start; a cell not logged there is looked up again under the store's lock
    (another invocation sharing the store may have logged it since)."""
    if tracker.is_logged(record, known.get(record["cell_id"], [])):
        return
    with store_lock(uri):
        runs = tracker.cell_runs(record["cell_id"]).get(record["cell_id"], [])
        if tracker.is_logged(record, runs):
            return
        run_id = tracker.log_cell(record, record_path(out_dir, cell), env_tags, cell_folder(out_dir, cell))
        tracker.supersede(runs, run_id)
    record["mlflow_run_id"] = run_id
    write_record(out_dir, record)


@contextlib.contextmanager
def folder_lock(out_dir: Path, quiet: bool):
    """Hold the output folder for one invocation; a second one waits for the first to finish."""
    with open(out_dir / ".metricbench.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"another metricbench run is using {out_dir}; waiting for it to finish", quiet)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def store_lock(uri: str):
    """Serialise writers of one SQLite store across processes (a tracking server serialises itself)."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr)


def _cell_line(number: int, total: int, record: dict) -> str:
    """The plain line for a finished cell: where it stands, what it was, how it went, what it scored."""
    what = f"cell {number}/{total} {record['task']} {record['target_metric']} {record['method']} seed {record['seed']}"
    if record["status"] != "ok":
        return f"{what}: failed in {record['wall_seconds']:.1f} s"
    target = record["target_metric"]
    return f"{what}: ok in {record['wall_seconds']:.1f} s, test {target} {record['metrics'][target]:.4f}"


def _cell_bar(total: int, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="cells", unit="cell")


def summary_text(summary: RunSummary, out_dir: Path) -> str:
    lines = [
        summary.table_markdown,
        f"cells: {summary.computed} computed, {summary.skipped} already finished, {summary.failed} failed",
        f"tables: {out_dir / 'table.md'} (.tex, .html, .csv), costs: {out_dir / 'costs.md'}, "
        f"cost to target: {out_dir / 'targets.md'}, profiles: {out_dir / 'profiles.md'}, figures: {out_dir / 'plots'}",
        f"MLflow store: {summary.tracking_uri}",
        ui_hint(summary.tracking_uri, summary.experiment_id),
    ]
    return "\n".join(lines)
