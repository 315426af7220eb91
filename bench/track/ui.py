"""`metricbench ui`: MLflow's UI over a suite's store, opened on its cells, and stopped with everything it started.

`mlflow ui` starts uvicorn with 4 workers and, over a SQL store, MLflow's job runner (a huey consumer and
its workers): about 2.5 GB and 40 s to start on two cores, and Ctrl-C leaves job processes running.
This starts what `mlflow server --workers 1` starts with `MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`
(MLflow 3's switch for the job runner): uvicorn serving MLflow's app in one process, and nothing else.
It starts it directly, because the `mlflow server` command itself would stay alive beside it as large
as the server (about 200 MB). `tests/test_ui.py` checks the command and environment against what
`mlflow server` would use, so an MLflow upgrade that changes them fails a test rather than the UI.

The server runs in a session of its own, bound to 127.0.0.1; Ctrl-C (SIGINT) or SIGTERM ends the whole
session (SIGTERM, then SIGKILL after a timeout) and the command exits 0. The link it prints opens the
suite's runs page with the view that `metricbench run` stores on the experiment (one row per cell,
see `tracking.runs_view`); `ui` stores that view too, for stores logged before it existed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from metricbench.bench.core.errors import UsageError
from metricbench.bench.track.schema import runs_link, runs_view, runs_view_tag
from metricbench.bench.track.uri import check_tracking_uri, sqlite_path

HOST = "127.0.0.1"
START_TIMEOUT = 180  # seconds for the server to answer /health (about 3 s on an idle 2-core VM)
STOP_TIMEOUT = 10  # seconds between SIGTERM and SIGKILL
APP = "mlflow.server.fastapi_app:app"  # what `mlflow server` serves with uvicorn
# ports browsers refuse to open (the Fetch standard's "bad ports"; Chromium: ERR_UNSAFE_PORT)
BAD_PORTS = {1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110}
BAD_PORTS |= {111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531}
BAD_PORTS |= {532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190}
BAD_PORTS |= {5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080}


class _Stop(Exception):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt."""


def store_uri(out: str | None, tracking_uri: str | None) -> str:
    if out:
        return f"sqlite:///{(Path(out) / 'mlflow.db').resolve()}"
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise UsageError("say where the results are: --out DIR (a `metricbench run` folder) or --tracking-uri URI")
    db = sqlite_path(uri)
    if db is not None and uri[len("sqlite:///") :] not in ("", ":memory:"):
        return f"sqlite:///{db.resolve()}"  # the server runs in another folder: a relative path would move
    return uri


def choose_experiment(experiments: dict[str, str], suite: str | None, uri: str) -> tuple[str, str]:
    """(id, name) of the suite's experiment among {id: name}, as `metricbench table` chooses."""
    experiments = {eid: name for eid, name in experiments.items() if name != "Default"}
    held = ", ".join(sorted(experiments.values())) or "(none)"
    if suite is None:
        if len(experiments) != 1:
            raise UsageError(f"the store at {uri} holds {len(experiments)} suites ({held}); choose one with --suite NAME")
        return next(iter(experiments.items()))
    for eid, name in experiments.items():
        if name == suite:
            return eid, name
    raise UsageError(f"no suite '{suite}' in the store at {uri}; it holds: {held}")


def _sqlite_experiments(db: Path) -> dict[str, str]:
    """{id: name} of the active experiments, read without MLflow (fast, and it creates nothing)."""
    query = "SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'"
    for _ in range(50):  # a writer (a `metricbench run` logging) may hold the lock for a moment
        try:
            with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as conn:
                return {str(eid): name for eid, name in conn.execute(query)}
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise UsageError(f"cannot read the MLflow store {db} ({exc})") from None
            time.sleep(0.2)
    raise UsageError(f"the MLflow store {db} stayed locked by another process; try again")


def check_port(port: int) -> int:
    """The port to serve on (0: any free one), after proving it can be listened on."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 1 and 65535 (or 0: any free port), got {port}")
    if port in BAD_PORTS:
        raise UsageError(
            f"browsers refuse to open port {port} (an unsafe port, e.g. for mail or SIP); choose another with --port N"
        )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {HOST} is in use (another UI?); choose another with --port N") from None
            raise UsageError(f"cannot listen on {HOST}:{port} ({exc.strerror}); choose another port with --port N") from None
        return probe.getsockname()[1]


def server_command(port: int) -> list[str]:
    """uvicorn serving MLflow's app as `mlflow server --workers 1` does, quiet but for warnings."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--log-level",
        "warning",
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "3",  # an open browser tab must not hold the server up
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        APP,
    ]


def server_environment(uri: str, artifact_root: str | None) -> dict[str, str]:
    """What `mlflow server --backend-store-uri URI --workers 1 --no-serve-artifacts` puts in its server's
    environment (MLflow's private names), with the job runner off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_MLFLOW_SERVER_", "_MLFLOW_STATIC_PREFIX"))}
    env.update(
        {
            "_MLFLOW_SERVER_FILE_STORE": uri,
            "_MLFLOW_SERVER_REGISTRY_STORE": uri,
            "_MLFLOW_SERVER_BOOT_ID": uuid.uuid4().hex,
            "_MLFLOW_IN_JOB_EXECUTOR": "false",
            "_MLFLOW_SGI_NAME": "uvicorn",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if artifact_root:  # where runs created from the UI would keep files; the cells' runs name their own
        env["_MLFLOW_SERVER_ARTIFACT_ROOT"] = artifact_root
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # a local viewer reports nothing
    env.setdefault("PYTHONWARNINGS", "ignore")  # starlette's deprecation notices, at every start
    return env


def _end_with_parent() -> None:
    """In the server's process, before uvicorn starts: SIGTERM when this command dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)


class Server:
    """MLflow's server in its own session; its output is held until it answers, then passed to stderr."""

    def __init__(self, uri: str, port: int, artifact_root: str | None):
        self.url = f"http://{HOST}:{port}"
        self._workdir = tempfile.TemporaryDirectory(prefix="metricbench-ui-")  # nothing it writes lands in the user's folder
        self._early: list[str] = []
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            server_command(port),
            env=server_environment(uri, artifact_root),
            cwd=self._workdir.name,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # Ctrl-C at the terminal reaches this command only; it ends the session
            preexec_fn=_end_with_parent if sys.platform.startswith("linux") else None,
        )
        self._reader = threading.Thread(target=self._relay, daemon=True)
        self._reader.start()

    def _relay(self) -> None:
        for line in self.process.stdout:
            if self._ready.is_set():
                sys.stderr.write(line)
                sys.stderr.flush()
            else:
                self._early.append(line)

    def wait_until_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._reader.join(timeout=2)
                raise RuntimeError(
                    f"MLflow's server stopped before answering (exit {self.process.returncode}): {self.last_words()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as reply:
                    if reply.status == 200:
                        self._ready.set()
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"MLflow's server did not answer {self.url}/health within {timeout:.0f} s: {self.last_words()}")

    def last_words(self) -> str:
        lines = [line.strip() for line in self._early if line.strip()]
        return lines[-1] if lines else "no output"

    def stop(self) -> None:
        """SIGTERM to the session, SIGKILL to what is left after STOP_TIMEOUT; then nothing of it runs."""
        group = self.process.pid  # the session's leader: its pid is the group's id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):  # the leader gone, anything it started still in the group
            os.killpg(group, signal.SIGKILL)
        self.process.wait()
        self._reader.join(timeout=2)
        self._workdir.cleanup()


def _api(server: str, path: str, payload: dict | None = None) -> dict:
    request = urllib.request.Request(
        server.rstrip("/") + "/api/2.0/mlflow/" + path,
        data=None if payload is None else json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if payload is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read() or b"{}")


def _link(server: str, experiment_id: str, expected_name: str | None = None) -> str:
    """The deep link to the suite's runs page; stores the view on the experiment when it is missing or
    different (a store logged before the view existed). Without the view (a server that refuses the
    write) the link filters the cells by itself, with MLflow's default columns."""
    found = _api(server, "experiments/get?" + urllib.parse.urlencode({"experiment_id": experiment_id}))["experiment"]
    if expected_name is not None and found.get("name") != expected_name:
        raise RuntimeError(
            f"the MLflow server at {server} does not serve the store it was given (experiment {experiment_id} is "
            f"{found.get('name')!r}, not {expected_name!r}); this MLflow version may start its server differently"
        )
    key, value = runs_view_tag()
    if {tag["key"]: tag["value"] for tag in found.get("tags", [])}.get(key) != value:
        try:
            _api(server, "experiments/set-experiment-tag", {"experiment_id": experiment_id, "key": key, "value": value})
        except (urllib.error.URLError, OSError):
            cells = {"workflowType": "machine_learning", "searchFilter": runs_view()["searchFilter"]}
            query = urllib.parse.urlencode(cells, quote_via=urllib.parse.quote)
            return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"
    return runs_link(server, experiment_id)


def _on_sigterm(signum, frame):
    raise _Stop


def serve(out: str | None, tracking_uri: str | None, port: int, suite: str | None) -> int:
    """The `ui` command: print the link, serve until Ctrl-C or SIGTERM, stop everything, exit 0."""
    uri = store_uri(out, tracking_uri)
    if uri.startswith(("http://", "https://")):
        check_tracking_uri(uri)
        try:
            search = _api(uri, "experiments/search?max_results=1000").get("experiments", [])
            experiment_id, _ = choose_experiment({e["experiment_id"]: e["name"] for e in search}, suite, uri)
            link = _link(uri, experiment_id)
        except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:  # e.g. a server that wants a login
            print(f"metricbench: error: cannot read the experiments of {uri} ({exc})", file=sys.stderr)
            return 1
        print(f"metricbench: {uri} is an MLflow server: its UI is there already, nothing started", file=sys.stderr)
        print(link, flush=True)
        return 0
    port = check_port(port)
    check_tracking_uri(uri, must_exist=True)  # a SQLite file holding MLflow's tables: nothing gets created
    db = sqlite_path(uri)
    experiment_id, name = choose_experiment(_sqlite_experiments(db), suite, uri)
    # both stop it, even where SIGINT came in ignored (a job started in the background by a script)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler), signal.signal(signal.SIGTERM, _on_sigterm)
    server = None
    try:
        server = Server(uri, port, (db.parent / "mlartifacts").as_uri())
        server.wait_until_ready()
        link = _link(server.url, experiment_id, name)
        print(link, flush=True)
        print(f"metricbench: MLflow's UI of suite '{name}' from {db} (one process); Ctrl-C stops it", file=sys.stderr)
        server.process.wait()
        print(f"metricbench: error: MLflow's server stopped by itself (exit {server.process.returncode})", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Stop):
        return 0
    except (RuntimeError, urllib.error.URLError, OSError, KeyError, ValueError) as exc:
        print(f"metricbench: error: {exc}", file=sys.stderr)
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the stopping short
            signal.signal(signum, signal.SIG_IGN)
        try:
            if server is not None:
                server.stop()
        finally:
            for signum, handler in zip((signal.SIGINT, signal.SIGTERM), previous, strict=True):
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
