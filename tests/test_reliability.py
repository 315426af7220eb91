"""Nothing lost, nothing duplicated, nothing silently wrong: reruns after failures, kills at chosen
instants (inside logging, inside a checkpoint write), Ctrl-C, two invocations at once, corrupt records,
methods that exit, and tables that never pool configurations."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from metricbench.bench.report import records, tables
from metricbench.bench.run.cell import read_record, record_path
from metricbench.bench.run.runner import RunSettings, run_suite
from metricbench.bench.run.suite import load_suite
from metricbench.bench.track.collect import collect
from metricbench.bench.track.schema import DIGEST_TAG, KIND_TAG, SUPERSEDED_TAG, record_digest
from metricbench.methods.base import Method


def _suite(tmp_path, methods, tasks=("breast-cancer",), steps=4):
    path = tmp_path / "suite.toml"
    path.write_text(
        f'name = "reliability"\ntasks = {json.dumps(list(tasks))}\nmethods = {json.dumps(methods)}\n'
        f"[budget]\nsteps = {steps}\nqueries = 1\n"
    )
    return load_suite(str(path))


def _child_runs(db: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    (experiment,) = [e for e in client.search_experiments() if e.name != "Default"]
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'cell'", max_results=1000)


def _current_runs(db: Path) -> dict[str, list]:
    """cell id -> its runs that are not superseded."""
    found: dict[str, list] = {}
    for run in _child_runs(db):
        if SUPERSEDED_TAG not in run.data.tags:
            found.setdefault(run.data.tags["cell_id"], []).append(run)
    return found


def _assert_one_complete_run_per_cell(out: Path, cells) -> None:
    current = _current_runs(out / "mlflow.db")
    assert set(current) == {c.cell_id for c in cells}
    for cell in cells:
        (run,) = current[cell.cell_id]
        record = read_record(out, cell)
        assert run.info.status == ("FINISHED" if record["status"] == "ok" else "FAILED")
        assert run.data.tags[DIGEST_TAG] == record_digest(record)
    assert all(r.info.status != "RUNNING" for r in _child_runs(out / "mlflow.db"))


class FailsOnce(Method):
    """Fails while its flag file exists (a bug fixed between two runs)."""

    flag: Path

    def finetune(self, model, task, oracle, ctx):
        if self.flag.exists():
            raise RuntimeError("not fixed yet")
        return ctx.finish()


def test_a_failed_cell_that_succeeds_on_a_rerun_reaches_the_store_and_the_tables(tmp_path, temporary_method, checkpoint_cache):
    FailsOnce.flag = tmp_path / "broken"
    FailsOnce.flag.write_text("")
    temporary_method("test-fails-once", FailsOnce)
    suite = _suite(tmp_path, ["test-fails-once"])
    settings = RunSettings(out_dir=tmp_path / "out", device="cpu", quiet=True, cache_dir=checkpoint_cache)
    assert run_suite(suite, settings).failed == 1
    FailsOnce.flag.unlink()
    summary = run_suite(suite, settings)
    assert (summary.computed, summary.failed) == (1, 0)
    assert "failed" not in (tmp_path / "out" / "table.md").read_text()
    _assert_one_complete_run_per_cell(tmp_path / "out", suite.cells())
    runs = _child_runs(tmp_path / "out" / "mlflow.db")
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]  # the failure is kept, marked superseded
    from_store, _ = collect(f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}", "reliability")
    assert [r.status for r in from_store] == ["ok"]


class ExitsTheProcess(Method):
    def finetune(self, model, task, oracle, ctx):
        sys.exit(3)


class RaisesKeyboardInterrupt(Method):
    def finetune(self, model, task, oracle, ctx):
        raise KeyboardInterrupt


def test_a_method_that_exits_or_raises_keyboard_interrupt_fails_only_its_cell(tmp_path, temporary_method, checkpoint_cache):
    temporary_method("test-exits", ExitsTheProcess)
    temporary_method("test-interrupts", RaisesKeyboardInterrupt)
    suite = _suite(tmp_path, ["test-exits", "test-interrupts", "surrogate"])
    summary = run_suite(suite, RunSettings(out_dir=tmp_path / "out", device="cpu", quiet=True, cache_dir=checkpoint_cache))
    assert (summary.computed, summary.failed) == (3, 2)
    reasons = {c.method: read_record(tmp_path / "out", c)["reason"] for c in suite.cells()}
    assert reasons == {"test-exits": "SystemExit: 3", "test-interrupts": "KeyboardInterrupt", "surrogate": ""}


def test_a_corrupt_record_is_reported_moved_aside_and_the_cell_recomputed_and_logged(tmp_path, checkpoint_cache, capsys):
    suite = _suite(tmp_path, ["surrogate"])
    settings = RunSettings(out_dir=tmp_path / "out", device="cpu", quiet=True, cache_dir=checkpoint_cache)
    run_suite(suite, settings)
    (cell,) = suite.cells()
    path = record_path(tmp_path / "out", cell)
    original = json.loads(path.read_text())
    path.write_text(path.read_text()[:200])  # truncated
    summary = run_suite(suite, settings)
    assert summary.computed == 1
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "is corrupt (it is not valid JSON" in warning[0]
    assert len(list(path.parent.glob("*.corrupt-*"))) == 1
    assert read_record(tmp_path / "out", cell)["metrics"] == original["metrics"]
    _assert_one_complete_run_per_cell(tmp_path / "out", suite.cells())
    # an edited number (valid JSON, wrong checksum) is caught the same way
    edited = json.loads(path.read_text())
    edited["metrics"]["misclassification"] = 0.0
    path.write_text(json.dumps(edited))
    assert read_record(tmp_path / "out", cell) is None
    assert "checksum does not match" in capsys.readouterr().err


def test_two_configurations_are_two_columns_never_pooled(tmp_path, checkpoint_cache):
    out = tmp_path / "out"
    for steps in (2, 3):
        run_suite(
            _suite(tmp_path, ["surrogate"], steps=steps),
            RunSettings(out_dir=out, device="cpu", quiet=True, cache_dir=checkpoint_cache),
        )
    table = tables.build(records.load_records(out))
    tasks = sorted({task for task, _, _ in table.columns})  # labelled by what differs: the budget's accounts
    assert len(tasks) == 2 and "steps=2" in tasks[0] and "steps=3" in tasks[1]
    assert all(len(stat.values) == 1 for stat in table.rows["surrogate"].values())  # one seed each, n=1


# ---- real processes: kills at chosen instants, Ctrl-C, two invocations at once (slow group)


def _run_cli(out: Path, cache: Path, extra_env: dict | None = None, wait=True, quiet=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(extra_env or {})}
    command = [sys.executable, "-m", "metricbench.bench.cli", "run", "smoke", "--out", str(out), "--device", "cpu"]
    command += ["--cache-dir", str(cache), *(["--quiet"] if quiet else [])]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        stdout, stderr = process.communicate(timeout=600)
        return process.returncode, stdout, stderr
    return process


def _stop_at(point: str, out: Path, cache: Path, tmp_path: Path, sig=signal.SIGKILL):
    marker = tmp_path / f"paused-{point}"
    process = _run_cli(out, cache, {"METRICBENCH_PAUSE_AT": point, "METRICBENCH_PAUSE_FILE": str(marker)}, wait=False)
    deadline = time.time() + 300
    while not marker.exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, f"never reached {point}"
        time.sleep(0.1)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def _resume_and_compare(out: Path, cache: Path, table: str) -> None:
    """The same command again: it exits 0, the table equals a clean run's, one complete run per cell."""
    code, _, stderr = _run_cli(out, cache)
    assert code == 0, stderr
    assert (out / "table.md").read_text() == table
    _assert_one_complete_run_per_cell(out, load_suite("smoke").cells())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A clean run's table, and the checkpoint cache the kill tests share."""
    root = tmp_path_factory.mktemp("reference")
    code, _, stderr = _run_cli(root / "out", root / "cache")
    assert code == 0, stderr
    return (root / "out" / "table.md").read_text(), root / "cache"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["checkpoint-files-written", "record-written", "run-created", "run-logged"])
def test_a_kill_at_any_of_these_instants_then_the_same_command_gives_one_run_per_cell_and_the_same_table(
    point, reference, tmp_path
):
    table, shared_cache = reference
    cache = tmp_path / "cache" if point == "checkpoint-files-written" else shared_cache  # a checkpoint must be built
    out = tmp_path / "out"
    code, _ = _stop_at(point, out, cache, tmp_path)
    assert code == -signal.SIGKILL
    _resume_and_compare(out, cache, table)


@pytest.mark.slow
def test_two_invocations_at_once_on_one_new_folder_both_finish_with_one_run_per_cell(reference, tmp_path):
    table, cache = reference
    out = tmp_path / "out"
    first, second = _run_cli(out, cache, wait=False), _run_cli(out, cache, wait=False)
    results = [p.communicate(timeout=600) for p in (first, second)]
    assert (first.returncode, second.returncode) == (0, 0), results
    assert all("Traceback" not in stderr for _, stderr in results)
    assert (out / "table.md").read_text() == table
    _assert_one_complete_run_per_cell(out, load_suite("smoke").cells())
    assert len(_child_runs(out / "mlflow.db")) == len(load_suite("smoke").cells())


# Ctrl-C at 20 instants of one smoke run's life. The runs are chained on one folder: each is stopped by
# a single SIGINT and the next resumes where it stopped, so together they cover a whole smoke run, from
# the CLI's validation through pretraining, stages, finetuning steps, MLflow logging and the tables, for
# the cost of about one smoke run. An instant is a delay after the process started (validation), after
# the line that opens the suite's cells (a fraction of a cell in), after the last cell's line (its
# logging, then the tables), or a named point inside a checkpoint's write or a cell's logging.
CTRL_C_INSTANTS = [
    ("start", 1.0), ("start", 2.5), ("suite", 0.0), ("point", "checkpoint-files-written"), ("suite", 0.3),
    ("suite", 0.6), ("suite", 1.0), ("point", "run-created"), ("suite", 1.5), ("suite", 0.2), ("suite", 2.0),
    ("point", "run-logged"), ("suite", 0.8), ("suite", 1.2), ("point", "record-written"), ("suite", 0.4),
    ("suite", 2.5), ("last cell", 0.0), ("finished", 0.2), ("finished", 1.0),
]  # fmt: skip
INTERRUPTED = "metricbench: interrupted; finished cells are kept and a re-run resumes"
FINISHED = "metricbench: 20 of 20 cells"  # all cells were done before this run: only the tables are left
OPENING = {"suite": ("metricbench: suite smoke:",), "last cell": ("metricbench: cell 20/20 ", FINISHED), "finished": (FINISHED,)}


def _invocations(out: Path) -> list:
    from mlflow.tracking import MlflowClient

    if not (out / "mlflow.db").exists():
        return []
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments() if e.name != "Default"]
    return client.search_runs(experiments, filter_string=f"tags.`{KIND_TAG}` = 'invocation'") if experiments else []


def _interrupt_at(kind: str, when, out: Path, cache: Path, marker: Path) -> tuple[int, list[str]]:
    """Start `metricbench run smoke` (progress lines on: stderr is a pipe), send one SIGINT at the
    instant, return (exit code, stderr lines)."""
    import threading

    pause = {"METRICBENCH_PAUSE_AT": when, "METRICBENCH_PAUSE_FILE": str(marker)} if kind == "point" else {}
    process = _run_cli(out, cache, pause, wait=False, quiet=False)
    lines, seen = [], {}
    started = time.monotonic()

    def read():
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            for opened, openings in OPENING.items():
                if line.startswith(openings):
                    seen.setdefault(opened, time.monotonic())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def due() -> bool:
        if kind == "point":
            return marker.exists()
        if kind == "start":
            return time.monotonic() - started >= when
        return kind in seen and time.monotonic() - seen[kind] >= when

    while not due():
        assert process.poll() is None, f"{kind} {when}: the run ended before its Ctrl-C: {lines[-20:]}"
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    reader.join(timeout=10)
    return process.returncode, lines


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ctrl_c_at_twenty_instants_always_stops_with_one_line_and_130_and_a_rerun_finishes_the_same_table(reference, tmp_path):
    table, _ = reference
    out, cache = tmp_path / "out", tmp_path / "cache"  # an empty cache: the first runs are stopped while pretraining
    for instant, (kind, when) in enumerate(CTRL_C_INSTANTS):
        if when == "checkpoint-files-written":
            shutil.rmtree(cache / "pretrained", ignore_errors=True)  # so that a checkpoint is written now
        code, lines = _interrupt_at(kind, when, out, cache, tmp_path / f"paused-{instant}")
        what = f"instant {instant} ({kind} {when})"
        assert code == 130, f"{what}: exit {code}: {lines[-20:]}"
        assert lines[-1] == INTERRUPTED and lines.count(INTERRUPTED) == 1, f"{what}: {lines[-20:]}"
        assert all(line.startswith("metricbench: ") for line in lines), f"{what}: more than progress lines: {lines[-20:]}"
        assert all(run.info.status == "KILLED" for run in _invocations(out)), what
    _resume_and_compare(out, cache, table)
