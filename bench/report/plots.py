"""Figures (matplotlib, PNG and PDF) built from the results DataFrames.

- `anytime_figure`: per (task, target), the test metric's change from each seed's own checkpoint vs
  optimizer steps and vs oracle calls for every method: the median over seeds as a line, the range over
  seeds as a band (each seed's curve is a step function held between its evaluation points);
- `final_figure`: the final test metric per method with its 95% confidence interval, per (task, target);
- `profile_figure`: the performance profiles (`metricbench.bench.report.profiles`);
- `value_figure`: MetricOpt's value function, predicted vs measured value of the candidates it had not
  seen yet, when MetricOpt cells wrote them.

`write_figures(out_dir, ...)` saves every figure to OUT/plots/NAME.png and .pdf and returns the PNG
paths; `png_bytes` renders one for the HTML report.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

from metricbench.bench.report.stats import interval

FOLDER = "plots"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _step_values(xs: list[float], ys: list[float], grid: list[float]) -> list[float]:
    """The curve's value at each grid point: the last evaluation at or before it (nan before the first)."""
    out, j = [], -1
    for x in grid:
        while j + 1 < len(xs) and xs[j + 1] <= x:
            j += 1
        out.append(ys[j] if j >= 0 else math.nan)
    return out


def _quantiles(columns: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    import numpy as np

    data = np.array(columns, dtype=float)  # seeds x grid
    return list(np.nanmedian(data, axis=0)), list(np.nanmin(data, axis=0)), list(np.nanmax(data, axis=0))


def anytime_figure(curves, task: str, target: str):
    """Test `target` vs steps and vs oracle calls, one line per method (median) with its band over seeds."""
    plt = _pyplot()
    of = curves[(curves["task_label"] == task) & (curves["target"] == target) & (curves["metric"] == target)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    direction = of["direction"].iloc[0] if len(of) else ""
    colors = {}
    for method, group in of.groupby("method_label", sort=True):
        for axis, x in zip(axes, ("step", "queries"), strict=True):
            # paired: each seed's curve minus its own checkpoint (step 0), so the spread between checkpoints
            # does not fill the band
            seeds = []
            for _, g in group.groupby("seed"):
                g = g.sort_values(["step"])
                start = float(g["value"].iloc[0])
                seeds.append((list(g[x].astype(float)), [v - start for v in g["value"]]))
            grid = sorted({v for xs, _ in seeds for v in xs})
            if not grid:
                continue
            median, low, high = _quantiles([_step_values(xs, ys, grid) for xs, ys in seeds])
            color = colors.get(method)
            if len(grid) == 1:  # no oracle call at all: the final change, at 0
                line = axis.plot([0], [median[-1]], marker="o", ls="", color=color, label=f"{method} (no oracle call)")[0]
            else:
                line = axis.step(grid, median, where="post", label=method, lw=1.4, color=color)[0]
                axis.fill_between(grid, low, high, step="post", alpha=0.18, color=line.get_color(), lw=0)
            colors[method] = line.get_color()
    for axis, label in zip(axes, ("optimizer steps", "oracle calls (every account but steps)"), strict=True):
        axis.set_xscale("symlog", linthresh=1.0)
        axis.set_xlabel(label)
        axis.axhline(0.0, color="grey", lw=0.6)
        axis.set_ylabel(
            f"test {target} minus the seed's start ({'higher' if direction == 'higher' else 'lower'} is better)", fontsize=7
        )
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6)
    fig.suptitle(f"{task}: anytime test curve, change from each seed's checkpoint (median over seeds, band: range)", fontsize=9)
    fig.tight_layout()
    return fig


def final_figure(frame):
    """The final test value of each method on each (task, target), mean with its 95% interval over seeds."""
    plt = _pyplot()
    tests = frame[(frame["record"] == "cell") & (frame["split"] == "test") & (frame["metric"] == frame["target"])]
    tests = tests[tests["status"] == "ok"]
    problems = sorted({(t, m) for t, m in zip(tests["task_label"], tests["target"], strict=True)})
    columns = min(3, max(1, len(problems)))
    rows = math.ceil(len(problems) / columns) if problems else 1
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.8 * rows), squeeze=False)
    for axis, (task, target) in zip(axes.flat, problems, strict=False):
        of = tests[(tests["task_label"] == task) & (tests["target"] == target)]
        start = frame[(frame["split"] == "pretrained") & (frame["task_label"] == task) & (frame["metric"] == target)]
        start = start.drop_duplicates("seed")["value"]
        methods = sorted(set(of["method_label"]))
        for i, method in enumerate(methods):
            ci = interval(of[of["method_label"] == method]["value"])
            error = [[ci.mean - ci.low], [ci.high - ci.mean]] if ci.n > 1 else None
            axis.errorbar([i], [ci.mean], yerr=error, fmt="o", capsize=3, ms=4)
        if len(start):
            axis.axhline(float(start.mean()), color="grey", ls="--", lw=0.8, label="pretrained (mean)")
        axis.set_xticks(range(len(methods)), methods, rotation=35, ha="right", fontsize=7)
        axis.set_title(f"{task}: {target} {'↑' if of['direction'].iloc[0] == 'higher' else '↓'}", fontsize=8)
        axis.tick_params(axis="y", labelsize=7)
        axis.grid(alpha=0.3, axis="y")
    for axis in list(axes.flat)[len(problems) :]:
        axis.axis("off")
    fig.suptitle("final test metric: mean and 95% confidence interval over seeds", fontsize=9)
    fig.tight_layout()
    return fig


def profile_figure(frame, reached):
    from metricbench.bench.report import profiles

    plt = _pyplot()
    measured = profiles.costs(frame, reached)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for axis, (measure, by_problem) in zip(axes, measured.items(), strict=True):
        ratios = profiles.ratios(by_problem)
        taus = [1.0 + i * (profiles.TAU_MAX - 1.0) / 300 for i in range(301)]
        for method, rs in sorted(ratios.items()):
            axis.step(taus, [profiles.profile(rs, t) for t in taus], where="post", label=f"{method} ({profiles.score(rs):.2f})")
        axis.set(xlabel="tau (ratio to the best)", ylabel="share of problems within tau", ylim=(-0.02, 1.02))
        axis.set_title(f"{measure}: {profiles.MEASURES[measure]}", fontsize=8)
        axis.grid(alpha=0.3)
        if ratios:
            axis.legend(fontsize=7, title="method (score)", title_fontsize=7)
    fig.suptitle(f"performance profiles over {len(measured['final'])} (task, target) problems", fontsize=9)
    fig.tight_layout()
    return fig


def value_predictions(out_dir: str | Path, frame) -> list[dict]:
    """The predicted-vs-measured files MetricOpt cells wrote (artifacts/<cell>/value_predictions.json)."""
    found = []
    cells = frame[(frame["record"] == "cell") & (frame["split"] == "test")].drop_duplicates("cell_id")
    for r in cells.itertuples(index=False):
        path = Path(out_dir) / "artifacts" / r.cell_id / "value_predictions.json"
        if path.is_file():
            try:
                found.append({"task": r.task_label, "row": r.row, "seed": r.seed, **json.loads(path.read_text())})
            except (OSError, json.JSONDecodeError):
                continue
    return found


def value_figure(predictions: list[dict]):
    plt = _pyplot()
    groups = sorted({(p["task"], p["row"]) for p in predictions})
    columns = min(3, len(groups))
    rows = math.ceil(len(groups) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.0 * rows), squeeze=False)
    for axis, (task, row) in zip(axes.flat, groups, strict=False):
        for p in predictions:
            if (p["task"], p["row"]) == (task, row):
                axis.scatter(p["observed"], p["predicted"], s=5, alpha=0.5, label=f"seed {p['seed']}")
        axis.set_title(f"{task} / {row}", fontsize=8)
        axis.set_xlabel("measured (sign x metric, lower is better)", fontsize=7)
        axis.set_ylabel("predicted before seen", fontsize=7)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=6)
    for axis in list(axes.flat)[len(groups) :]:
        axis.axis("off")
    fig.suptitle("MetricOpt value function: predicted vs measured candidates", fontsize=9)
    fig.tight_layout()
    return fig


def figures(out_dir: str | Path, frame, curves, reached) -> dict[str, object]:
    """name -> figure, for every figure the results allow."""
    made = {"final": final_figure(frame)}
    if curves is not None and len(curves):
        for task, target in sorted({(t, m) for t, m in zip(curves["task_label"], curves["target"], strict=True)}):
            made[f"anytime-{task}-{target}"] = anytime_figure(curves, task, target)
        made["profiles"] = profile_figure(frame, reached)
    predictions = value_predictions(out_dir, frame)
    if predictions:
        made["metricopt-value"] = value_figure(predictions)
    return made


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_figures(out_dir: str | Path, made: dict[str, object]) -> list[Path]:
    """Save each figure as PNG and PDF in OUT/plots/; return the PNG paths."""
    from metricbench.bench.core.files import atomic_write_bytes

    plt = _pyplot()
    folder = Path(out_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in made.items():
        for fmt in ("png", "pdf"):
            buffer = io.BytesIO()
            # a fixed creation date keeps the PDF the same for the same results
            fig.savefig(buffer, format=fmt, dpi=110, metadata={"CreationDate": None} if fmt == "pdf" else {"Software": None})
            path = folder / f"{_file_name(name)}.{fmt}"
            data = buffer.getvalue()
            atomic_write_bytes(path, lambda handle, data=data: handle.write(data))
            if fmt == "png":
                written.append(path)
        plt.close(fig)
    return written


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


def cell_curves_plot(record: dict, folder: Path) -> Path | None:
    """A cell's val curves and train loss as `folder/curves.png` (logged with its run); None with neither."""
    history = record.get("history") or {}
    curves = record.get("curves") or {}
    if not curves and not history.get("loss"):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, curve in curves.items():
        if curve:
            steps, values = zip(*curve, strict=True)
            axes[0].plot(steps, values, marker="o", ms=3, label=f"{name} ({record['directions'].get(name, '')} is better)")
    axes[0].set(title="val metrics (uncounted)", xlabel="step")
    axes[0].legend(fontsize=7)
    if history.get("loss"):
        axes[1].plot(range(1, len(history["loss"]) + 1), history["loss"], lw=0.8)
    axes[1].set(title="train loss", xlabel="step")
    fig.suptitle(
        f"{record['task']} / target {record['target_metric']} / {record['method']} / seed {record['seed']} ({record['status']})",
        fontsize=9,
    )
    # fixed margins: tight_layout measured every text and doubled the cost of a plot drawn once per cell
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.82, wspace=0.2)
    path = folder / "curves.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
