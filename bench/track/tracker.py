"""Logging a suite to MLflow: one experiment per suite, a run per invocation and a run per cell.

A cell's run is not nested under its invocation's (MLflow's UI would fold the cells into one row
under an unlabelled "+"): it names the invocation in the `metricbench.invocation` tag instead. Each
suite's experiment carries the runs-page view of `metricbench.bench.track.schema`.

Everything is logged from the cell's result record after the cell ends, in batches (`log_batch`),
never per step.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from metricbench.bench.core.faults import pause_point
from metricbench.bench.report.plots import cell_curves_plot
from metricbench.bench.report.records import peak_load
from metricbench.bench.track.schema import (
    DIGEST_TAG,
    INVOCATION_TAG,
    KIND_TAG,
    SUPERSEDED_TAG,
    TARGET_TEST,
    cell_run_name,
    metric_key,
    record_digest,
    runs_view_tag,
)
from metricbench.bench.track.uri import sqlite_path


def _flatten(prefix: str, options: dict) -> dict[str, str]:
    return {f"{prefix}.{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in options.items()}


class Tracker:
    """Logs an invocation of a suite to MLflow."""

    def __init__(self, uri: str, suite_name: str):
        import logging

        import mlflow
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no schema-migration chatter on a new store
        self.uri = uri
        self._mlflow = mlflow
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(suite_name)
        if experiment is None:
            location = None
            db = sqlite_path(uri)
            if db is not None:
                location = (db.parent / "mlartifacts").resolve().as_uri()
            self.experiment_id = self.client.create_experiment(suite_name, artifact_location=location)
        else:
            self.experiment_id = experiment.experiment_id
        view_key, view = runs_view_tag()
        if experiment is None or experiment.tags.get(view_key) != view:
            self.client.set_experiment_tag(self.experiment_id, view_key, view)
        self.parent_id: str | None = None

    def cell_runs(self, cell_id: str | None = None) -> dict[str, list]:
        """cell id -> its runs in this store (newest first); only `cell_id`'s when given."""
        found: dict[str, list] = {}
        token = None
        wanted = f"tags.`{KIND_TAG}` = 'cell'" + (f" and tags.cell_id = '{cell_id}'" if cell_id else "")
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=wanted,
                order_by=["attributes.start_time DESC"],
                max_results=1000,
                page_token=token,
            )
            for run in page:
                found.setdefault(run.data.tags.get("cell_id"), []).append(run)
            token = page.token
            if not token:
                return found

    def is_logged(self, record: dict, runs: list) -> bool:
        """Whether one of `runs` is this very record, completely logged: terminated, carrying the
        record's digest (set last, so a run interrupted while logging never carries it) and not
        superseded."""
        return any(
            run.info.status in ("FINISHED", "FAILED")
            and run.data.tags.get(DIGEST_TAG) == record_digest(record)
            and SUPERSEDED_TAG not in run.data.tags
            for run in runs
        )

    def supersede(self, runs: list, by_run_id: str) -> None:
        """Mark earlier runs of a cell as replaced (an interrupted logging, an earlier result); a run
        left RUNNING by a killed process is ended as KILLED."""
        for run in runs:
            if run.info.run_id == by_run_id or SUPERSEDED_TAG in run.data.tags:
                continue
            self.client.set_tag(run.info.run_id, SUPERSEDED_TAG, by_run_id)
            if run.info.status == "RUNNING":
                self.client.set_terminated(run.info.run_id, "KILLED")

    def start_invocation(self, params: dict[str, str], tags: dict[str, str]) -> None:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"invocation {time.strftime('%Y-%m-%d %H:%M:%S')}",
            tags={KIND_TAG: "invocation", **tags},
        )
        self.parent_id = run.info.run_id
        self._log_batch(self.parent_id, params=params)

    def finish_invocation(self, failed: int, computed: int, skipped: int, interrupted: bool = False) -> None:
        if self.parent_id is None:
            return
        self._log_batch(self.parent_id, metrics={"cells_failed": failed, "cells_computed": computed, "cells_skipped": skipped})
        self.client.set_terminated(self.parent_id, "KILLED" if interrupted else "FAILED" if failed else "FINISHED")

    def log_figures(self, paths: list[Path]) -> None:
        """The suite's figures (PNG, with their PDFs beside them) as artifacts of the invocation's run."""
        if self.parent_id is None:
            return
        for path in paths:
            for twin in (path, path.with_suffix(".pdf")):
                if twin.is_file():
                    self.client.log_artifact(self.parent_id, str(twin), artifact_path="plots")

    def _log_batch(self, run_id: str, metrics=None, params=None, tags=None, steps=None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metric_objs = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
        metric_objs += [Metric(k, float(v), now, int(s)) for k, s, v in (steps or [])]
        param_objs = [Param(k, str(v)[:6000]) for k, v in (params or {}).items()]
        tag_objs = [RunTag(k, str(v)[:8000]) for k, v in (tags or {}).items()]
        # MLflow caps one batch at 1,000 metrics, 100 params and 100 tags
        while metric_objs or param_objs or tag_objs:
            self.client.log_batch(run_id, metrics=metric_objs[:1000], params=param_objs[:100], tags=tag_objs[:100])
            metric_objs, param_objs, tag_objs = metric_objs[1000:], param_objs[100:], tag_objs[100:]

    def log_cell(self, record: dict, record_file: Path, env_tags: dict[str, str], cell_dir: Path | None = None) -> str:
        """Create the cell's run from its record (and the method's files in `cell_dir`, as
        artifacts under `method/`); return the run id."""
        tags = {
            KIND_TAG: "cell",
            "cell_id": record["cell_id"],
            "task": record["task"],
            "method": record["method"],
            "seed": str(record["seed"]),
            "status": record["status"],
            "target_metric": record["target_metric"],
            "metric_names": json.dumps(record["metric_names"]),
            "metric_directions": json.dumps(record["directions"]),
            **env_tags,
            "device": record["device"],
        }
        if record["reason"]:
            tags["failure_reason"] = record["reason"]
        if record.get("stage"):
            tags["stage_id"] = record["stage"]["id"]
        if record.get("notes"):
            tags["method_notes"] = json.dumps(record["notes"])
        if self.parent_id:
            tags[INVOCATION_TAG] = self.parent_id  # not mlflow.parentRunId: the UI would hide the cells under it
        run = self.client.create_run(
            self.experiment_id,
            run_name=cell_run_name(record),
            tags=tags,
            start_time=int(record["started_at"] * 1000),  # the cell's own times, not the logging's
        )
        run_id = run.info.run_id
        pause_point("run-created")
        params = {
            "task": record["task"],
            "target": record["target_metric"],
            "method": record["method"],
            "seed": record["seed"],
            "eval_every": record.get("eval_every", 0),
            **{f"budget.{k}": v for k, v in record["budget"].items()},
            **_flatten("task", record["task_options"]),
            **_flatten("method", record["method_options"]),
            "pretrained_checkpoint": record.get("pretrained", {}).get("key", ""),
        }
        metrics = {f"test/{metric_key(k)}": v for k, v in record["metrics"].items()}
        if record["target_metric"] in record["metrics"]:  # a failed cell has no test metrics
            metrics[TARGET_TEST] = record["metrics"][record["target_metric"]]
        metrics.update({f"pretrained_test/{metric_key(k)}": v for k, v in record.get("pretrained", {}).get("test", {}).items()})
        metrics.update(_spending(record))
        metrics["wall_seconds"] = record["wall_seconds"]
        load = peak_load(record)
        if load is not None:
            metrics["load_average"] = load
        for key in ("finetune_seconds", "gpu_seconds", "anytime_seconds"):
            if key in record:
                metrics[key] = record[key]
        self._log_batch(run_id, metrics=metrics, params=params, steps=_curve_points(record))
        with tempfile.TemporaryDirectory() as tmp:
            self.client.log_artifact(run_id, str(record_file))
            if cell_dir is not None and cell_dir.is_dir() and any(cell_dir.iterdir()):
                self.client.log_artifacts(run_id, str(cell_dir), artifact_path="method")
            plot = cell_curves_plot(record, Path(tmp))
            if plot is not None:
                self.client.log_artifact(run_id, str(plot))
        pause_point("run-logged")
        # the digest last: a run interrupted anywhere above never counts as this record's logging
        self.client.set_tag(run_id, DIGEST_TAG, record_digest(record))
        self.client.set_terminated(
            run_id, "FINISHED" if record["status"] == "ok" else "FAILED", end_time=int(record["finished_at"] * 1000)
        )
        return run_id


def _spending(record: dict) -> dict[str, float]:
    """`spent/<account>_calls` and `_examples` for every budget account, the step counts, and the same
    for the method's stage (`stage/...`, with what it logged) when it has one."""
    out = {}
    for account, spent in (record.get("spent") or {}).items():
        out[f"spent/{account}_calls"] = spent["calls"]
        out[f"spent/{account}_examples"] = spent["examples"]
    for key, value in (record.get("steps") or {}).items():
        out[f"spent/{key}"] = value
    stage = record.get("stage") or {}
    for account, spent in (stage.get("spent") or {}).items():  # the shared stage's costs, apart from the cell's
        out[f"stage/{account}_calls"] = spent["calls"]
        out[f"stage/{account}_examples"] = spent["examples"]
    if stage:
        out["stage/seconds"] = stage["seconds"]
        out.update({f"stage/{name}": value for name, value in (stage.get("logs") or {}).items()})  # its diagnostics
    return out


def _curve_points(record: dict, max_loss_points: int = 500) -> list[tuple[str, int, float]]:
    """(key, step, value) triples: val curves, the method's logs, and the train loss averaged into at
    most 500 points."""
    history = record.get("history") or {}
    points = [
        (f"val/{metric_key(name)}", step, value) for name, curve in (record.get("curves") or {}).items() for step, value in curve
    ]
    points += [(f"method/{name}", step, value) for name, series in history.get("logs", {}).items() for step, value in series]
    points += [  # the runner's anytime test curve, by step (its oracle calls are in the record)
        (f"anytime_test/{metric_key(name)}", point["step"], value)
        for point in record.get("anytime") or []
        for name, value in point["metrics"].items()
    ]
    loss = history.get("loss", [])
    window = max(1, -(-len(loss) // max_loss_points))
    for start in range(0, len(loss), window):
        chunk = loss[start : start + window]
        points.append(("train/loss", start + len(chunk), sum(chunk) / len(chunk)))
    return points
