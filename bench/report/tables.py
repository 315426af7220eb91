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
runner's own test-curve seconds) is a second table (`costs.*`), since seconds differ between runs
while the metric table is reproducible bit for bit. Renderers: Markdown, LaTeX (booktabs), HTML, CSV;
`layout` "tasks" puts tasks as rows and methods as columns (the paper's), "methods" the reverse.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from metricbench.bench.core.budget import ACCOUNTS
from metricbench.bench.core.errors import UsageError
from metricbench.bench.report.records import SECONDS, CellResult, collect, from_record, labels, load_records  # noqa: F401
from metricbench.bench.report.stats import Interval, holm, interval, p_value

PRETRAINED_ROW = "(pretrained)"
ALPHA = 0.05
LAYOUTS = ("tasks", "methods")
ARROWS = {"lower": "↓", "higher": "↑"}
LATEX_ARROWS = {"lower": r"$\downarrow$", "higher": r"$\uparrow$"}
MARKS = {1: "▲", -1: "▼", 0: ""}
LATEX_MARKS = {1: r"$^{\ast}$", -1: r"$^{\dagger}$", 0: ""}
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
        methods = ([PRETRAINED_ROW] if PRETRAINED_ROW in self.rows else []) + _sorted_unique(self.row_methods.values())
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


def _sorted_unique(values) -> list:
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
        for metric, direction in _sorted_unique(zip(of_task["metric"], of_task["direction"], strict=True)):
            columns.append((task_label, metric, direction))
    ordered = cells.sort_values(["method_label", "is_default_target", "target", "seed"], ascending=[True, False, True, True])
    row_names = _sorted_unique(ordered["row"])
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


def from_results(results: list[CellResult], baseline: str = "surrogate", test: str = "t") -> Table:
    """The table of a list of `CellResult`s, with the methods' notes."""
    return build(results, baseline, test)


# ----------------------------------------------------------------------------- published numbers

PUBLISHED_COLUMNS = ("row", "task", "metric", "value", "reported", "options", "source", "where", "protocol", "provenance")
DEFAULT_PUBLISHED = Path(__file__).resolve().parents[1] / "results" / "published.csv"


@dataclass(frozen=True)
class PublishedNumber:
    """One reference number with its provenance (a row of `results/published.csv`)."""

    row: str
    task: str
    metric: str
    value: float
    reported: str
    options: dict[str, str]
    source: str
    where: str
    protocol: str
    provenance: str

    def applies_to(self, task: str, config: dict) -> bool:
        """Whether this number belongs beside a column of `task` run with `config` (its task options)."""
        if task != self.task:
            return False
        return all(str(json.loads(config.get(f"task.{k}", "null"))) == v for k, v in self.options.items())


def load_published(path: str | Path) -> list[PublishedNumber]:
    """The published numbers in a CSV file (lines starting with # are comments); one line if it is malformed."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise UsageError(
            f"published numbers file '{path}' not found; pass --published FILE (see results/published.csv)"
        ) from None
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise UsageError(f"{path}: no header line; it must start with {','.join(PUBLISHED_COLUMNS)}")
    reader = csv.reader([line for _, line in numbered])
    header = next(reader)
    missing = [c for c in PUBLISHED_COLUMNS if c not in header]
    if missing:
        raise UsageError(
            f"{path}: line {numbered[0][0]}: the header lacks column '{missing[0]}'; columns: {','.join(PUBLISHED_COLUMNS)}"
        )
    numbers = []
    for (number, _), fields in zip(numbered[1:], reader, strict=True):
        if len(fields) != len(header):
            raise UsageError(
                f"{path}: line {number}: {len(fields)} fields, the header has {len(header)} (quote fields with commas)"
            )
        row = dict(zip(header, fields, strict=True))
        try:
            value = float(row["value"])
        except ValueError:
            raise UsageError(f"{path}: line {number}: value {row['value']!r} is not a number") from None
        options = {}
        for item in filter(None, (part.strip() for part in row["options"].split(";"))):
            key, sep, wanted = item.partition("=")
            if not sep:
                raise UsageError(f"{path}: line {number}: options must be key=value pairs separated by ';', got {item!r}")
            options[key.strip()] = wanted.strip()
        numbers.append(PublishedNumber(**{**{c: row[c] for c in PUBLISHED_COLUMNS}, "value": value, "options": options}))
    return numbers


def add_published(table: Table, numbers: list[PublishedNumber]) -> Table:
    """`table` with a row per published source, filled where its numbers belong to a column (task, its
    options, metric); a published row is never bold and carries its provenance under the table."""
    for number in numbers:
        for task_label, metric, _ in table.columns:
            name, config = table.column_tasks.get(task_label, (task_label, {}))
            if metric == number.metric and number.applies_to(name, config):
                table.rows.setdefault(number.row, {})[(task_label, metric)] = Entry([number.value], [], [], published=True)
                note = (
                    f"{number.metric} {number.reported}: {number.source}, {number.where}; {number.protocol}; {number.provenance}"
                )
                notes = table.published.setdefault(number.row, [])
                if note not in notes:
                    notes.append(note)
    return table


# ----------------------------------------------------------------------------- rendering


def _number(value: float, signed: bool = False) -> str:
    if value != value:
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _entry_parts(entry: Entry | None) -> tuple[str, str, str] | None:
    """(value text, change text, note) of an entry; None when there is none."""
    if entry is None:
        return None
    if entry.published:
        return f"{entry.values[0]:.4f}", "", "published"
    if not entry.values:
        return f"failed ({entry.failed}/{entry.failed})", "", ""
    value = entry.value
    text = _number(value.mean) + (f" ± {_number(value.std)}" if value.n > 1 else "")
    change = entry.change
    if entry.start:
        delta = ""
    elif value.n > 1:
        delta = f"Δ {_number(change.mean, True)} [{_number(change.low, True)}, {_number(change.high, True)}]"
    else:
        delta = f"Δ {_number(change.mean, True)}"
    note = f"n={value.n}" + (f", {entry.failed} failed" if entry.failed else "")
    return text, delta, note


def _md_cell(entry: Entry | None) -> str:
    parts = _entry_parts(entry)
    if parts is None:
        return "–"
    text, delta, note = parts
    if entry.published:
        return f"{text} (published)"
    if entry.bold:
        text = f"**{text}**"
    inside = ", ".join(p for p in (delta, note) if p)
    return f"{text} ({inside}){(' ' + MARKS[entry.verdict]) if entry.verdict else ''}"


def _grid(table: Table, layout: str, cell) -> tuple[list[str], list[list[str]]]:
    """(header, body) with `cell(entry)` texts: tasks x methods ("tasks") or methods x tasks ("methods")."""
    if layout not in LAYOUTS:
        raise UsageError(f"--layout must be {' or '.join(LAYOUTS)}, got {layout!r}")
    if layout == "methods":
        header = ["method"] + [f"{t} {m} {ARROWS[d]}" for t, m, d in table.columns]
        body = [[row] + [cell(entries.get((t, m))) for t, m, _ in table.columns] for row, entries in table.rows.items()]
        return header, body
    methods, columns, grid = table.by_target()
    header = ["task", "metric"] + methods
    body = [[t, f"{m} {ARROWS[d]}"] + [cell(grid[(t, m)].get(method)) for method in methods] for t, m, d in columns]
    return header, body


def caption(table: Table, layout: str = "methods") -> str:
    parts = [
        "Test metrics: mean ± sample std over seeds; Δ: the mean change from each seed's own pretrained checkpoint "
        "(positive = better, whatever the metric's direction) with its 95% t confidence interval; n: finished seeds."
    ]
    if table.comparisons:
        parts.append(
            f"On the metric a row optimised, it is paired seed by seed with `{table.baseline}` (same task, target and "
            f"checkpoint) by a {TEST_NAMES[table.test]}, with Holm's correction across the table's {table.comparisons} "
            f"comparisons: {MARKS[1]} significantly better, {MARKS[-1]} significantly worse (adjusted p < {ALPHA}). "
            f"Bold: the column's best row among those that optimised its metric, only when it is significantly better "
            f"than `{table.baseline}` (`{table.baseline}` itself: than every other row) and improved on its start."
        )
    else:  # "Holm's correction across 0 comparisons" would read as if something was tested
        parts.append(
            f"No row could be tested against `{table.baseline}` (a test needs its finished runs on the row's task and "
            "target for at least two of the row's seeds), so nothing is marked or bold; `metricbench table --baseline "
            "METHOD` pairs the rows with another method."
        )
    if layout == "tasks":
        parts.append(
            "(pretrained) is the shared starting checkpoint; each entry is the method's run that optimised the row's "
            "metric (`--layout methods` shows every metric)."
        )
    else:
        parts.append(
            "(pretrained) is the shared starting checkpoint; a row `method → metric` optimised that metric, the others "
            "each task's first metric."
        )
    if table.test == "wilcoxon" and table.max_seeds < 6 and table.comparisons:
        parts.append(f"With {table.max_seeds} seeds the Wilcoxon test cannot reach p < 0.05 (its smallest p is 2/2^n).")
    return " ".join(parts)


def to_markdown(table: Table, layout: str = "tasks") -> str:
    header, body = _grid(table, layout, _md_cell)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    text = "\n".join(lines) + "\n\n" + caption(table, layout) + "\n"
    if table.published:
        text += "\nPublished numbers (not our runs; never bold or tested):\n" + "".join(
            f"- {row}: {note}\n" for row, notes in table.published.items() for note in notes
        )
    if table.notes:
        finished = {(task, row): len(e.values) for row, entries in table.rows.items() for (task, _), e in entries.items()}
        text += "\nNotes from the methods (seeds whose run said it, of the finished seeds):\n" + "".join(
            f"- {task} / {row}: {note} (seeds {', '.join(map(str, sorted(seeds)))} of {finished.get((task, row), len(seeds))})\n"
            for (task, row, note), seeds in table.notes.items()
        )
    if table.failures:
        text += "\nFailed cells:\n" + "".join(f"- {f}\n" for f in table.failures)
    return text


_LATEX_SPECIALS = (
    ("\\", r"\textbackslash{}"),
    ("_", r"\_"),
    ("%", r"\%"),
    ("&", r"\&"),
    ("#", r"\#"),
    ("{", r"\{"),
    ("}", r"\}"),
    ("$", r"\$"),
    ("~", r"\textasciitilde{}"),
    ("^", r"\textasciicircum{}"),
    ("→", r"$\rightarrow$"),  # after "$", so its own dollars stay
    ("±", r"$\pm$"),
    ("Δ", r"$\Delta$"),
    ("–", "--"),
    ("▲", r"$^{\ast}$"),
    ("▼", r"$^{\dagger}$"),
)


def _latex_escape(text: str) -> str:
    for char, repl in _LATEX_SPECIALS:
        text = text.replace(char, repl)
    return text


def _latex_cell(entry: Entry | None) -> str:
    parts = _entry_parts(entry)
    if parts is None:
        return "--"
    text, delta, note = parts
    text = _latex_escape(text)
    if entry.published:
        return rf"{text}\textsuperscript{{p}}"
    if entry.bold:
        text = rf"\textbf{{{text}}}"
    text += LATEX_MARKS[entry.verdict]
    small = ", ".join(p for p in (delta, note) if p)
    # two lines in one cell: the value, then the change and n in a smaller font
    return rf"\begin{{tabular}}[t]{{@{{}}c@{{}}}}{text}\\{{\scriptsize {_latex_escape(small)}}}\end{{tabular}}"


def _latex_tabular(table: Table, layout: str) -> list[str]:
    if layout not in LAYOUTS:
        raise UsageError(f"--layout must be {' or '.join(LAYOUTS)}, got {layout!r}")
    lines = []
    if layout == "methods":
        tasks = _sorted_unique(t for t, _, _ in table.columns)
        lines += [r"\begin{tabular}{l" + "c" * len(table.columns) + "}", r"\toprule"]
        groups, rules, start = ["method"], [], 2
        for task in tasks:
            width = sum(1 for t, _, _ in table.columns if t == task)
            groups.append(rf"\multicolumn{{{width}}}{{c}}{{{_latex_escape(task)}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
            start += width
        lines.append(" & ".join(groups) + r" \\")
        lines.append(" ".join(rules))
        lines.append(" & ".join([""] + [_latex_escape(m) + " " + LATEX_ARROWS[d] for _, m, d in table.columns]) + r" \\")
        lines.append(r"\midrule")
        for row, entries in table.rows.items():
            lines.append(
                " & ".join([_latex_escape(row)] + [_latex_cell(entries.get((t, m))) for t, m, _ in table.columns]) + r" \\"
            )
    else:
        methods, columns, grid = table.by_target()
        width = len(methods) + 1
        lines += [r"\begin{tabular}{l" + "c" * len(methods) + "}", r"\toprule"]
        lines.append(" & ".join(["metric"] + [_latex_escape(r) for r in methods]) + r" \\")
        for task in _sorted_unique(t for t, _, _ in columns):
            lines.append(r"\midrule")
            lines.append(rf"\multicolumn{{{width}}}{{l}}{{\textit{{{_latex_escape(task)}}}}} \\")
            lines.append(rf"\cmidrule(lr){{1-{width}}}")
            for t, m, d in columns:
                if t == task:
                    cells = [_latex_cell(grid[(t, m)].get(method)) for method in methods]
                    lines.append(" & ".join([_latex_escape(m) + " " + LATEX_ARROWS[d]] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def _latex_float(tabular: list[str], text_caption: str, label: str) -> str:
    """A `table*` (both columns of a two-column paper) whose tabular is scaled to the text width."""
    lines = [
        r"% needs \usepackage{booktabs} and \usepackage{graphicx}",
        r"\begin{table*}[t]",
        r"\centering",
        r"\small",
        r"\setlength{\tabcolsep}{3pt}",
        r"\resizebox{\textwidth}{!}{%",
        *tabular,
        r"}",
        rf"\caption{{{_latex_escape(text_caption)}}}",
        rf"\label{{{label}}}",
        r"\end{table*}",
    ]
    return "\n".join(lines) + "\n"


def to_latex(table: Table, layout: str = "tasks", label: str = "tab:metricbench") -> str:
    text = caption(table, layout).replace("`", "")
    text = text.replace(MARKS[1], "*").replace(MARKS[-1], "†")
    out = _latex_float(_latex_tabular(table, layout), text, label)
    out += "".join(
        _latex_escape(f"% published, {row}: {note}") + "\n" for row, notes in table.published.items() for note in notes
    )
    return out


def _html_cell(entry: Entry | None) -> str:
    parts = _entry_parts(entry)
    if parts is None:
        return "–"
    text, delta, note = (html.escape(p) for p in parts)
    if entry.published:
        return f"{text} <small>(published)</small>"
    if entry.bold:
        text = f"<b>{text}</b>"
    mark = f' <span class="{"win" if entry.verdict > 0 else "loss"}">{MARKS[entry.verdict]}</span>' if entry.verdict else ""
    small = ", ".join(p for p in (delta, note) if p)
    return f"{text}{mark}<br><small>{small}</small>"


def to_html(table: Table, layout: str = "tasks") -> str:
    header, body = _grid(table, layout, _html_cell)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    first = 1 if layout == "methods" else 2
    rows = "".join(
        "<tr>"
        + "".join(f"<th>{html.escape(c)}</th>" for c in row[:first])
        + "".join(f"<td>{c}</td>" for c in row[first:])
        + "</tr>"
        for row in body
    )
    out = f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>\n'
    out += f'<p class="caption">{html.escape(caption(table, layout))}</p>\n'
    if table.notes:
        out += (
            '<ul class="notes">'
            + "".join(
                f"<li>{html.escape(f'{task} / {row}: {note}')} (seeds {', '.join(map(str, sorted(seeds)))})</li>"
                for (task, row, note), seeds in table.notes.items()
            )
            + "</ul>\n"
        )
    return out


CSV_COLUMNS = [
    "method", "task", "metric", "direction", "n", "failed", "mean", "std", "ci_low", "ci_high", "change_mean",
    "change_std", "change_low", "change_high", "baseline", "test", "pairs", "difference", "p", "p_holm", "verdict", "best",
    "published",
]  # fmt: skip


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    fmt = lambda v: "" if v is None or v != v else repr(float(v))
    for row, entries in table.rows.items():
        for t, m, d in table.columns:
            entry = entries.get((t, m))
            if entry is None:
                continue
            value, change = entry.value, entry.change
            compared = entry.compared
            writer.writerow(
                [
                    row, t, m, d, len(entry.values), entry.failed, fmt(value.mean), fmt(value.std), fmt(value.low),
                    fmt(value.high), fmt(change.mean), fmt(change.std), fmt(change.low), fmt(change.high),
                    table.baseline if compared else "", table.test if compared else "", entry.pairs if compared else "",
                    fmt(entry.difference), fmt(entry.p), fmt(entry.p_holm), entry.verdict if compared else "",
                    int(entry.bold), int(entry.published),
                ]
            )  # fmt: skip
    return buffer.getvalue()


# ----------------------------------------------------------------------------- costs

COST_SECONDS = {
    "wall_seconds": "wall s",
    "finetune_seconds": "method s",
    "gpu_seconds": "GPU s",
    "anytime_seconds": "test curve s",
    "stage_seconds": "stage s",
}
LOAD = ("load_average", "load")


def _cost_columns(table: Table) -> list[tuple[str, str]]:
    """(key, header) of the cost columns any row has."""
    present = {k for cost in table.costs.values() for k, v in cost.means.items() if v == v}
    columns = [("optimizer_steps", "steps")]
    for account in ACCOUNTS:
        if account != "steps":
            columns += [(f"{account}_calls", f"{account} calls"), (f"{account}_examples", f"{account} examples")]
    columns += [*COST_SECONDS.items(), LOAD]
    return [(k, h) for k, h in columns if k in present]


def _cost_text(value: float | None, key: str) -> str:
    if value is None or value != value:
        return "–"
    if key == LOAD[0]:
        return f"{value:.1f}"
    return f"{value:.2f}" if key in COST_SECONDS else f"{value:g}"


def costs_markdown(table: Table) -> str:
    columns = _cost_columns(table)
    lines = ["| method | task | n | " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * (len(columns) + 3)]
    for (row, task), cost in table.costs.items():
        lines.append(f"| {row} | {task} | {cost.n} | " + " | ".join(_cost_text(cost.means.get(k), k) for k, _ in columns) + " |")
    return "\n".join(lines) + "\n\n" + COSTS_CAPTION + "\n"


COSTS_CAPTION = (
    "Spent per cell, mean over finished seeds: optimizer steps on the model, calls and examples of each budget account, "
    "wall seconds of the whole cell, the method's own finetuning seconds (GPU seconds: the same on a GPU, 0 on a CPU) and "
    "the runner's anytime test curve (its cost, not the method's). A `(stage)` row is what a method built once before its "
    "cells and shared among them, mean over its distinct stages. Seconds depend on the machine (environment.json) and on "
    "what else ran: load is the machine's 1-minute load average at the cell's start or end, the higher, and a load above "
    "its number of cores means the seconds were measured under contention."
)


def costs_latex(table: Table, label: str = "tab:metricbench-costs") -> str:
    columns = _cost_columns(table)
    tabular = [r"\begin{tabular}{ll" + "r" * (len(columns) + 1) + "}", r"\toprule"]
    tabular.append(" & ".join(["method", "task", "n", *(_latex_escape(h) for _, h in columns)]) + r" \\")
    tabular.append(r"\midrule")
    for (row, task), cost in table.costs.items():
        cells = [_latex_escape(row), _latex_escape(task), str(cost.n), *(_cost_text(cost.means.get(k), k) for k, _ in columns)]
        tabular.append(" & ".join(cells) + r" \\")
    tabular += [r"\bottomrule", r"\end{tabular}"]
    return _latex_float(tabular, COSTS_CAPTION.replace("`", ""), label)


def costs_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = [*(f"{a}_{unit}" for a in ACCOUNTS for unit in ("calls", "examples")), "optimizer_steps", *COST_SECONDS, LOAD[0]]
    writer.writerow(["method", "task", "n", *keys])
    for (row, task), cost in table.costs.items():
        writer.writerow(
            [
                row,
                task,
                cost.n,
                *("" if cost.means.get(k) is None or cost.means[k] != cost.means[k] else repr(cost.means[k]) for k in keys),
            ]
        )
    return buffer.getvalue()


def costs_html(table: Table) -> str:
    columns = _cost_columns(table)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["method", "task", "n", *(h for _, h in columns)])
    body = "".join(
        f"<tr><th>{html.escape(row)}</th><th>{html.escape(task)}</th><td>{cost.n}</td>"
        + "".join(f"<td>{_cost_text(cost.means.get(k), k)}</td>" for k, _ in columns)
        + "</tr>"
        for (row, task), cost in table.costs.items()
    )
    caption_html = f'<p class="caption">{html.escape(COSTS_CAPTION)}</p>\n'
    return f'<table class="costs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n' + caption_html


RENDERERS = {"md": to_markdown, "latex": to_latex, "html": to_html, "csv": to_csv}
COST_RENDERERS = {"md": costs_markdown, "latex": costs_latex, "html": costs_html, "csv": costs_csv}
EXTENSIONS = {"md": "md", "latex": "tex", "html": "html", "csv": "csv"}


def render(table: Table, fmt: str, layout: str = "tasks") -> str:
    """The table in a format (the layout applies to md, latex and html)."""
    if fmt == "csv":
        return to_csv(table)
    return RENDERERS[fmt](table, layout)
