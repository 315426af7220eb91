"""`metricbench report --out DIR`: one self-contained HTML file (OUT/report.html) with the suite's
configuration, the environment that produced it, the tables, the cross-task summaries, every figure
(embedded as data: URIs, so the file opens anywhere with no network) and the failed cells with their
reasons. Built from the cell records, like the tables.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from metricbench.bench.core.files import atomic_write_bytes
from metricbench.bench.report import costs, profiles, render

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: center; vertical-align: top; }
thead th { background: #f2f2f2; }
td small { color: #555; }
.win { color: #11772d; } .loss { color: #b3261e; }
.caption { font-size: 0.85em; color: #444; max-width: 1100px; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
"""


def _markdown_table_html(text: str) -> str:
    """A Markdown pipe table (as `profiles` and `targets` render them) as HTML, with its trailing caption."""
    lines = text.strip().splitlines()
    rows = [line for line in lines if line.startswith("|")]
    rest = [line for line in lines if not line.startswith("|") and line.strip()]
    if len(rows) < 2:
        return f"<p>{html.escape(text)}</p>"
    cells = [[html.escape(c.strip()) for c in row.strip("|").split("|")] for row in rows]
    head = "".join(f"<th>{c}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[2:])
    caption = "".join(f'<p class="caption">{html.escape(line)}</p>' for line in rest)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{caption}"


def _config(derived) -> dict:
    cells = derived.cells
    return {
        "suite": sorted({c.suite for c in cells}),
        "tasks": sorted({c.task for c in cells}),
        "methods": sorted({c.method for c in cells}),
        "seeds": sorted({c.seed for c in cells}),
        "cells": len(cells),
        "task configurations": {label: config for label, (_, config) in sorted(derived.table.column_tasks.items())},
    }


def build_html(out_dir: str | Path, derived, layout: str = "tasks") -> str:
    from metricbench.bench.report import plots

    out_dir = Path(out_dir)
    environment = {}
    env_file = out_dir / "environment.json"
    if env_file.is_file():
        environment = json.loads(env_file.read_text())
    table = derived.table
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>metricbench report: {html.escape(', '.join(_config(derived)['suite']))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>metricbench report: {html.escape(', '.join(_config(derived)['suite']))}</h1>",
        "<h2>Comparison</h2>",
        render.to_html(table, layout),
        "<h2>Cost</h2>",
        costs.costs_html(table),
        "<h2>Cost to target (anytime test curves)</h2>",
        _markdown_table_html(profiles.targets_markdown(derived.reached)),
        "<h2>Performance profiles</h2>",
        _markdown_table_html(profiles.profiles_markdown(derived.summary)) if len(derived.summary) else "<p>none</p>",
        "<h2>Figures</h2>",
    ]
    made = plots.figures(out_dir, derived.frame, derived.curves, derived.reached)
    import matplotlib.pyplot as plt

    for name, fig in made.items():
        data = base64.b64encode(plots.png_bytes(fig)).decode()
        plt.close(fig)
        parts.append(f"<h3>{html.escape(name)}</h3><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
    failures = table.failures
    parts.append("<h2>Failed cells</h2>")
    parts.append("<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in failures) + "</ul>" if failures else "<p>none</p>")
    parts.append("<h2>Suite configuration</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(_config(derived), indent=1, sort_keys=True))}</pre>")
    parts.append("<h2>Environment</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(environment, indent=1, sort_keys=True)) or 'not recorded'}</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(out_dir: str | Path, derived, layout: str = "tasks") -> Path:
    path = Path(out_dir) / "report.html"
    payload = build_html(out_dir, derived, layout).encode()
    atomic_write_bytes(path, lambda handle: handle.write(payload))
    return path
