"""Bad input: one line on stderr naming the problem and the fix, exit code 2, and nothing created.

Everything runs in-process through `main` (a subprocess per case would cost a second each).
"""

from __future__ import annotations

import http.server
import socket
import threading
from pathlib import Path

import pytest
from metricbench.bench.cli import main


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    # a relative path in a case (sqlite:///missing/x.db, runs/SUITE) must land where the listing looks
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _listing(folder: Path) -> set[tuple[str, int]]:
    # sizes too: a store "opened" by MLflow grows an existing empty file without adding a name
    return {(str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*")}


def _fails_cleanly(capsys, folder: Path, argv: list[str], *words: str) -> str:
    before = _listing(folder)
    code = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1 and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err and "usage:" not in captured.err
    assert lines[0].startswith("metricbench: error: "), lines[0]
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    assert captured.out == ""
    assert _listing(folder) == before
    return lines[0]


def _refused_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- 1. the command line itself -----------------------------------------------------------------


COMMAND_LINES = [
    (["run", "smoke", "--steps", "abc"], ["--steps must be an integer, got 'abc'"]),
    (["run", "smoke", "--seeds", "1.5"], ["--seeds must be an integer, got '1.5'"]),
    (["run", "smoke", "--stepz", "3"], ["unknown option '--stepz'", "(did you mean '--steps'?)", "metricbench run --help"]),
    (["run", "smoke", "--stepz=3"], ["unknown option '--stepz'", "(did you mean '--steps'?)"]),
    (
        ["list", "tasks", "--optoins"],
        ["unknown option '--optoins'", "(did you mean '--options'?)", "metricbench list --help"],
    ),
    (["run", "smoke", "extra"], ["unexpected argument 'extra'", "metricbench run --help"]),
    (["list", "nonsense"], ["'nonsense'", "tasks, methods or suites"]),
    (["list", "task"], ["'task'", "(did you mean 'tasks'?)"]),
    (["table", "--format", "xml"], ["--format must be", "md, latex, html or csv", "'xml'"]),
    (["run", "smoke", "--threads"], ["--threads needs a value", "metricbench run --help"]),
    (["run", "smoke", "--quiet=yes"], ["--quiet takes no value"]),
    (["run"], ["missing SUITE|FILE", "metricbench run --help"]),
    ([], ["missing command", "run, list, table, report, ui or data", "metricbench --help"]),
    (["--debug"], ["missing command"]),
    (["lst", "tasks"], ["unknown command 'lst'", "(did you mean 'list'?)", "metricbench --help"]),
    (["table", "--out", "x", "--tracking-uri", "sqlite:///y.db"], ["--tracking-uri", "--out", "not both"]),
]


@pytest.mark.parametrize(("argv", "words"), COMMAND_LINES, ids=[" ".join(argv) or "(no arguments)" for argv, _ in COMMAND_LINES])
def test_command_line_errors_are_one_line(capsys, tmp_path, argv, words):
    _fails_cleanly(capsys, tmp_path, argv, *words)


# -- 2. `table` never creates a store ------------------------------------------------------------


def test_table_on_a_missing_relative_sqlite_path_creates_nothing(capsys, tmp_path):
    _fails_cleanly(
        capsys, tmp_path, ["table", "--tracking-uri", "sqlite:///missing/folder/x.db"], "no MLflow store at", "metricbench run"
    )
    assert not (tmp_path / "missing").exists()


def test_table_on_a_missing_absolute_sqlite_path_creates_nothing(capsys, tmp_path):
    db = tmp_path / "x.db"
    _fails_cleanly(capsys, tmp_path, ["table", "--tracking-uri", f"sqlite:///{db}"], f"no MLflow store at {db}", "--out")
    assert not db.exists()


def test_table_from_the_environment_on_a_missing_store_creates_nothing(capsys, tmp_path, monkeypatch):
    db = tmp_path / "env" / "x.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    _fails_cleanly(capsys, tmp_path, ["table"], "no MLflow store at")
    assert not db.parent.exists()


def test_table_on_an_empty_file_does_not_turn_it_into_a_store(capsys, tmp_path):
    (tmp_path / "empty.db").touch()
    _fails_cleanly(capsys, tmp_path, ["table", "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}"], "no MLflow store at")


# -- 3. tracking URIs the harness cannot use ------------------------------------------------------


def test_table_on_a_text_file_is_not_an_sqlite_store(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    _fails_cleanly(
        capsys,
        tmp_path,
        ["table", "--tracking-uri", f"sqlite:///{tmp_path / 'notes.txt'}"],
        "notes.txt",
        "not an SQLite database",
    )


@pytest.mark.parametrize("uri", ["mysql://user:pw@127.0.0.1/mlflow", "postgresql://127.0.0.1/mlflow"])
def test_table_on_an_unsupported_scheme(capsys, tmp_path, uri):
    _fails_cleanly(capsys, tmp_path, ["table", "--tracking-uri", uri], f"'{uri.split(':')[0]}'", "sqlite:///", "http")


def test_table_on_a_malformed_server_address(capsys, tmp_path):
    _fails_cleanly(capsys, tmp_path, ["table", "--tracking-uri", "http://[::1"], "http://[::1", "--tracking-uri")


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_error(404)

    def log_message(self, *args):  # the server shares stderr with the line under test
        pass


def test_table_on_a_server_that_is_not_mlflow(capsys, tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        _fails_cleanly(capsys, tmp_path, ["table", "--tracking-uri", uri], "HTTP 404", "not an MLflow tracking server")
    finally:
        server.shutdown()
        server.server_close()


def test_run_on_an_unsupported_scheme_creates_nothing(capsys, tmp_path):
    _fails_cleanly(
        capsys, tmp_path, ["run", "smoke", "--tracking-uri", "mysql://u:p@127.0.0.1/db", "--out", str(tmp_path / "out")], "mysql"
    )


def test_run_on_a_text_file_as_store_creates_nothing(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    argv = ["run", "smoke", "--tracking-uri", f"sqlite:///{tmp_path / 'notes.txt'}", "--out", str(tmp_path / "out")]
    _fails_cleanly(capsys, tmp_path, argv, "not an SQLite database")


def test_checking_a_new_store_location_creates_no_folder(capsys, tmp_path):
    # the store's folder is valid; the output folder is not (a file is in the way)
    (tmp_path / "a-file").write_text("")
    argv = ["run", "smoke", "--tracking-uri", f"sqlite:///{tmp_path / 'new' / 'dir' / 'm.db'}"]
    _fails_cleanly(capsys, tmp_path, [*argv, "--out", str(tmp_path / "a-file" / "out")], "output folder", "not writable")


def test_a_run_whose_default_store_would_be_unusable_leaves_no_output_folder(capsys, tmp_path):
    # the output folder can be made, but mlflow.db inside it is a text file: the store check must come first
    out = tmp_path / "out"
    out.mkdir()
    (out / "mlflow.db").write_text("not a database\n")
    _fails_cleanly(capsys, tmp_path, ["run", "smoke", "--out", str(out)], "not an SQLite database")


# -- 4. suite files: a misspelt key, table or name suggests the closest (first, when several are close) --

SUITE = 'tasks = ["digits"]\nmethods = ["surrogate"]\n'


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('tasks = ["digits"]\nmetods = "all"\nmethods = "all"\n', ["unknown key 'metods'", "(did you mean 'methods'"]),
        ('tasks = ["digits"]\nmethod = ["surrogate"]\n', ["unknown key 'method'", "(did you mean 'methods'"]),
        (SUITE + "[budget]\nstep = 3\n", ["unknown key 'budget.step'", "(did you mean 'steps'"]),
        (SUITE + "[budget]\neval_evry = 3\n", ["unknown key 'budget.eval_evry'", "(did you mean 'eval_every'"]),
        (SUITE + "[method_option.surrogate]\nlr = 0.1\n", ["unknown key 'method_option'", "(did you mean 'method_options'"]),
        (SUITE + '[target]\ndigits = ["aucpr"]\n', ["unknown key 'target'", "(did you mean 'targets'"]),
        (SUITE + "[method_options.surrogat]\nlr = 0.1\n", ["[method_options.surrogat]", "(did you mean 'surrogate'"]),
        (SUITE + "[task_options.digitz]\nwidth = 8\n", ["[task_options.digitz]", "(did you mean 'digits'"]),
        (SUITE + '[targets]\ndigitz = ["aucpr"]\n', ["task 'digitz'", "(did you mean 'digits'"]),
    ],
    ids=[
        "key",
        "key-singular",
        "budget-key",
        "budget-eval-every",
        "table",
        "targets-table",
        "method-name",
        "task-name",
        "target-task",
    ],
)
def test_misspelt_suite_keys_suggest_the_closest(capsys, tmp_path, text, words):
    (tmp_path / "suite.toml").write_text(text)
    _fails_cleanly(capsys, tmp_path, ["run", str(tmp_path / "suite.toml"), "--out", str(tmp_path / "out")], "suite.toml", *words)


# -- 5. nothing is created before all input is validated ------------------------------------------


def _run_case(tmp_path: Path, case: str) -> tuple[list[str], list[str]]:
    """argv and expected words of a `run` that fails validation after the suite is parsed."""
    suite_file = tmp_path / "suite.toml"
    if case == "unknown option":
        suite_file.write_text(SUITE + "[method_options.surrogate]\nlrr = 0.1\n")
        return ["run", str(suite_file)], ["unknown option 'lrr'", "(did you mean 'lr'?)"]
    if case == "lr abc":
        suite_file.write_text(SUITE + '[method_options.surrogate]\nlr = "abc"\n')
        return ["run", str(suite_file)], ["option 'lr'", "must be float", "'abc'"]
    return {
        "unknown task": (["run", "smoke", "--tasks", "digitz"], ["unknown task 'digitz'", "(did you mean 'digits'?)"]),
        "unknown method": (["run", "smoke", "--methods", "surrogat"], ["unknown method 'surrogat'"]),
        "file uri": (["run", "smoke", "--tracking-uri", f"file://{tmp_path}/mlruns"], ["file store"]),
        "unreachable server": (
            ["run", "smoke", "--tracking-uri", f"http://127.0.0.1:{_refused_port()}"],
            ["unreachable", "--tracking-uri"],
        ),
        "missing data dir": (["run", "smoke", "--data-dir", str(tmp_path / "no-data")], ["--data-dir", "is not a folder"]),
        "device tpu": (["run", "smoke", "--device", "tpu"], ["--device must be auto, cpu or cuda, got 'tpu'"]),
    }[case]


@pytest.mark.parametrize(
    "case",
    [
        "unknown task",
        "unknown method",
        "unknown option",
        "lr abc",
        "file uri",
        "unreachable server",
        "missing data dir",
        "device tpu",
    ],
)
def test_a_run_with_bad_input_leaves_no_output_folder(capsys, tmp_path, case):
    argv, words = _run_case(tmp_path, case)
    _fails_cleanly(capsys, tmp_path, [*argv, "--out", str(tmp_path / "out")], *words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("uri", ["file:///tmp/mlruns", "mysql://u:p@127.0.0.1/db"])
def test_a_bad_tracking_uri_from_the_environment_leaves_no_output_folder(capsys, tmp_path, monkeypatch, uri):
    # run_suite checks $MLFLOW_TRACKING_URI only after it has created the output folder
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    _fails_cleanly(capsys, tmp_path, ["run", "smoke", "--out", str(tmp_path / "out")], "tracking URI")
    assert not (tmp_path / "out").exists()
