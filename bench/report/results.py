"""Results as data: the cell records (and the stages they built) as tidy pandas DataFrames.

A notebook starts with one call::

    from metricbench.bench.report import results
    frame = results.load("runs/quick")            # one row per cell x split x metric, and per stage diagnostic
    curves = results.load_anytime("runs/quick")   # one row per cell x anytime point x metric

`load` columns:

- `record`: "cell", or "stage" for what a method built once before its cells (e.g. MetricOpt's
  meta-training; one set of rows per distinct stage, its diagnostics as metrics);
- `suite`, `cell_id`, `task`, `task_label` (the task, plus what differs when the folder holds several
  configurations of it), `task_options` (JSON), `target`, `is_default_target`, `method`,
  `method_label`, `method_options` (JSON), `row` (the table row: the method label, marked
  `→ target` when the target is not the task's first metric), `seed`, `status`, `reason`;
- `split` ("test": the finetuned model, "pretrained": the seed's shared starting checkpoint on test,
  "stage": a stage's diagnostic), `metric`, `direction`, `value`, `change` (test rows: the change from
  the seed's pretrained checkpoint, signed so that positive is better whatever the direction);
- costs: `<account>_calls` and `<account>_examples` for every budget account, `optimizer_steps`,
  `wall_seconds`, `finetune_seconds` (the method's), `gpu_seconds`, `anytime_seconds` (the runner's
  test curve), `load_average` (the machine's 1-minute load at the cell's start or end, the higher: seconds
  measured under contention show it), `device`, `stage_id`, `stage_seconds` (cell rows: the method's stage, if any).

Tables, plots, reports and the published rows are all built from these frames.
"""

from __future__ import annotations

import json
from pathlib import Path

from metricbench.bench.core.budget import ACCOUNTS
from metricbench.bench.report.records import SECONDS, CellResult, labels, load_records

SIGNS = {"higher": 1.0, "lower": -1.0}


def load(out_dir: str | Path, suite: str | None = None):
    """The long DataFrame of an output folder's cell records (`suite` when it holds several)."""
    return frame(load_records(out_dir, suite=suite))


def load_anytime(out_dir: str | Path, suite: str | None = None):
    """The long DataFrame of the runner's anytime test curves in an output folder's cell records."""
    return anytime_frame(load_records(out_dir, suite=suite))


def _identity(results: list[CellResult]) -> list[dict]:
    """Per result: the columns that say which cell it is (labels disambiguate configurations)."""
    task_keys = [(r.task, json.dumps(r.task_config, sort_keys=True)) for r in results]
    method_keys = [(r.method, json.dumps(r.method_config, sort_keys=True)) for r in results]
    task_labels = labels({key: r.task_config for key, r in zip(task_keys, results, strict=True)})
    method_labels = labels({key: r.method_config for key, r in zip(method_keys, results, strict=True)})
    out = []
    for r, task_key, method_key in zip(results, task_keys, method_keys, strict=True):
        target = r.target or r.default_target
        default = target == r.default_target
        method_label = method_labels[method_key]
        out.append(
            {
                "suite": r.suite,
                # results made by hand (not from a record) get a stand-in id, unique per cell
                "cell_id": r.cell_id or f"{task_labels[task_key]}/{target}/{method_label}/seed{r.seed}",
                "task": r.task,
                "task_label": task_labels[task_key],
                "task_options": task_key[1],
                "target": target,
                "is_default_target": default,
                "method": r.method,
                "method_label": method_label,
                "method_options": method_key[1],
                "row": method_label if default else f"{method_label} → {target}",
                "seed": r.seed,
                "status": r.status,
                "reason": r.reason,
            }
        )
    return out


def _costs(r: CellResult) -> dict:
    costs = {}
    for account in ACCOUNTS:
        costs[f"{account}_calls"] = r.spent.get(account, float("nan"))
        costs[f"{account}_examples"] = r.spent_examples.get(account, float("nan"))
    costs["optimizer_steps"] = float("nan") if r.steps_taken is None else r.steps_taken
    for key in SECONDS:
        costs[key] = r.seconds.get(key, float("nan"))
    costs["load_average"] = float("nan") if r.load_average is None else r.load_average
    return costs


def frame(results: list[CellResult]):
    import pandas as pd

    rows = []
    stages_seen = set()
    for r, identity in zip(results, _identity(results), strict=True):
        common = {
            "record": "cell",
            **identity,
            **_costs(r),
            "device": r.device,
            "stage_id": r.stage_id,
            "stage_seconds": float("nan") if r.stage_seconds is None else r.stage_seconds,
        }
        for metric, direction in r.directions.items():
            start = r.pretrained.get(metric, float("nan"))
            value = r.metrics.get(metric, float("nan")) if r.status == "ok" else float("nan")
            change = SIGNS[direction] * (value - start)
            rows.append({**common, "split": "test", "metric": metric, "direction": direction, "value": value, "change": change})
            rows.append(
                {**common, "split": "pretrained", "metric": metric, "direction": direction, "value": start, "change": 0.0}
            )
        stage_logs = {k[len("stage/") :]: v for k, v in r.diagnostics.items() if k.startswith("stage/")}
        if r.stage_id and (r.stage_id, identity["row"]) not in stages_seen and (r.stage_spent or stage_logs):
            stages_seen.add((r.stage_id, identity["row"]))
            stage_costs = {f"{a}_calls": r.stage_spent.get(a, float("nan")) for a in ACCOUNTS}
            stage_costs.update({f"{a}_examples": r.stage_spent_examples.get(a, float("nan")) for a in ACCOUNTS})
            stage = {
                **common,
                **{k: float("nan") for k in (*SECONDS, "optimizer_steps", "load_average")},
                **stage_costs,
                "record": "stage",
                "cell_id": "",
                "split": "stage",
                "direction": "",
                "change": float("nan"),
            }
            for name, value in (stage_logs or {"seconds": r.stage_seconds}).items():
                rows.append({**stage, "metric": name, "value": value})
    return pd.DataFrame(rows, columns=COLUMNS)


COLUMNS = [
    "record", "suite", "cell_id", "task", "task_label", "task_options", "target", "is_default_target", "method",
    "method_label", "method_options", "row", "seed", "status", "reason", "split", "metric", "direction", "value", "change",
    *(f"{a}_{unit}" for a in ACCOUNTS for unit in ("calls", "examples")), "optimizer_steps", *SECONDS, "load_average", "device",
    "stage_id", "stage_seconds",
]  # fmt: skip

ANYTIME_COLUMNS = [
    "suite", "cell_id", "task", "task_label", "target", "method", "method_label", "row", "seed", "step", "queries",
    *(f"{a}_{unit}" for a in ACCOUNTS for unit in ("calls", "examples")), "metric", "direction", "value",
]  # fmt: skip


def anytime_frame(results: list[CellResult]):
    """One row per (cell, anytime point, metric): `step`, `queries` (calls to the metric oracle, every
    account but steps), each account's calls and examples so far, and the test value."""
    import pandas as pd

    rows = []
    for r, identity in zip(results, _identity(results), strict=True):
        if r.status != "ok":
            continue
        keep = {k: identity[k] for k in ANYTIME_COLUMNS if k in identity}
        for point in r.anytime:
            spent = {}
            for account in ACCOUNTS:
                calls, examples = point["spent"].get(account, [float("nan"), float("nan")])
                spent[f"{account}_calls"], spent[f"{account}_examples"] = calls, examples
            for metric, value in point["metrics"].items():
                rows.append(
                    {
                        **keep,
                        "step": point["step"],
                        "queries": point["queries"],
                        **spent,
                        "metric": metric,
                        "direction": r.directions.get(metric, ""),
                        "value": value,
                    }
                )
    return pd.DataFrame(rows, columns=ANYTIME_COLUMNS)
