"""Everything an output folder shows, derived from its cell records: tables, costs, cost-to-target,
performance profiles and figures. `metricbench run` writes them after its cells; `metricbench table`
and `metricbench report` build the same from the records.

Files: table.{md,tex,html,csv} (the comparison, `layout` for md/tex/html), costs.{md,tex,html,csv},
targets.{md,csv} (steps and queries to 25/50/75% of the gap), profiles.{md,csv} and plots/*.{png,pdf}.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from metricbench.bench.core.files import atomic_write_bytes
from metricbench.bench.report import costs, profiles, render, results, tables


@dataclass
class Derived:
    """What the records of a folder give: the DataFrames, the table and the cross-task summaries."""

    cells: list  # CellResult
    frame: object  # results.frame
    curves: object  # results.anytime_frame
    reached: object  # profiles.targets_reached
    summary: object  # profiles.summary
    table: tables.Table


def derive(cells, baseline: str = "surrogate", test: str = "t") -> Derived:
    frame = results.frame(cells)
    curves = results.anytime_frame(cells)
    reached = profiles.targets_reached(frame, curves)
    table = tables.add_notes(tables.build(frame, baseline, test), cells)
    return Derived(cells, frame, curves, reached, profiles.summary(frame, reached), table)


def _write(path: Path, text: str) -> None:
    payload = text.encode()
    atomic_write_bytes(path, lambda handle: handle.write(payload))


def write_outputs(out_dir: str | Path, derived: Derived, layout: str = "tasks", figures: bool = True) -> list[Path]:
    """Write the folder's derived files; return the figures' PNG paths."""
    out_dir = Path(out_dir)
    table = derived.table
    for fmt, ext in render.EXTENSIONS.items():
        _write(out_dir / f"table.{ext}", render.render(table, fmt, layout))
        _write(out_dir / f"costs.{ext}", costs.COST_RENDERERS[fmt](table))
    _write(out_dir / "targets.md", profiles.targets_markdown(derived.reached))
    _write(out_dir / "targets.csv", derived.reached.to_csv(index=False, lineterminator="\n") if len(derived.reached) else "")
    _write(out_dir / "profiles.md", profiles.profiles_markdown(derived.summary))
    _write(out_dir / "profiles.csv", derived.summary.to_csv(index=False, lineterminator="\n"))
    if not figures:
        return []
    from metricbench.bench.report import plots

    return plots.write_figures(out_dir, plots.figures(out_dir, derived.frame, derived.curves, derived.reached))
