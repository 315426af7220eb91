"""What a suite's runs carry in MLflow: the tags that mark cells and their logging, metric keys, a record's
digest, and the runs-page view (`runs_view`: one row per cell, the target metric's test value as
`target_test` beside task, method and seed) that `metricbench ui` links to."""

from __future__ import annotations

import json

from metricbench.bench.core.files import key_digest

KIND_TAG = "metricbench.kind"
DIGEST_TAG = "metricbench.record_digest"  # which record a cell's run holds; set once it is completely logged
SUPERSEDED_TAG = "metricbench.superseded_by"  # on a cell's earlier runs: the run that replaced it
INVOCATION_TAG = "metricbench.invocation"  # on a cell's run: the run of the invocation that logged it
TARGET_TEST = "target_test"  # on a cell's run: its target metric's test value (one column for every task and target)
RUNS_VIEW_ID = "metricbench-cells"  # the runs-page view stored on each suite's experiment
# MLflow 3's UI reads a view of the runs page from this experiment tag when the page's URL holds
# viewStateShareKey=<id> (and lists it under "Views"); the tag's value is {name, createdAt, state: JSON}
_VIEW_TAG_PREFIX = "mlflow.sharedViewState."


def record_digest(record: dict) -> str:
    """The digest of a cell's result (the record without what logging adds to it)."""
    return key_digest({k: v for k, v in record.items() if k not in ("mlflow_run_id", "checksum")})


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


def metric_key(metric: str) -> str:
    """A metric's name as an MLflow key: MLflow refuses "@" (recall@1 is logged as recall_at_1)."""
    return metric.replace("@", "_at_")
