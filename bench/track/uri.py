"""Tracking URIs: where a suite's MLflow store is (`--tracking-uri`, else `MLFLOW_TRACKING_URI`, else a
SQLite file in the output folder; MLflow's file store is never used), checked before any work starts."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from metricbench.bench.core.errors import UsageError
from metricbench.bench.core.files import ensure_writable_folder
from metricbench.bench.track.schema import runs_link


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


def ui_hint(uri: str, experiment_id: str | None) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {runs_link(uri, experiment_id)}" if experiment_id else f"open {uri}"
    db = sqlite_path(uri)
    where = f"--out {db.parent}" if db is not None and db.name == "mlflow.db" else f"--tracking-uri {uri}"
    return f"browse the cells in MLflow's UI with: metricbench ui {where}"
