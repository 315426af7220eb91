"""Check that the guard tests of `tests/test_guards.py` kill the mutations they were written against.

    python tests/mutation_check.py          # apply each mutation to a copy of the repository, run its tests
    python tests/mutation_check.py --list   # only check that every original snippet occurs exactly once

Each mutation is (file, the exact original snippet, its replacement, the pytest node ids that must
fail). The working tree is never touched: `bench/ methods/ tasks/ tests/ pyproject.toml` are copied
into a temporary folder, with a `metricbench/` package there whose `bench`, `methods` and `tasks` are
links to the copies; that folder goes first on PYTHONPATH, so `metricbench.bench` is the copy's (checked
before anything runs: the editable install's finder comes after the path on `sys.meta_path`). The named
tests must pass on the unmutated copy first; then each mutation is applied alone, its tests run, and the
file restored. The exit status is 1 when a snippet is missing or not unique (code moved by a refactor:
update the table), when the unmutated copy fails, or when a mutation survives.

Not collected by pytest (its name does not start with `test_`); standard library only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
COPIED = ("bench", "methods", "tasks", "tests", "pyproject.toml")
PACKAGES = ("bench", "methods", "tasks")  # installed as metricbench.bench, metricbench.methods, metricbench.tasks
GUARDS = "tests/test_guards.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]


def _node(name: str) -> str:
    return f"{GUARDS}::{name}"


MUTATIONS = (
    Mutation(
        "1 atomic write: straight into the final path",
        "bench/core/files.py",
        """    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
""",
        """    with open(path, "wb") as handle:
        write(handle)
""",
        (_node("test_a_crash_mid_write_leaves_the_old_file_whole_and_no_temporary_file"),),
    ),
    Mutation(
        "2 end-of-cell check: one trailing unreported step passes",
        "bench/run/metering.py",
        """        if self.optimizer_steps > self.reported_steps:
            self.raise_unreported()
""",
        """        if self.optimizer_steps > self.reported_steps + 1:
            self.raise_unreported()
""",
        (
            _node("test_a_single_trailing_unreported_step_fails_the_check_at_the_end"),
            _node("test_a_method_whose_only_step_is_unreported_fails_its_cell"),
        ),
    ),
    Mutation(
        "3 the model's optimizer: ALL its parameters, not ANY",
        "bench/run/metering.py",
        """        if any(id(p) in self._model_params for p in params):
            return True
        # the model may have gained parameters (adapters attached during finetuning): look again. The
        # cache holds the parameters themselves, so an id in it cannot be reused by another tensor
        self._model_params = {id(p): p for p in self.model.parameters()}
        return any(id(p) in self._model_params for p in params)
""",
        """        if all(id(p) in self._model_params for p in params):
            return True
        # the model may have gained parameters (adapters attached during finetuning): look again. The
        # cache holds the parameters themselves, so an id in it cannot be reused by another tensor
        self._model_params = {id(p): p for p in self.model.parameters()}
        return all(id(p) in self._model_params for p in params)
""",
        (
            _node("test_an_optimizer_over_model_and_other_parameters_counts_as_the_models"),
            _node("test_steps_of_a_mixed_optimizer_are_charged_to_the_cells_budget"),
        ),
    ),
    Mutation(
        "4 test curve: evaluation time not accumulated",
        "bench/run/anytime.py",
        """            self.seconds += time.perf_counter() - started
""",
        """            self.seconds = time.perf_counter() - started
""",
        (
            _node("test_the_test_curve_accumulates_the_time_of_every_evaluation"),
            _node("test_the_runners_test_curve_time_is_recorded_apart_and_not_charged_to_the_method"),
        ),
    ),
    Mutation(
        "5 evaluation leaves the model in train mode",
        "tasks/kinds/base.py",
        """        finally:
            model.train(was_training)
        return self.collate(predictions), self.collate(targets)
""",
        """        finally:
            model.train()
        return self.collate(predictions), self.collate(targets)
""",
        (
            _node("test_evaluation_and_oracle_queries_give_the_model_back_in_its_mode[train-mode]"),
            _node("test_evaluation_and_oracle_queries_give_the_model_back_in_its_mode[eval-mode]"),
        ),
    ),
    Mutation(
        "6 tables: verdict and bold from the raw p-value",
        "bench/report/tables.py",
        """        if adjusted < ALPHA and entry.difference != 0:
""",
        """        if entry.p < ALPHA and entry.difference != 0:
""",
        (_node("test_a_raw_p_below_alpha_is_not_marked_or_bold_when_holms_adjusted_p_is_not"),),
    ),
    Mutation(
        "7 stage identity without the target metric",
        "bench/run/stages.py",
        """        "target": cell.target,
        "seed": cell.seed,
""",
        """        "seed": cell.seed,
""",
        (
            _node("test_the_stage_identity_holds_the_target_metric"),
            _node("test_a_stage_built_for_one_target_is_not_reused_for_another"),
        ),
    ),
    Mutation(
        "8 stage handed the cell's own model",
        "bench/run/stages.py",
        """            return StageSource(name, copy.deepcopy(model), view,""",
        """            return StageSource(name, model, view,""",
        (
            _node("test_a_stage_works_on_a_copy_and_leaves_the_cells_model_untouched"),
            _node("test_a_cell_with_a_perturbing_stage_starts_from_the_shared_checkpoint"),
        ),
    ),
    Mutation(
        "9 record without a checksum accepted",
        "bench/run/cell.py",
        """        problem = None if record.get("checksum") == _checksum(record) else "its checksum does not match"
""",
        """        problem = None if record.get("checksum") in (None, _checksum(record)) else "its checksum does not match"
""",
        (_node("test_a_record_without_a_checksum_is_not_verified_and_is_moved_aside"),),
    ),
)


def snippet_problems(root: Path) -> list[str]:
    """One line per mutation whose original snippet does not occur exactly once in its file under `root`,
    or whose tests are not in the guard tests."""
    problems = []
    for mutation in MUTATIONS:
        path = root / mutation.file
        count = path.read_text().count(mutation.original) if path.is_file() else 0
        if count != 1:
            problems.append(f"{mutation.name}: the original snippet occurs {count} times in {mutation.file} (expected once)")
        guards = (root / GUARDS).read_text() if (root / GUARDS).is_file() else ""
        for node in mutation.tests:  # a renamed test would make pytest exit 4, not kill the mutation
            function = node.split("::")[1].split("[")[0]
            if f"def {function}(" not in guards:
                problems.append(f"{mutation.name}: no test {function} in {GUARDS}")
    return problems


def make_copy(folder: Path) -> None:
    """The repository's code and tests in `folder`, importable as `metricbench.*` from there."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPIED:
        source = REPOSITORY / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=ignore, symlinks=True)
        else:
            shutil.copy2(source, folder / name)
    package = folder / "metricbench"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in PACKAGES:
        (package / name).symlink_to(folder / name, target_is_directory=True)


def environment(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), *filter(None, [env.get("PYTHONPATH")])])
    # a mutated file may keep its size and mtime second: a stale .pyc must never stand in for it
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def check_imports(folder: Path, env: dict[str, str]) -> str | None:
    """None when every `metricbench.<package>` a subprocess imports lives in the copy; else what it found."""
    code = "import metricbench.bench, metricbench.methods, metricbench.tasks\n" + "".join(
        f"print(metricbench.{name}.__file__)\n" for name in PACKAGES
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return done.stderr.strip()[-2000:]
    files = [Path(line) for line in done.stdout.split()]
    outside = [str(f) for f in files if not f.resolve().is_relative_to(folder.resolve())]
    if len(files) != len(PACKAGES) or outside:
        return f"imported from outside the copy: {outside or done.stdout}"
    return None


def run_tests(folder: Path, env: dict[str, str], tests) -> tuple[int, str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *tests, "-q", "-x", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - started


def print_table(rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * width for width in widths))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="only check that every original snippet occurs exactly once")
    args = parser.parse_args(argv)

    problems = snippet_problems(REPOSITORY)
    if args.list:
        for mutation in MUTATIONS:
            print(f"{mutation.name}  ({mutation.file}; {len(mutation.tests)} test(s))")
    for problem in problems:
        print(f"mutation_check: {problem}", file=sys.stderr)
    if problems:
        return 1
    if args.list:
        print(f"all {len(MUTATIONS)} snippets found exactly once")
        return 0

    with tempfile.TemporaryDirectory(prefix="metricbench-mutations-") as temporary:
        folder = Path(temporary)
        make_copy(folder)
        env = environment(folder)
        wrong = check_imports(folder, env)
        if wrong:
            print(f"mutation_check: the copy's packages are not the ones imported: {wrong}", file=sys.stderr)
            return 1
        print(f"copy in {folder}: metricbench.bench, .methods, .tasks import from it")
        every_test = list(dict.fromkeys(t for m in MUTATIONS for t in m.tests))
        code, output, seconds = run_tests(folder, env, every_test)
        if code != 0:
            print(output[-6000:])
            print(f"mutation_check: the guard tests fail on the unmutated copy (pytest exit {code})", file=sys.stderr)
            return 1
        print(f"unmutated copy: {len(every_test)} tests pass ({seconds:.1f} s)\n")

        rows = [("mutation", "killed", "pytest")]
        killed = 0
        for mutation in MUTATIONS:
            path = folder / mutation.file
            original = path.read_text()
            path.write_text(original.replace(mutation.original, mutation.replacement, 1))
            try:
                code, output, seconds = run_tests(folder, env, mutation.tests)
            finally:
                path.write_text(original)
            # exit 1 is "tests failed"; anything else (2: interrupted or a collection error, 4: usage, 5: no
            # tests collected) means the named tests did not run as meant, which kills nothing
            if code == 1:
                killed += 1
                verdict = "yes"
            else:
                verdict = "NO" if code == 0 else f"NO (pytest exit {code})"
                print(f"--- {mutation.name}: survived; pytest output:\n{output[-3000:]}")
            rows.append((mutation.name, verdict, f"exit {code}, {seconds:.1f} s"))
        print_table(rows)
        print(f"\nkill rate: {killed}/{len(MUTATIONS)} ({100 * killed / len(MUTATIONS):.0f}%)")
        return 0 if killed == len(MUTATIONS) else 1


if __name__ == "__main__":
    sys.exit(main())
