"""Paper-style comparison tables, built from the cell records (the source of truth).

Rows are methods with their options (plus the shared pretrained starting point), columns are task
(with its options and budget) / metric with the metric's direction, in the task's declared metric
order; cells are mean +- sample std over seeds with n. Two configurations of one method or task are
two rows or columns, labelled by what differs, never pooled. The best method mean per column is
bold. Failed cells are counted in their table cell and listed with their reasons under the table.
`collect` reads the same from an MLflow store, for a store without its output folder.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

from metricbench.bench.budget import ACCOUNTS
from metricbench.bench.errors import UsageError
from metricbench.bench.tracking import DIGEST_TAG, KIND_TAG, SUPERSEDED_TAG, metric_key

PRETRAINED_ROW = "(pretrained)"
ARROWS = {"lower": "↓", "higher": "↑"}
LATEX_ARROWS = {"lower": r"$\downarrow$", "higher": r"$\uparrow$"}


@dataclass
class CellResult:
    task: str
    method: str
    seed: int
    status: str
    reason: str
    metrics: dict[str, float]
    pretrained: dict[str, float]
    directions: dict[str, str]  # in the task's metric order; the first is its default target
    target: str = ""
    spent: dict[str, float] = field(default_factory=dict)  # account -> calls
    task_config: dict = field(default_factory=dict)  # the task's options and the cell's budget
    method_config: dict = field(default_factory=dict)  # the method's options
    stage_id: str = ""  # the stage the cell's method built or reused (shared by cells), if any
    stage_spent: dict[str, float] = field(default_factory=dict)  # account -> calls, of that stage
    notes: list[str] = field(default_factory=list)  # what the method said about its run (`ctx.note`)
    diagnostics: dict[str, float] = field(default_factory=dict)  # the last value of each `ctx.log`; `stage/...` its stage's

    @property
    def default_target(self) -> str:
        return next(iter(self.directions), "")

    @property
    def row(self) -> str:
        """The table row: the method, marked with its target when that is not the task's default."""
        return self.method if not self.target or self.target == self.default_target else f"{self.method} → {self.target}"


@dataclass
class Stat:
    values: list[float] = field(default_factory=list)
    failed: int = 0
    published: bool = False  # a reference number from a paper, not a run of ours

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None


@dataclass
class Table:
    columns: list[tuple[str, str, str]]  # (task, metric, direction)
    rows: dict[str, dict[tuple[str, str], Stat]]
    failures: list[str]
    spending: dict[tuple[str, str], dict[str, Stat]] = field(default_factory=dict)  # (row, task) -> account -> calls
    column_tasks: dict[str, tuple[str, dict]] = field(default_factory=dict)  # column label -> (task name, its config)
    published: dict[str, list[str]] = field(default_factory=dict)  # published row -> its provenance notes
    notes: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)  # (task, row, note) -> seeds that said it

    def best(self, column: tuple[str, str, str]) -> set[str]:
        task, metric, direction = column
        means = {
            m: s.mean
            for m, cells in self.rows.items()
            if m != PRETRAINED_ROW and m not in self.published
            for key, s in cells.items()
            if key == (task, metric) and s.mean is not None
        }
        if not means:
            return set()
        target = min(means.values()) if direction == "lower" else max(means.values())
        return {m for m, v in means.items() if v == target}


def collect(uri: str, experiment: str | None, cell_ids: set[str] | None = None) -> tuple[list[CellResult], str]:
    """The latest child run of every cell in the experiment (or of the given cells); and its name."""
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


def load_records(out_dir: str | Path, cell_ids: set[str] | None = None, suite: str | None = None) -> list[CellResult]:
    """The results in an output folder's cell records (`cells/*.json`): those of `cell_ids`, or of
    `suite` (needed when the folder holds several suites)."""
    folder = Path(out_dir) / "cells"
    if not folder.is_dir():
        raise UsageError(f"'{out_dir}' has no cell records (cells/); give the --out folder of a `metricbench run`")
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue  # a corrupt record is reported, moved aside and recomputed by the next run
    if cell_ids is not None:
        records = [r for r in records if r.get("cell_id") in cell_ids]
    elif suite is not None:
        held = sorted({r.get("suite", "") for r in records})
        records = [r for r in records if r.get("suite") == suite]
        if not records:
            raise UsageError(f"'{out_dir}' holds no cells of suite '{suite}'; it holds: {', '.join(held) or '(none)'}")
    else:
        held = sorted({r.get("suite", "") for r in records})
        if len(held) > 1:
            raise UsageError(f"'{out_dir}' holds cells of {len(held)} suites ({', '.join(held)}); choose one with --suite NAME")
    if not records:
        raise UsageError(f"'{out_dir}' has no finished cells yet; run `metricbench run` first")
    return [from_record(record) for record in records]


def from_record(record: dict) -> CellResult:
    order = record.get("metric_names") or list(record["directions"])
    return CellResult(
        task=record["task"],
        method=record["method"],
        seed=record["seed"],
        status=record["status"],
        reason=record.get("reason", ""),
        metrics=record.get("metrics", {}),
        pretrained=(record.get("pretrained") or {}).get("test", {}),
        directions={m: record["directions"][m] for m in order},
        target=record.get("target_metric", ""),
        spent={a: record["spent"][a]["calls"] for a in ACCOUNTS if a in (record.get("spent") or {})},
        stage_id=(record.get("stage") or {}).get("id", ""),
        notes=list(record.get("notes") or []),
        diagnostics={
            **{name: points[-1][1] for name, points in ((record.get("history") or {}).get("logs") or {}).items() if points},
            **{f"stage/{name}": value for name, value in ((record.get("stage") or {}).get("logs") or {}).items()},
        },
        stage_spent={a: v["calls"] for a, v in ((record.get("stage") or {}).get("spent") or {}).items() if a in ACCOUNTS},
        task_config={
            **{f"task.{k}": json.dumps(v) for k, v in sorted(record.get("task_options", {}).items())},
            **{f"budget.{k}": json.dumps(v) for k, v in sorted(record.get("budget", {}).items())},
        },
        method_config={f"method.{k}": json.dumps(v) for k, v in sorted(record.get("method_options", {}).items())},
    )


def _labels(configs: dict[tuple[str, str], dict]) -> dict[tuple[str, str], str]:
    """A label per (name, config key): the name, plus what differs when one name has several configs."""
    by_name: dict[str, list[tuple[str, str]]] = {}
    for key in configs:
        by_name.setdefault(key[0], []).append(key)
    labels = {}
    for name, keys in by_name.items():
        if len(keys) == 1:
            labels[keys[0]] = name
            continue
        differing = sorted({k for key in keys for k in configs[key] if len({configs[o].get(k) for o in keys}) > 1})
        for key in keys:
            shown = ", ".join(f"{k.split('.', 1)[1]}={configs[key].get(k, '–')}" for k in differing)
            labels[key] = f"{name} ({shown})"
    return labels


def _logged(metrics: dict[str, float], prefix: str, order: list[str]) -> dict[str, float]:
    """The logged values of `prefix` + each metric, by metric name (MLflow keys spell "@" as "_at_")."""
    return {m: metrics[prefix + metric_key(m)] for m in order if prefix + metric_key(m) in metrics}


def build(results: list[CellResult]) -> Table:
    task_keys = [(r.task, json.dumps(r.task_config, sort_keys=True)) for r in results]
    method_keys = [(r.method, json.dumps(r.method_config, sort_keys=True)) for r in results]
    task_labels = _labels({key: r.task_config for key, r in zip(task_keys, results, strict=True)})
    method_labels = _labels({key: r.method_config for key, r in zip(method_keys, results, strict=True)})
    column_tasks = {task_labels[key]: (r.task, r.task_config) for key, r in zip(task_keys, results, strict=True)}
    results = [
        replace(r, task=task_labels[task_key], method=method_labels[method_key])
        for r, task_key, method_key in zip(results, task_keys, method_keys, strict=True)
    ]
    results = sorted(results, key=lambda r: (r.task, r.method, r.target != r.default_target, r.target, r.seed))
    columns: list[tuple[str, str, str]] = []
    for r in results:
        for metric, direction in r.directions.items():
            if (r.task, metric, direction) not in columns:
                columns.append((r.task, metric, direction))
    rows: dict[str, dict[tuple[str, str], Stat]] = {PRETRAINED_ROW: {}}
    pretrained_seen: set[tuple[str, int]] = set()
    table_spending: dict[tuple[str, str], dict[str, Stat]] = {}
    stages_seen: set[tuple[str, str]] = set()
    failures = []
    notes: dict[tuple[str, str, str], list[int]] = {}
    for r in results:
        cells = rows.setdefault(r.row, {})
        for metric in r.directions:
            stat = cells.setdefault((r.task, metric), Stat())
            if r.status == "ok":
                stat.values.append(r.metrics[metric])
            else:
                stat.failed += 1
            if r.pretrained and (r.task, r.seed) not in pretrained_seen and metric in r.pretrained:
                rows[PRETRAINED_ROW].setdefault((r.task, metric), Stat()).values.append(r.pretrained[metric])
        if r.pretrained:
            pretrained_seen.add((r.task, r.seed))
        if r.status == "ok" and r.spent:
            spending = table_spending.setdefault((r.row, r.task), {})
            for account, calls in r.spent.items():
                spending.setdefault(account, Stat()).values.append(calls)
        if r.stage_id and r.stage_spent and (r.stage_id, r.row) not in stages_seen:  # a shared stage counts once
            stages_seen.add((r.stage_id, r.row))
            spending = table_spending.setdefault((f"{r.row} (stage)", r.task), {})
            for account, calls in r.stage_spent.items():
                spending.setdefault(account, Stat()).values.append(calls)
        if r.status != "ok":
            failures.append(f"{r.task} / {r.row} / seed {r.seed}: {r.reason or 'failed'}")
        elif r.notes:
            for note in r.notes:
                notes.setdefault((r.task, r.row, note), []).append(r.seed)
    if not rows[PRETRAINED_ROW]:
        del rows[PRETRAINED_ROW]
    return Table(columns, rows, failures, table_spending, column_tasks, notes=notes)


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
                table.rows.setdefault(number.row, {})[(task_label, metric)] = Stat([number.value], published=True)
                note = (
                    f"{number.metric} {number.reported}: {number.source}, {number.where}; {number.protocol}; {number.provenance}"
                )
                notes = table.published.setdefault(number.row, [])
                if note not in notes:
                    notes.append(note)
    return table


def _cell_text(stat: Stat | None, bold: bool, latex: bool) -> str:
    if stat is None:
        return "–"
    if stat.mean is None:
        return f"failed ({stat.failed}/{stat.failed})"
    if stat.published:
        return f"{stat.mean:.4f} (published)"
    pm = r"$\pm$" if latex else "±"
    text = f"{stat.mean:.4f}" + (f" {pm} {stat.std:.4f}" if stat.std is not None else "")
    if bold:
        text = rf"\textbf{{{text}}}" if latex else f"**{text}**"
    note = f"n={len(stat.values)}" + (f", {stat.failed} failed" if stat.failed else "")
    return f"{text} ({note})"


def to_markdown(table: Table) -> str:
    header = ["method"] + [f"{t} {m} {ARROWS[d]}" for t, m, d in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {c: table.best(c) for c in table.columns}
    for method, cells in table.rows.items():
        row = [method] + [_cell_text(cells.get((t, m)), method in best[(t, m, d)], False) for t, m, d in table.columns]
        lines.append("| " + " | ".join(row) + " |")
    text = "\n".join(lines) + "\n"
    text += (
        "\nmean ± sample std over seeds (n = finished seeds); best method per column in bold; "
        "(pretrained) is the shared starting checkpoint; a row `method → metric` optimised that metric, "
        "other rows each task's first metric.\n"
    )
    if table.spending:
        stages = any(row.endswith(" (stage)") for row, _ in table.spending)
        text += "\nSpent per cell (calls of each budget account, mean over finished seeds" + (
            "; a `(stage)` row is what a method built once before its cells and shared among them, mean over its "
            "distinct stages):\n\n"
            if stages
            else "):\n\n"
        )
        text += "| method | task | " + " | ".join(ACCOUNTS) + " |\n|" + "---|" * (len(ACCOUNTS) + 2) + "\n"
        for (row, task), accounts in table.spending.items():
            text += f"| {row} | {task} | " + " | ".join(_calls(accounts.get(a)) for a in ACCOUNTS) + " |\n"
    if table.published:
        text += "\nPublished numbers (not our runs; never bold):\n" + "".join(
            f"- {row}: {note}\n" for row, notes in table.published.items() for note in notes
        )
    if table.notes:
        finished = {(task, row): len(stat.values) for row, cells in table.rows.items() for (task, _), stat in cells.items()}
        text += "\nNotes from the methods (seeds whose run said it, of the finished seeds):\n" + "".join(
            f"- {task} / {row}: {note} (seeds {', '.join(map(str, sorted(seeds)))} of {finished.get((task, row), len(seeds))})\n"
            for (task, row, note), seeds in table.notes.items()
        )
    if table.failures:
        text += "\nFailed cells:\n" + "".join(f"- {f}\n" for f in table.failures)
    return text


def _calls(stat: Stat | None) -> str:
    if stat is None or stat.mean is None:
        return "–"
    return f"{stat.mean:g}"


_LATEX_SPECIALS = (
    ("\\", r"\textbackslash{}"),
    ("_", r"\_"),
    ("%", r"\%"),
    ("&", r"\&"),
    ("#", r"\#"),
    ("$", r"\$"),
    ("→", r"$\rightarrow$"),  # after "$", so its own dollars stay
)


def _latex_escape(text: str) -> str:
    for char, repl in _LATEX_SPECIALS:
        text = text.replace(char, repl)
    return text


def to_latex(table: Table) -> str:
    best = {c: table.best(c) for c in table.columns}
    lines = [r"\begin{tabular}{l" + "c" * len(table.columns) + "}", r"\toprule"]
    lines.append(
        " & ".join(["method"] + [_latex_escape(f"{t} {m}") + " " + LATEX_ARROWS[d] for t, m, d in table.columns]) + r" \\"
    )
    lines.append(r"\midrule")
    for method, cells in table.rows.items():
        row = [_latex_escape(method)] + [
            _cell_text(cells.get((t, m)), method in best[(t, m, d)], True) for t, m, d in table.columns
        ]
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [_latex_escape(f"% published, {row}: {note}") for row, notes in table.published.items() for note in notes]
    if table.spending:
        lines += ["", r"\begin{tabular}{ll" + "r" * len(ACCOUNTS) + "}", r"\toprule"]
        lines.append(" & ".join(["method", "task", *(_latex_escape(a) for a in ACCOUNTS)]) + r" \\")
        lines.append(r"\midrule")
        for (row, task), accounts in table.spending.items():
            cells = [_latex_escape(row), _latex_escape(task), *(_calls(accounts.get(a)) for a in ACCOUNTS)]
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "task", "metric", "direction", "mean", "std", "n", "failed", "best"])
    for method, cells in table.rows.items():
        for t, m, d in table.columns:
            stat = cells.get((t, m))
            if stat is None:
                continue
            fmt = lambda v: "" if v is None else repr(v)
            writer.writerow(
                [
                    method,
                    t,
                    m,
                    d,
                    fmt(stat.mean),
                    fmt(stat.std),
                    len(stat.values),
                    stat.failed,
                    int(method in table.best((t, m, d))),
                ]
            )
    for (row, task), accounts in table.spending.items():
        for account, stat in sorted(accounts.items(), key=lambda item: list(ACCOUNTS).index(item[0])):
            writer.writerow([row, task, f"spent:{account}", "", repr(stat.mean), "", len(stat.values), 0, 0])
    return buffer.getvalue()


RENDERERS = {"md": to_markdown, "latex": to_latex, "csv": to_csv}
EXTENSIONS = {"md": "md", "latex": "tex", "csv": "csv"}
