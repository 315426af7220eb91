"""MLflow tracking: one experiment per suite, a run per invocation and a run per cell.

A cell's run is not nested under its invocation's (MLflow's UI would fold the cells into one row
under an unlabelled "+"): it names the invocation in the `metricbench.invocation` tag instead. Each
suite's experiment carries a view of its runs page (`runs_view`: one row per cell, the target metric's
test value as `target_test` beside task, method and seed) that `metricbench ui` links to.

Everything is logged from the cell's result record after the cell ends, in batches (`log_batch`),
never per step. The tracking URI comes from `--tracking-uri`, else `MLFLOW_TRACKING_URI`, else a
SQLite file in the output folder; MLflow's file store is never used.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from metricbench import bench
from metricbench.bench.core.errors import UsageError
from metricbench.bench.core.faults import pause_point
from metricbench.bench.core.files import ensure_writable_folder, key_digest

KIND_TAG = "metricbench.kind"
DIGEST_TAG = "metricbench.record_digest"  # which record a cell's run holds; set once it is completely logged
SUPERSEDED_TAG = "metricbench.superseded_by"  # on a cell's earlier runs: the run that replaced it
INVOCATION_TAG = "metricbench.invocation"  # on a cell's run: the run of the invocation that logged it
TARGET_TEST = "target_test"  # on a cell's run: its target metric's test value (one column for every task and target)
RUNS_VIEW_ID = "metricbench-cells"  # the runs-page view stored on each suite's experiment
# MLflow 3's UI reads a view of the runs page from this experiment tag when the page's URL holds
# viewStateShareKey=<id> (and lists it under "Views"); the tag's value is {name, createdAt, state: JSON}
_VIEW_TAG_PREFIX = "mlflow.sharedViewState."


def peak_load(record: dict) -> float | None:
    """The higher of the 1-minute load averages at the cell's start and end (None in older records)."""
    load = record.get("load_average") or {}
    values = [load[k] for k in ("start", "end") if k in load]
    return max(values) if values else None


def record_digest(record: dict) -> str:
    """The digest of a cell's result (the record without what logging adds to it)."""
    return key_digest({k: v for k, v in record.items() if k not in ("mlflow_run_id", "checksum")})


def resolve_tracking_uri(cli_uri: str | None, out_dir: str | Path) -> str:
    uri = cli_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(Path(out_dir) / 'mlflow.db').resolve()}"


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def check_tracking_uri(uri: str, must_exist: bool = False) -> None:
    """Fail fast, with one line, on a tracking URI the harness cannot use, creating nothing while checking.

    `must_exist` is for readers (`metricbench table`): opening a SQLite path that holds no store would
    make MLflow create one there.
    """
    import contextlib
    import http.client
    import re
    import sqlite3

    fix = "pass another --tracking-uri"
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", uri)
    scheme = scheme.group(1).lower() if scheme else ""
    if scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as reply:
                reply.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):  # a server that wants credentials is there; they are MLflow's business
                return
            raise UsageError(
                f"{uri} answered HTTP {exc.code} ({exc.reason}) to /health: not an MLflow tracking server; "
                f"start one (mlflow server) or {fix}"
            ) from None
        except ValueError as exc:  # refused before anything is sent (http://[::1, a port that is no number)
            raise UsageError(f"tracking server address {uri} is malformed ({exc}); {fix}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise UsageError(f"tracking server {uri} is unreachable ({reason}); start it or {fix}") from None
        return
    if scheme == "sqlite":
        path = sqlite_path(uri)
        if path is None or uri[len("sqlite:///") :] in ("", ":memory:"):
            raise UsageError(
                f"tracking URI '{uri}' names no SQLite file (an in-memory store keeps nothing); "
                "use sqlite:///PATH/mlflow.db (sqlite:////ABS/PATH/mlflow.db for an absolute path)"
            )
        if path.is_dir():
            raise UsageError(f"tracking URI '{uri}' names a folder; use sqlite:///{path / 'mlflow.db'}")
        missing = f"no MLflow store at {path}; run `metricbench run` first or pass --out/--tracking-uri"
        if path.exists():
            try:
                with open(path, "rb") as handle:
                    header = handle.read(16)
            except OSError as exc:
                raise UsageError(f"the MLflow store '{path}' cannot be read ({exc.strerror}); {fix}") from None
            if not header:
                # SQLite treats an empty file as an empty database: fine to write into, nothing to read
                if must_exist:
                    raise UsageError(missing)
                return
            if header != b"SQLite format 3\x00":
                raise UsageError(
                    f"'{path}' is not an SQLite database, so it cannot be an MLflow store; {fix} "
                    "(sqlite:///PATH/mlflow.db of a `metricbench run`, or a new file)"
                )
            if must_exist:
                try:
                    # read-only: MLflow itself would add its tables to a database that lacks them
                    with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
                        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                except sqlite3.OperationalError:
                    return  # locked by a writer right now: it is a database, and MLflow will wait for it
                except sqlite3.DatabaseError as exc:
                    raise UsageError(f"'{path}' is a damaged SQLite database ({exc}); {fix}") from None
                if "experiments" not in tables:
                    raise UsageError(f"no MLflow store at {path} (an SQLite database without MLflow's tables); {fix}")
            return
        if must_exist:
            raise UsageError(missing)
        message = "cannot write the MLflow store in '{folder}' ({reason}); pass a writable --tracking-uri"
        existing = path.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise UsageError(message.format(folder=path.parent, reason=f"'{existing}' is a file"))
        if existing == path.parent:
            ensure_writable_folder(path.parent, message)  # the folder is there: this only proves a file can be written
        elif not os.access(existing, os.W_OK | os.X_OK):
            # the folders are made when the store is, after every input is checked
            raise UsageError(message.format(folder=path.parent, reason=f"'{existing}' is not writable"))
        return
    if scheme in ("", "file"):
        raise UsageError(
            f"tracking URI '{uri}' is MLflow's file store, which MLflow 3 refuses; use sqlite:///PATH/mlflow.db or http://HOST:PORT"
        )
    # the password of a database URI stays off the screen: name only the scheme
    raise UsageError(
        f"tracking URI scheme '{scheme}' is not supported; use sqlite:///PATH/mlflow.db, or an MLflow tracking server "
        f"at http(s)://HOST:PORT (which can keep its runs in {scheme})"
    )


def runs_view() -> dict:
    """The runs page as a new user needs it: the cells' runs (no invocation, no superseded run), one row
    each by name, with the target metric's test value, the target, task, method and seed as columns
    (MLflow's column ids; widths only apply to the columns `columnOrder` names)."""
    columns = [f"metrics.`{TARGET_TEST}`", "tags.`target_metric`", "tags.`task`", "tags.`method`", "tags.`seed`"]
    widths = [280, 170, 130, 130, 150, 60]
    return {
        "searchFilter": f"tags.`{KIND_TAG}` = 'cell' and tags.`{SUPERSEDED_TAG}` IS NULL",
        "orderByKey": "tags.`mlflow.runName`",
        "orderByAsc": True,
        "selectedColumns": columns,
        "columnOrder": ["attributes.`Run Name`", *columns],
        "columnWidths": dict(zip(["attributes.`Run Name`", *columns], widths, strict=True)),
    }


def runs_view_tag() -> tuple[str, str]:
    """The experiment tag (key, value) holding `runs_view`; the same value every time, so it is written once."""
    state = json.dumps(runs_view(), sort_keys=True)
    return _VIEW_TAG_PREFIX + RUNS_VIEW_ID, json.dumps({"name": "metricbench: one row per cell", "createdAt": 0, "state": state})


def runs_link(server: str, experiment_id: str) -> str:
    """The runs page of an experiment on an MLflow server, in the model-training layout, with `runs_view`."""
    query = f"workflowType=machine_learning&viewStateShareKey={RUNS_VIEW_ID}"
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def cell_run_name(record: dict) -> str:
    """Short enough for the runs table's name column to show the seed: `digits surrogate seed0`, and
    `digits surrogate→aucpr seed0` for a target other than the task's first metric (as the tables name it)."""
    target = record["target_metric"]
    default = target == (record.get("metric_names") or [target])[0]
    return f"{record['task']} {record['method']}{'' if default else '→' + target} seed{record['seed']}"


def ui_hint(uri: str, experiment_id: str | None) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {runs_link(uri, experiment_id)}" if experiment_id else f"open {uri}"
    db = sqlite_path(uri)
    where = f"--out {db.parent}" if db is not None and db.name == "mlflow.db" else f"--tracking-uri {uri}"
    return f"browse the cells in MLflow's UI with: metricbench ui {where}"


def git_commit() -> str:
    """HEAD's commit, with "+modified" when the code differs from it (the numbers then came from code
    that is in no commit; changed results or notes do not count)."""
    root = Path(bench.__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return "unknown"
        code = ["bench", "methods", "tasks", "pyproject.toml"]
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *code],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return head.stdout.strip() + ("+modified" if changes.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name (numbers computed on the CPU are reproducible bit for bit on the same kind)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_tags(device: str) -> dict[str, str]:
    import mlflow
    import numpy
    import sklearn
    import torch

    return {
        "git_commit": git_commit(),
        "device": device,
        "cpu": cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "metricbench_version": bench.__version__,
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "mlflow_version": mlflow.__version__,
        "numpy_version": numpy.__version__,
        "sklearn_version": sklearn.__version__,
        "host": platform.node(),
    }


def metric_key(metric: str) -> str:
    """A metric's name as an MLflow key: MLflow refuses "@" (recall@1 is logged as recall_at_1)."""
    return metric.replace("@", "_at_")


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
            plot = _curve_plot(record, Path(tmp))
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


def _curve_plot(record: dict, folder: Path) -> Path | None:
    history = record.get("history") or {}
    curves = record.get("curves") or {}
    if not curves and not history.get("loss"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, curve in curves.items():
        if curve:
            steps, values = zip(*curve, strict=True)
            axes[0].plot(steps, values, marker="o", ms=3, label=f"{name} ({record['directions'].get(name, '')} is better)")
    axes[0].set(title="val metrics (uncounted)", xlabel="step")
    axes[0].legend(fontsize=7)
    if history.get("loss"):
        axes[1].plot(range(1, len(history["loss"]) + 1), history["loss"], lw=0.8)
    axes[1].set(title="train loss", xlabel="step")
    fig.suptitle(
        f"{record['task']} / target {record['target_metric']} / {record['method']} / seed {record['seed']} ({record['status']})",
        fontsize=9,
    )
    # fixed margins: tight_layout measured every text and doubled the cost of a plot drawn once per cell
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.82, wspace=0.2)
    path = folder / "curves.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
