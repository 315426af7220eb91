"""The cost table beside every comparison table: calls and examples per budget account, optimizer
steps, wall, method and GPU seconds, the runner's own test-curve seconds, and the machine's load."""

from __future__ import annotations

import csv
import html
import io

from metricbench.bench.core.budget import ACCOUNTS
from metricbench.bench.report.render import latex_escape, latex_float
from metricbench.bench.report.tables import Table

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
    tabular.append(" & ".join(["method", "task", "n", *(latex_escape(h) for _, h in columns)]) + r" \\")
    tabular.append(r"\midrule")
    for (row, task), cost in table.costs.items():
        cells = [latex_escape(row), latex_escape(task), str(cost.n), *(_cost_text(cost.means.get(k), k) for k, _ in columns)]
        tabular.append(" & ".join(cells) + r" \\")
    tabular += [r"\bottomrule", r"\end{tabular}"]
    return latex_float(tabular, COSTS_CAPTION.replace("`", ""), label)


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


COST_RENDERERS = {"md": costs_markdown, "latex": costs_latex, "html": costs_html, "csv": costs_csv}
