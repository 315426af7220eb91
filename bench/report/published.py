"""Numbers a paper published, added to a comparison table as rows beside the measured ones
(`results/published.csv`: each with its source, protocol and provenance)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from metricbench.bench.core.errors import UsageError
from metricbench.bench.report.tables import Entry, Table

PUBLISHED_COLUMNS = ("row", "task", "metric", "value", "reported", "options", "source", "where", "protocol", "provenance")
DEFAULT_PUBLISHED = Path(__file__).resolve().parents[2] / "results" / "published.csv"


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
