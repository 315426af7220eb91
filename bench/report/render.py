"""A comparison table as text: Markdown, LaTeX (booktabs), HTML and CSV.

`layout` "tasks" puts tasks as rows and methods as columns (the paper's), "methods" the reverse; the
caption says what an entry holds, what the marks mean and which test and correction were used.
"""

from __future__ import annotations

import csv
import html
import io

from metricbench.bench.core.errors import UsageError
from metricbench.bench.report.tables import ALPHA, LAYOUTS, TEST_NAMES, Entry, Table, sorted_unique

ARROWS = {"lower": "↓", "higher": "↑"}
LATEX_ARROWS = {"lower": r"$\downarrow$", "higher": r"$\uparrow$"}
MARKS = {1: "▲", -1: "▼", 0: ""}
LATEX_MARKS = {1: r"$^{\ast}$", -1: r"$^{\dagger}$", 0: ""}


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


def latex_escape(text: str) -> str:
    for char, repl in _LATEX_SPECIALS:
        text = text.replace(char, repl)
    return text


def _latex_cell(entry: Entry | None) -> str:
    parts = _entry_parts(entry)
    if parts is None:
        return "--"
    text, delta, note = parts
    text = latex_escape(text)
    if entry.published:
        return rf"{text}\textsuperscript{{p}}"
    if entry.bold:
        text = rf"\textbf{{{text}}}"
    text += LATEX_MARKS[entry.verdict]
    small = ", ".join(p for p in (delta, note) if p)
    # two lines in one cell: the value, then the change and n in a smaller font
    return rf"\begin{{tabular}}[t]{{@{{}}c@{{}}}}{text}\\{{\scriptsize {latex_escape(small)}}}\end{{tabular}}"


def _latex_tabular(table: Table, layout: str) -> list[str]:
    if layout not in LAYOUTS:
        raise UsageError(f"--layout must be {' or '.join(LAYOUTS)}, got {layout!r}")
    lines = []
    if layout == "methods":
        tasks = sorted_unique(t for t, _, _ in table.columns)
        lines += [r"\begin{tabular}{l" + "c" * len(table.columns) + "}", r"\toprule"]
        groups, rules, start = ["method"], [], 2
        for task in tasks:
            width = sum(1 for t, _, _ in table.columns if t == task)
            groups.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(task)}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
            start += width
        lines.append(" & ".join(groups) + r" \\")
        lines.append(" ".join(rules))
        lines.append(" & ".join([""] + [latex_escape(m) + " " + LATEX_ARROWS[d] for _, m, d in table.columns]) + r" \\")
        lines.append(r"\midrule")
        for row, entries in table.rows.items():
            lines.append(
                " & ".join([latex_escape(row)] + [_latex_cell(entries.get((t, m))) for t, m, _ in table.columns]) + r" \\"
            )
    else:
        methods, columns, grid = table.by_target()
        width = len(methods) + 1
        lines += [r"\begin{tabular}{l" + "c" * len(methods) + "}", r"\toprule"]
        lines.append(" & ".join(["metric"] + [latex_escape(r) for r in methods]) + r" \\")
        for task in sorted_unique(t for t, _, _ in columns):
            lines.append(r"\midrule")
            lines.append(rf"\multicolumn{{{width}}}{{l}}{{\textit{{{latex_escape(task)}}}}} \\")
            lines.append(rf"\cmidrule(lr){{1-{width}}}")
            for t, m, d in columns:
                if t == task:
                    cells = [_latex_cell(grid[(t, m)].get(method)) for method in methods]
                    lines.append(" & ".join([latex_escape(m) + " " + LATEX_ARROWS[d]] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def latex_float(tabular: list[str], text_caption: str, label: str) -> str:
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
        rf"\caption{{{latex_escape(text_caption)}}}",
        rf"\label{{{label}}}",
        r"\end{table*}",
    ]
    return "\n".join(lines) + "\n"


def to_latex(table: Table, layout: str = "tasks", label: str = "tab:metricbench") -> str:
    text = caption(table, layout).replace("`", "")
    text = text.replace(MARKS[1], "*").replace(MARKS[-1], "†")
    out = latex_float(_latex_tabular(table, layout), text, label)
    out += "".join(latex_escape(f"% published, {row}: {note}") + "\n" for row, notes in table.published.items() for note in notes)
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


RENDERERS = {"md": to_markdown, "latex": to_latex, "html": to_html, "csv": to_csv}
EXTENSIONS = {"md": "md", "latex": "tex", "html": "html", "csv": "csv"}


def render(table: Table, fmt: str, layout: str = "tasks") -> str:
    """The table in a format (the layout applies to md, latex and html)."""
    if fmt == "csv":
        return to_csv(table)
    return RENDERERS[fmt](table, layout)
