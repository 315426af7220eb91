"""Paper-style comparison tables with paired statistics, built from the results DataFrame.

Each (row, column) entry holds a method's test values over seeds and, seed by seed, its change from
that seed's pretrained checkpoint (every method of a seed starts from the same one). Rows are methods
with their options, marked `→ target` when they optimised a metric other than the task's first; the
shared starting point is the `(pretrained)` row; columns are task (its options and budget) / metric
with the metric's direction. Two configurations of one method or task are two rows or columns,
labelled by what differs, never pooled.

On the metric a row optimised (its target), the row is compared with the baseline method's row of the
same task and target, paired by seed (`metricbench.bench.report.stats`: paired t by default, Wilcoxon's
signed-rank test as an option), and Holm's correction runs over all of the table's comparisons. An
entry is marked better or worse than the baseline only when its Holm-adjusted p-value is below
`ALPHA`; the best entry of a column is bold only when it is significantly better than the baseline
(for the baseline itself: significantly better than every other row) and improved on its start.

Cost (calls and examples per budget account, optimizer steps, wall, method and GPU seconds, and the
runner's own test-curve seconds) is kept in the table too and rendered as a second table
(`metricbench.bench.report.costs`), since seconds differ between runs while the metric table is
reproducible bit for bit. Renderers are in `metricbench.bench.report.render`; the paper's published
numbers, added as rows, in `metricbench.bench.report.published`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from metricbench.bench.core.budget import ACCOUNTS
from metricbench.bench.core.errors import UsageError
from metricbench.bench.report.records import SECONDS, CellResult
from metricbench.bench.report.stats import Interval, holm, interval, p_value

PRETRAINED_ROW = "(pretrained)"
ALPHA = 0.05
LAYOUTS = ("tasks", "methods")
TEST_NAMES = {"t": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test (exact)"}
SIGNS = {"higher": 1.0, "lower": -1.0}


@dataclass
class Entry:
    """One table entry: a row's results in one column."""

    values: list[float]  # test value per finished seed
    changes: list[float]  # per seed: change from the seed's pretrained checkpoint, positive = better
    seeds: list[int]
    failed: int = 0
    published: bool = False  # a reference number from a paper, not a run of ours
    start: bool = False  # the pretrained checkpoint's own entry (no change to show)
    compared: bool = False  # tested against the baseline (the row's target metric)
    difference: float = math.nan  # mean paired difference from the baseline, positive = better
    pairs: int = 0  # seeds paired with the baseline
    p: float = math.nan
    p_holm: float = math.nan
    verdict: int = 0  # +1 significantly better than the baseline, -1 significantly worse
    bold: bool = False

    @property
    def value(self) -> Interval:
        return interval(self.values)

    @property
    def change(self) -> Interval:
        return interval(self.changes)


@dataclass
class Cost:
    """What a row spent per cell in one task: means over its finished seeds (a stage: over its stages)."""

    n: int
    means: dict[str, float]  # `<account>_calls`, `<account>_examples`, optimizer_steps, the seconds


@dataclass
class Table:
    columns: list[tuple[str, str, str]]  # (task label, metric, direction)
    rows: dict[str, dict[tuple[str, str], Entry]]
    failures: list[str] = field(default_factory=list)
    costs: dict[tuple[str, str], Cost] = field(default_factory=dict)  # (row, task label) -> cost
    column_tasks: dict[str, tuple[str, dict]] = field(default_factory=dict)  # task label -> (task name, its config)
    published: dict[str, list[str]] = field(default_factory=dict)  # published row -> its provenance notes
    notes: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)  # (task, row, note) -> seeds that said it
    baseline: str = "surrogate"
    test: str = "t"
    comparisons: int = 0  # the size of Holm's family
    max_seeds: int = 0
    row_methods: dict[str, str] = field(default_factory=dict)  # row -> its method label
    targets: dict[tuple[str, str], str] = field(default_factory=dict)  # (row, task label) -> the metric it optimised

    def by_target(self) -> tuple[list[str], list[tuple[str, str, str]], dict]:
        """The paper's layout: (method labels, the (task, metric, direction) columns some row optimised,
        {(task, metric): {method label: entry}}), each method's entry on a metric from its row that optimised it."""
        methods = ([PRETRAINED_ROW] if PRETRAINED_ROW in self.rows else []) + sorted_unique(self.row_methods.values())
        grid: dict[tuple[str, str], dict[str, Entry]] = {}
        for t, m, _ in self.columns:
            for row, label in self.row_methods.items():
                if self.targets.get((row, t)) == m and (t, m) in self.rows.get(row, {}):
                    grid.setdefault((t, m), {})[label] = self.rows[row][(t, m)]
            if (t, m) in grid and (t, m) in self.rows.get(PRETRAINED_ROW, {}):
                grid[(t, m)][PRETRAINED_ROW] = self.rows[PRETRAINED_ROW][(t, m)]
        for row in self.published:  # a published row is labelled by its source, under the metric it reports
            for (t, m), entry in self.rows[row].items():
                grid.setdefault((t, m), {})[row] = entry
        methods += [row for row in self.published if row not in methods]
        columns = [c for c in self.columns if c[:2] in grid]
        return methods, columns, grid

    def best(self, column: tuple[str, str, str]) -> set[str]:
        """The rows bold in `column` (significantly best; see the module's docstring)."""
        return {row for row, entries in self.rows.items() if entries.get(column[:2]) is not None and entries[column[:2]].bold}


def sorted_unique(values) -> list:
    return list(dict.fromkeys(values))


def build(results_or_frame, baseline: str = "surrogate", test: str = "t") -> Table:
    """The table of a results DataFrame (`metricbench.bench.report.results.frame`) or of a list of `CellResult`s."""
    from metricbench.bench.report import results as results_module

    frame = results_or_frame
    if isinstance(results_or_frame, list):  # CellResults also carry the methods' notes, which the frame does not
        return add_notes(build(results_module.frame(results_or_frame), baseline, test), results_or_frame)
    cells = frame[frame["record"] == "cell"]
    if cells.empty:
        raise UsageError("no finished cells to tabulate; run `metricbench run` first")
    column_tasks = {
        label: (task, json.loads(options))
        for label, task, options in cells[["task_label", "task", "task_options"]].drop_duplicates().itertuples(index=False)
    }
    columns = []
    for task_label in sorted(column_tasks):
        of_task = cells[(cells["task_label"] == task_label) & (cells["split"] == "test")]
        for metric, direction in sorted_unique(zip(of_task["metric"], of_task["direction"], strict=True)):
            columns.append((task_label, metric, direction))
    ordered = cells.sort_values(["method_label", "is_default_target", "target", "seed"], ascending=[True, False, True, True])
    row_names = sorted_unique(ordered["row"])
    table = Table(columns, {PRETRAINED_ROW: {}}, column_tasks=column_tasks, baseline=baseline, test=test)
    pretrained = cells[cells["split"] == "pretrained"].drop_duplicates(["task_label", "seed", "metric"])
    for (task_label, metric), group in pretrained.groupby(["task_label", "metric"], sort=False):
        finite = group[group["value"].notna()].sort_values("seed")
        if len(finite):
            table.rows[PRETRAINED_ROW][(task_label, metric)] = Entry(
                list(finite["value"]), [0.0] * len(finite), list(finite["seed"]), start=True
            )
    if not table.rows[PRETRAINED_ROW]:
        del table.rows[PRETRAINED_ROW]
    tests = cells[cells["split"] == "test"]
    for row, task_label, target in tests[["row", "task_label", "target"]].drop_duplicates().itertuples(index=False):
        table.targets[(row, task_label)] = target
    for row in row_names:
        of_row = tests[tests["row"] == row]
        table.row_methods[row] = of_row["method_label"].iloc[0]
        entries = table.rows.setdefault(row, {})
        for (task_label, metric), group in of_row.groupby(["task_label", "metric"], sort=False):
            group = group.sort_values("seed")
            ok = group[group["status"] == "ok"]
            entries[(task_label, metric)] = Entry(
                list(ok["value"]), list(ok["change"]), list(ok["seed"]), failed=int((group["status"] != "ok").sum())
            )
    _compare(table, tests)
    _costs(table, frame)
    first = cells[cells["split"] == "test"].drop_duplicates("cell_id").sort_values(["task_label", "row", "seed"])
    for r in first.itertuples(index=False):
        if r.status != "ok":
            table.failures.append(f"{r.task_label} / {r.row} / seed {r.seed}: {r.reason or 'failed'}")
    table.max_seeds = max((len(e.values) for entries in table.rows.values() for e in entries.values()), default=0)
    return table


def _compare(table: Table, tests) -> None:
    """Pair every row with the baseline's row of the same task and target on that target, then Holm."""
    is_baseline = (tests["method"] == table.baseline) | (tests["method_label"] == table.baseline)
    baseline_rows = {}  # (task label, target) -> the baseline's row
    for row, task_label, target in tests[is_baseline][["row", "task_label", "target"]].drop_duplicates().itertuples(index=False):
        baseline_rows.setdefault((task_label, target), row)
    compared = []
    for (row, task_label), target in table.targets.items():
        partner = baseline_rows.get((task_label, target))
        entry = table.rows[row].get((task_label, target))
        if partner is None or partner == row or entry is None:
            continue
        base = table.rows[partner][(task_label, target)]
        by_seed = dict(zip(base.seeds, base.values, strict=True))
        direction = next(d for t, m, d in table.columns if (t, m) == (task_label, target))
        differences = [
            SIGNS[direction] * (v - by_seed[s]) for s, v in zip(entry.seeds, entry.values, strict=True) if s in by_seed
        ]
        if not differences:
            continue
        entry.compared, entry.pairs = True, len(differences)
        entry.difference = math.fsum(differences) / len(differences)
        entry.p = p_value(differences, table.test)
        compared.append(entry)
    for entry, adjusted in zip(compared, holm([e.p for e in compared]), strict=True):
        entry.p_holm = adjusted
        if adjusted < ALPHA and entry.difference != 0:
            entry.verdict = 1 if entry.difference > 0 else -1
    table.comparisons = sum(e.p == e.p for e in compared)
    for task_label, metric, direction in table.columns:
        candidates = {
            row: table.rows[row][(task_label, metric)]
            for (row, t), target in table.targets.items()
            if t == task_label and target == metric and table.rows[row].get((task_label, metric)) is not None
            and table.rows[row][(task_label, metric)].values
        }  # fmt: skip
        if len(candidates) < 2:
            continue
        pick = max if direction == "higher" else min
        best_row = pick(candidates, key=lambda row: candidates[row].value.mean)
        best = candidates[best_row]
        improved = best.change.mean > 0
        if best.compared:
            best.bold = best.verdict == 1 and improved
        elif baseline_rows.get((task_label, metric)) == best_row:
            others = [e for row, e in candidates.items() if row != best_row and e.compared]
            best.bold = bool(others) and all(e.verdict == -1 for e in others) and improved


def _costs(table: Table, frame) -> None:
    keys = [*(f"{a}_{unit}" for a in ACCOUNTS for unit in ("calls", "examples")), "optimizer_steps", *SECONDS, "load_average"]
    cells = frame[(frame["record"] == "cell") & (frame["status"] == "ok")].drop_duplicates("cell_id")
    for (row, task_label), group in cells.groupby(["row", "task_label"], sort=True):
        table.costs[(row, task_label)] = Cost(len(group), {k: float(group[k].mean()) for k in keys})
    stages = frame[frame["record"] == "stage"].drop_duplicates(["stage_id", "row"])
    for (row, task_label), group in stages.groupby(["row", "task_label"], sort=True):
        means = {k: float(group[k].mean()) for k in keys if k.endswith(("_calls", "_examples"))}
        means["stage_seconds"] = float(group["stage_seconds"].mean())
        table.costs[(f"{row} (stage)", task_label)] = Cost(len(group), means)


def add_notes(table: Table, results: list[CellResult]) -> Table:
    """What methods said about their runs (`ctx.note`), with the seeds that said it."""
    from metricbench.bench.report.results import _identity

    for r, identity in zip(results, _identity(results), strict=True):
        if r.status == "ok":
            for note in r.notes:
                table.notes.setdefault((identity["task_label"], identity["row"], note), []).append(r.seed)
    return table
