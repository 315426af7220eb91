"""Reading results: the cell records of an output folder (the source of truth) as `CellResult`s
(`metricbench.bench.track.collect` reads the same from an MLflow store's cell runs when the folder is
gone). `metricbench.bench.report.results` turns them into DataFrames, from which the tables, plots and
reports are built.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from metricbench.bench.core.budget import ACCOUNTS
from metricbench.bench.core.errors import UsageError

SECONDS = ("wall_seconds", "finetune_seconds", "gpu_seconds", "anytime_seconds")  # a cell's times, as recorded


@dataclass
class CellResult:
    task: str
    method: str
    seed: int
    status: str
    reason: str
    metrics: dict[str, float]
    pretrained: dict[str, float]
    directions: dict[str, str]  # in the task's metric order; the first is its default target
    target: str = ""
    spent: dict[str, float] = field(default_factory=dict)  # account -> calls
    task_config: dict = field(default_factory=dict)  # the task's options and the cell's budget
    method_config: dict = field(default_factory=dict)  # the method's options
    stage_id: str = ""  # the stage the cell's method built or reused (shared by cells), if any
    stage_spent: dict[str, float] = field(default_factory=dict)  # account -> calls, of that stage
    notes: list[str] = field(default_factory=list)  # what the method said about its run (`ctx.note`)
    diagnostics: dict[str, float] = field(default_factory=dict)  # the last value of each `ctx.log`; `stage/...` its stage's
    cell_id: str = ""
    suite: str = ""
    device: str = ""
    spent_examples: dict[str, float] = field(default_factory=dict)  # account -> examples
    steps_taken: int | None = None  # optimizer steps on the model, as the harness counted them
    seconds: dict[str, float] = field(default_factory=dict)  # wall, finetune, gpu, anytime (the runner's test curve)
    stage_seconds: float | None = None
    stage_spent_examples: dict[str, float] = field(default_factory=dict)
    anytime: list[dict] = field(default_factory=list)  # the runner's test curve (`metricbench.bench.run.anytime`)
    load_average: float | None = None  # the machine's 1-minute load at the cell's start or end, the higher

    @property
    def default_target(self) -> str:
        return next(iter(self.directions), "")

    @property
    def row(self) -> str:
        """The table row: the method, marked with its target when that is not the task's default."""
        return self.method if not self.target or self.target == self.default_target else f"{self.method} → {self.target}"


def peak_load(record: dict) -> float | None:
    """The higher of the 1-minute load averages at the cell's start and end (None in older records)."""
    load = record.get("load_average") or {}
    values = [load[k] for k in ("start", "end") if k in load]
    return max(values) if values else None


def load_records(out_dir: str | Path, cell_ids: set[str] | None = None, suite: str | None = None) -> list[CellResult]:
    """The results in an output folder's cell records (`cells/*.json`): those of `cell_ids`, or of
    `suite` (needed when the folder holds several suites)."""
    folder = Path(out_dir) / "cells"
    if not folder.is_dir():
        raise UsageError(f"'{out_dir}' has no cell records (cells/); give the --out folder of a `metricbench run`")
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue  # a corrupt record is reported, moved aside and recomputed by the next run
    if cell_ids is not None:
        records = [r for r in records if r.get("cell_id") in cell_ids]
    elif suite is not None:
        held = sorted({r.get("suite", "") for r in records})
        records = [r for r in records if r.get("suite") == suite]
        if not records:
            raise UsageError(f"'{out_dir}' holds no cells of suite '{suite}'; it holds: {', '.join(held) or '(none)'}")
    else:
        held = sorted({r.get("suite", "") for r in records})
        if len(held) > 1:
            raise UsageError(f"'{out_dir}' holds cells of {len(held)} suites ({', '.join(held)}); choose one with --suite NAME")
    if not records:
        raise UsageError(f"'{out_dir}' has no finished cells yet; run `metricbench run` first")
    return [from_record(record) for record in records]


def from_record(record: dict) -> CellResult:
    order = record.get("metric_names") or list(record["directions"])
    return CellResult(
        task=record["task"],
        method=record["method"],
        seed=record["seed"],
        status=record["status"],
        reason=record.get("reason", ""),
        metrics=record.get("metrics", {}),
        pretrained=(record.get("pretrained") or {}).get("test", {}),
        directions={m: record["directions"][m] for m in order},
        target=record.get("target_metric", ""),
        spent={a: record["spent"][a]["calls"] for a in ACCOUNTS if a in (record.get("spent") or {})},
        stage_id=(record.get("stage") or {}).get("id", ""),
        notes=list(record.get("notes") or []),
        diagnostics={
            **{name: points[-1][1] for name, points in ((record.get("history") or {}).get("logs") or {}).items() if points},
            **{f"stage/{name}": value for name, value in ((record.get("stage") or {}).get("logs") or {}).items()},
        },
        stage_spent={a: v["calls"] for a, v in ((record.get("stage") or {}).get("spent") or {}).items() if a in ACCOUNTS},
        task_config={
            **{f"task.{k}": json.dumps(v) for k, v in sorted(record.get("task_options", {}).items())},
            **{f"budget.{k}": json.dumps(v) for k, v in sorted(record.get("budget", {}).items())},
        },
        method_config={f"method.{k}": json.dumps(v) for k, v in sorted(record.get("method_options", {}).items())},
        cell_id=record.get("cell_id", ""),
        suite=record.get("suite", ""),
        device=record.get("device", ""),
        spent_examples={a: record["spent"][a]["examples"] for a in ACCOUNTS if a in (record.get("spent") or {})},
        steps_taken=(record.get("steps") or {}).get("optimizer_steps"),
        seconds={k: record[k] for k in SECONDS if k in record},
        stage_seconds=(record.get("stage") or {}).get("seconds"),
        stage_spent_examples={
            a: v["examples"] for a, v in ((record.get("stage") or {}).get("spent") or {}).items() if a in ACCOUNTS
        },
        anytime=list(record.get("anytime") or []),
        load_average=peak_load(record),
    )


def labels(configs: dict[tuple[str, str], dict]) -> dict[tuple[str, str], str]:
    """A label per (name, config key): the name, plus what differs when one name has several configs."""
    by_name: dict[str, list[tuple[str, str]]] = {}
    for key in configs:
        by_name.setdefault(key[0], []).append(key)
    labels = {}
    for name, keys in by_name.items():
        if len(keys) == 1:
            labels[keys[0]] = name
            continue
        differing = sorted({k for key in keys for k in configs[key] if len({configs[o].get(k) for o in keys}) > 1})
        for key in keys:
            shown = ", ".join(f"{k.split('.', 1)[1]}={configs[key].get(k, '–')}" for k in differing)
            labels[key] = f"{name} ({shown})"
    return labels
