"""Reading a suite back from an MLflow store: the latest complete run of each cell as a `CellResult`
(for when the output folder with the records is gone)."""

from __future__ import annotations

import json

from metricbench.bench.core.budget import ACCOUNTS
from metricbench.bench.core.errors import UsageError
from metricbench.bench.report.records import SECONDS, CellResult
from metricbench.bench.track.schema import DIGEST_TAG, KIND_TAG, SUPERSEDED_TAG, metric_key


def collect(uri: str, experiment: str | None, cell_ids: set[str] | None = None) -> tuple[list[CellResult], str]:
    """The latest complete run of every cell in the experiment (or of the given cells); and its name."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiments = [e for e in client.search_experiments() if e.name != "Default"]
    held = ", ".join(sorted(e.name for e in experiments)) or "(none)"
    if experiment is None:
        if len(experiments) != 1:
            raise UsageError(f"the store at {uri} holds {len(experiments)} suites ({held}); choose one with --suite NAME")
        chosen = experiments[0]
    else:
        chosen = next((e for e in experiments if e.name == experiment), None)
        if chosen is None:
            raise UsageError(f"no suite '{experiment}' in the store at {uri}; it holds: {held}")
    results, seen, token = [], set(), None
    while True:
        page = client.search_runs(
            [chosen.experiment_id],
            filter_string=f"tags.`{KIND_TAG}` = 'cell'",
            order_by=["attributes.start_time DESC"],
            max_results=1000,
            page_token=token,
        )
        for run in page:
            tags = run.data.tags
            cell_id = tags.get("cell_id")
            if cell_id in seen or (cell_ids is not None and cell_id not in cell_ids):
                continue
            if SUPERSEDED_TAG in tags or DIGEST_TAG not in tags:
                continue  # replaced by a later run of the cell, or its logging was interrupted
            seen.add(cell_id)
            metrics = run.data.metrics
            directions = json.loads(tags["metric_directions"])
            order = json.loads(tags.get("metric_names", "null")) or list(directions)
            results.append(
                CellResult(
                    task=tags["task"],
                    method=tags["method"],
                    seed=int(tags["seed"]),
                    status=tags["status"],
                    reason=tags.get("failure_reason", ""),
                    metrics=_logged(metrics, "test/", order),
                    pretrained=_logged(metrics, "pretrained_test/", order),
                    directions={m: directions[m] for m in order},
                    target=tags.get("target_metric", ""),
                    spent={a: metrics[f"spent/{a}_calls"] for a in ACCOUNTS if f"spent/{a}_calls" in metrics},
                    stage_id=tags.get("stage_id", ""),
                    notes=json.loads(tags.get("method_notes", "[]")),
                    stage_spent={a: metrics[f"stage/{a}_calls"] for a in ACCOUNTS if f"stage/{a}_calls" in metrics},
                    task_config=_params(run.data.params, ("task.", "budget.")),
                    method_config=_params(run.data.params, ("method.",)),
                    cell_id=cell_id,
                    suite=chosen.name,
                    device=tags.get("device", ""),
                    spent_examples={a: metrics[f"spent/{a}_examples"] for a in ACCOUNTS if f"spent/{a}_examples" in metrics},
                    steps_taken=int(metrics["spent/optimizer_steps"]) if "spent/optimizer_steps" in metrics else None,
                    seconds={k: metrics[k] for k in SECONDS if k in metrics},
                    stage_seconds=metrics.get("stage/seconds"),
                    load_average=metrics.get("load_average"),
                    stage_spent_examples={
                        a: metrics[f"stage/{a}_examples"] for a in ACCOUNTS if f"stage/{a}_examples" in metrics
                    },
                )
            )
        token = page.token
        if not token:
            break
    if not results:
        raise UsageError(f"suite '{chosen.name}' in {uri} has no finished cells yet; run `metricbench run` first")
    return results, chosen.name


def _params(params: dict[str, str], prefixes: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in sorted(params.items()) if k.startswith(prefixes)}


def _logged(metrics: dict[str, float], prefix: str, order: list[str]) -> dict[str, float]:
    """The logged values of `prefix` + each metric, by metric name (MLflow keys spell "@" as "_at_")."""
    return {m: metrics[prefix + metric_key(m)] for m in order if prefix + metric_key(m) in metrics}
