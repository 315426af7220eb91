"""`metricbench ui`: bad input, the server `mlflow server` would start, what it serves, and a clean stop.

The page itself, in a browser, is tests/test_browser.py's.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import urllib.parse
import urllib.request

import pytest
from helpers.ui_process import UiProcess, alive, descendants
from metricbench.bench.cli import main
from metricbench.bench.track import ui
from metricbench.bench.track.schema import RUNS_VIEW_ID, cell_run_name, runs_view, runs_view_tag
from metricbench.bench.track.uri import ui_hint


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "say where the results are: --out DIR"),
        (["--out", "{tmp}", "--port", "0"], "no MLflow store at {tmp}/mlflow.db"),  # port 0: whatever holds 5000
        (["--tracking-uri", "file:///{tmp}/mlruns", "--port", "0"], "MLflow's file store"),
        (["--port", "five"], "--port must be an integer"),
        (["--out", "{tmp}", "--port", "6000"], "browsers refuse to open port 6000"),
        (["--out", "{tmp}", "--tracking-uri", "sqlite:///x.db"], "--tracking-uri cannot be used with --out"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    assert main(["ui", *(arg.format(tmp=tmp_path) for arg in args)]) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and err.count("\n") == 1
    assert not (tmp_path / "mlflow.db").exists()  # nothing created


def test_an_unknown_suite_or_a_busy_port_is_bad_input(smoke_run, capsys):
    out, _ = smoke_run
    assert main(["ui", "--out", str(out), "--suite", "smok"]) == 2
    assert "no suite 'smok' in the store at" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--out", str(out), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is in use" in err and err.count("\n") == 1
    assert main(["ui", "--out", str(out), "--port", "70000"]) == 2
    assert "--port must be between 1 and 65535" in capsys.readouterr().err


def test_the_server_is_the_one_mlflow_server_would_start_with_one_worker_and_no_jobs(tmp_path, monkeypatch):
    """`ui` starts uvicorn itself with MLflow's private environment names: if an MLflow release changes
    what `mlflow server` starts, this fails (instead of a server that silently opens another store)."""
    import mlflow.server

    started = []

    class Finished:
        pid, returncode = 0, 0

        def wait(self):
            return 0

        def poll(self):
            return 0

    def record(cmd, extra_env=None, **kwargs):
        started.append((cmd, extra_env))
        return Finished()

    monkeypatch.setattr(mlflow.server, "_exec_cmd", record)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # it forwards signals to its child
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    uri, root = f"sqlite:///{tmp_path / 'mlflow.db'}", (tmp_path / "mlartifacts").as_uri()
    mlflow.server._run_server(
        file_store_path=uri,
        registry_store_uri=uri,
        default_artifact_root=root,
        serve_artifacts=False,
        artifacts_only=False,
        artifacts_destination=None,
        host="127.0.0.1",
        port=5123,
        workers=1,
    )
    ((command, environment),) = started  # the server only: no job runner
    ours = ui.server_environment(uri, root)
    assert {k: v for k, v in environment.items() if k != "_MLFLOW_SERVER_BOOT_ID"}.items() <= ours.items()
    assert ours["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false" and ours["_MLFLOW_SERVER_BOOT_ID"]

    def essentials(cmd):  # the same but for logging and the shutdown timeout
        dropped, flags, skip = {"--log-config", "--log-level", "--timeout-graceful-shutdown"}, {"--no-access-log"}, False
        kept = []
        for word in cmd:
            if skip or word in flags:
                skip = False
                continue
            if word in dropped:
                skip = True
                continue
            kept.append(word)
        return kept

    assert essentials(command) == essentials(ui.server_command(5123))
    assert ui.server_command(5123)[-3:] == ["--workers", "1", "mlflow.server.fastapi_app:app"]


def test_run_points_at_the_ui_command():
    assert (
        ui_hint("sqlite:////data/runs/quick/mlflow.db", "1")
        == "browse the cells in MLflow's UI with: metricbench ui --out /data/runs/quick"
    )
    assert ui_hint("sqlite:////data/store.db", "1").endswith("metricbench ui --tracking-uri sqlite:////data/store.db")
    assert (
        ui_hint("http://mlflow.lab:5000", "7")
        == f"open http://mlflow.lab:5000/#/experiments/7/runs?workflowType=machine_learning&viewStateShareKey={RUNS_VIEW_ID}"
    )


def _search_runs(server: str, experiment_id: str, filter_string: str) -> list[dict]:
    body = json.dumps({"experiment_ids": [experiment_id], "filter": filter_string, "max_results": 1000}).encode()
    request = urllib.request.Request(
        f"{server}/api/2.0/mlflow/runs/search", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read()).get("runs", [])


def _artifact(server: str, run_id: str, path: str) -> bytes:
    query = urllib.parse.urlencode({"path": path, "run_uuid": run_id})
    with urllib.request.urlopen(f"{server}/get-artifact?{query}", timeout=30) as reply:
        return reply.read()


def test_ui_serves_one_run_per_cell_with_its_artifacts_and_sigterm_stops_everything(smoke_run, capsys):
    out, _ = smoke_run
    records = [json.loads(path.read_text()) for path in sorted((out / "cells").glob("*.json"))]
    app = UiProcess("--out", str(out), "--port", "0")
    try:
        match = re.fullmatch(
            rf"(http://127\.0\.0\.1:\d+)/#/experiments/(\d+)/runs\?workflowType=machine_learning&viewStateShareKey={RUNS_VIEW_ID}",
            app.link,
        )
        assert match and len(app.stdout) == 1, app.stdout  # one line: the link
        experiment_id = match.group(2)
        tags = {t["key"]: t["value"] for t in app.api(f"experiments/get?experiment_id={experiment_id}")["experiment"]["tags"]}
        key, value = runs_view_tag()
        assert tags[key] == value  # the view the link names is on the experiment
        runs = _search_runs(app.server, experiment_id, runs_view()["searchFilter"])
        assert sorted(run["info"]["run_name"] for run in runs) == sorted(cell_run_name(r) for r in records)
        by_cell = {next(t["value"] for t in run["data"]["tags"] if t["key"] == "cell_id"): run for run in runs}
        for record in records:
            run = by_cell[record["cell_id"]]
            metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
            assert metrics["target_test"] == record["metrics"][record["target_metric"]]
            # the artifacts are served from the experiment's file:// location
            assert _artifact(app.server, run["info"]["run_id"], "curves.png").startswith(b"\x89PNG\r\n\x1a\n")
            logged = json.loads(_artifact(app.server, run["info"]["run_id"], f"{record['cell_id']}.json"))
            assert logged["cell_id"] == record["cell_id"]

        # a tracking server is its own UI: `ui` only prints the link to it
        assert main(["ui", "--tracking-uri", app.server]) == 0
        assert (
            capsys.readouterr().out.strip()
            == f"{app.server}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={RUNS_VIEW_ID}"
        )

        server = descendants(app.process.pid)
        assert len(server) == 1, server  # one process: no worker pool, no job runner
        assert app.stop(signal.SIGTERM) == 0
        assert not alive(server | {app.process.pid})
        assert "Traceback" not in "".join(app.stderr)
    finally:
        app.close()
