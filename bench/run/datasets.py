"""`metricbench data download|check|fixture TASK --data-dir DIR`: a paper task's dataset, explicitly.

Downloads happen only here, never during `run`: `download` fetches the task's resources (verified,
resumable, atomic: `tasks.data.download`) into DIR and unpacks them into the layout the task reads; `check`
loads the task's splits from DIR and prints their sizes (the loader's own checks name a bad file and
line); `fixture` writes a tiny dataset in the same format, to try a paper suite without the real data.
"""

from __future__ import annotations

import sys
from pathlib import Path

from metricbench.bench.core.errors import UsageError


def _dataset(task_name: str):
    from metricbench.tasks import create_task

    task = create_task(task_name)
    if task.data is None:
        raise UsageError(f"task '{task_name}' reads no dataset from --data-dir (its data ships with a package or is generated)")
    return task


def data_command(action: str, task_name: str, data_dir: Path) -> int:
    if action == "download":
        return download(task_name, data_dir)
    if action == "check":
        return check(task_name, data_dir)
    return fixture(task_name, data_dir)


def download(task_name: str, data_dir: Path) -> int:
    from metricbench.tasks.data.download import fetch

    dataset = _dataset(task_name).data
    if not dataset.resources:
        raise UsageError(f"{dataset.name} cannot be downloaded automatically: {dataset.manual.replace('DIR', str(data_dir))}")
    data_dir.mkdir(parents=True, exist_ok=True)
    fetch(list(dataset.resources), data_dir, progress=_progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)  # end the progress line
    missing = dataset.missing(data_dir)
    if missing is not None:  # the archive did not unpack into the layout the task reads
        raise UsageError(f"{dataset.name}: downloaded, but {data_dir / missing} is missing; the archive's layout has changed")
    print(f"{dataset.name}: ready in {data_dir} (check it with `metricbench data check {task_name} --data-dir {data_dir}`)")
    return 0


def check(task_name: str, data_dir: Path) -> int:
    from metricbench.tasks.kinds.base import DataPaths

    task = _dataset(task_name)
    paths = DataPaths(data_dir, data_dir / ".generated")
    task.data.check(task_name, data_dir)
    splits = task.load_splits(paths)
    sizes = ", ".join(f"{name} {count:,}" for name, count in splits.sizes().items())
    print(f"{task.data.name} in {data_dir}: {sizes}")
    return 0


def fixture(task_name: str, data_dir: Path) -> int:
    dataset = _dataset(task_name).data
    if dataset.fixture is None:
        raise UsageError(f"task '{task_name}' has no fixture writer")
    missing = dataset.missing(data_dir)
    if data_dir.exists() and missing is None:
        raise UsageError(f"{data_dir} already holds {dataset.name}; choose an empty folder for the fixture")
    dataset.fixture(data_dir)
    print(f"wrote a tiny {dataset.name} in its standard format to {data_dir}")
    return 0


def _progress(done: int, total: int | None) -> None:
    if not sys.stderr.isatty():
        return
    share = f" ({100 * done / total:.0f}%)" if total else ""
    print(f"\r{done / 1e6:,.1f} MB{share}", end="", file=sys.stderr, flush=True)
