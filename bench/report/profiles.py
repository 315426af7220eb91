"""From anytime curves and final metrics to cross-task summaries: cost-to-target and performance profiles.

Cost to target. For a (task, target metric, seed), the gap is what the best method closed on that seed:
from the pretrained checkpoint's test value to the best final test value among the methods that
optimised the target. A method reaches fraction f of the gap at the first point of its anytime curve
where its test value is at least start + f x gap (in the metric's direction); its steps and oracle
calls (`queries`, every account but steps) at that point are its steps- and queries-to-target. When no
method improved on the start there is no gap and no target.

Performance profiles (Dolan & Moré, 2002; as AlgoPerf scores training algorithms). Problems are the
(task, target) pairs, solvers the methods. Each measure gives a cost per problem and solver (lower is
better): `final` is the mean final error over seeds (1 - value for a higher-is-better metric, the
value itself otherwise; every metric here lies in [0, 1]), `queries` is the median over seeds of the
oracle calls to close half the gap plus one (so a method that needs none costs 1; a seed that never
reaches it counts as infinite, so the median is finite only when most seeds reach it). The ratio to
the problem's best cost is r; the profile rho(tau) is the share of problems with r <= tau, and the
score is its mean height over 1 <= tau <= TAU_MAX, i.e. the mean of max(0, TAU_MAX - r) / (TAU_MAX - 1):
1 when a method is best everywhere, 0 when it is never within TAU_MAX of the best. TAU_MAX = 4 follows
AlgoPerf's r_max; it is our choice of reference, not the MetricOpt paper's.
"""

from __future__ import annotations

import math

FRACTIONS = (0.25, 0.5, 0.75)
TAU_MAX = 4.0
SIGNS = {"higher": 1.0, "lower": -1.0}
MEASURES = {
    "final": "final error (1 - metric, or the metric when lower is better)",
    "queries": "oracle calls to 50% of the gap, +1",
}


def targets_reached(frame, curves):
    """One row per (task, target, method row, seed, fraction): the gap, the target value, and the steps
    and queries at which the method's anytime curve first reached it (nan: never, or no gap)."""
    import pandas as pd

    tests = frame[(frame["record"] == "cell") & (frame["split"] == "test") & (frame["metric"] == frame["target"])]
    tests = tests[tests["status"] == "ok"]
    rows = []
    for (task, target, seed), group in tests.groupby(["task_label", "target", "seed"], sort=True):
        direction = group["direction"].iloc[0]
        sign = SIGNS[direction]
        start = float(frame[(frame["split"] == "pretrained") & (frame["task_label"] == task) & (frame["seed"] == seed)
                            & (frame["metric"] == target)]["value"].iloc[0])  # fmt: skip
        best = max(sign * v for v in group["value"]) * sign
        gap = sign * (best - start)
        for r in group.itertuples(index=False):
            curve = curves[(curves["cell_id"] == r.cell_id) & (curves["metric"] == target)].sort_values("step")
            for fraction in FRACTIONS:
                goal = start + fraction * (best - start)
                steps = queries = math.nan
                if gap > 0:
                    hit = curve[sign * (curve["value"] - goal) >= -1e-12]
                    hit = hit[hit["step"] > 0]
                    if len(hit):
                        steps, queries = float(hit["step"].iloc[0]), float(hit["queries"].iloc[0])
                rows.append(
                    {
                        "task": task, "target": target, "direction": direction, "row": r.row, "method": r.method_label,
                        "seed": seed, "fraction": fraction, "start": start, "best": best, "gap": gap, "goal": goal,
                        "has_curve": len(curve) > 0, "steps_to_target": steps, "queries_to_target": queries,
                    }
                )  # fmt: skip
    return pd.DataFrame(rows)


def costs(frame, reached) -> dict[str, dict[tuple[str, str], dict[str, float]]]:
    """{measure: {(task, target): {method: cost}}} for the profiles (see the module's docstring)."""
    tests = frame[(frame["record"] == "cell") & (frame["split"] == "test") & (frame["metric"] == frame["target"])]
    tests = tests[tests["status"] == "ok"]
    out: dict[str, dict] = {"final": {}, "queries": {}}
    for (task, target, method), group in tests.groupby(["task_label", "target", "method_label"], sort=True):
        errors = [1.0 - v if d == "higher" else v for v, d in zip(group["value"], group["direction"], strict=True)]
        out["final"].setdefault((task, target), {})[method] = math.fsum(errors) / len(errors)
    if reached is not None and len(reached):
        half = reached[(reached["fraction"] == 0.5) & reached["has_curve"] & (reached["gap"] > 0)]
        for (task, target, method), group in half.groupby(["task", "target", "method"], sort=True):
            values = sorted(math.inf if q != q else q + 1.0 for q in group["queries_to_target"])
            out["queries"].setdefault((task, target), {})[method] = _median(values)
    return out


def _median(values: list[float]) -> float:
    n = len(values)
    middle = n // 2
    if n % 2:
        return values[middle]
    low, high = values[middle - 1], values[middle]
    return math.inf if math.isinf(high) else (low + high) / 2


def ratios(costs_by_problem: dict[tuple, dict[str, float]]) -> dict[str, list[float]]:
    """{method: [r per problem]}: its cost over the problem's best (1 = best; inf = never reached or
    infinitely worse; a problem a method was not run on counts as inf)."""
    methods = sorted({m for by_method in costs_by_problem.values() for m in by_method})
    out: dict[str, list[float]] = {m: [] for m in methods}
    for by_method in costs_by_problem.values():
        best = min(by_method.values())
        for method in methods:
            cost = by_method.get(method, math.inf)
            if math.isinf(best) or math.isinf(cost):
                ratio = math.inf
            elif best == 0:
                ratio = 1.0 if cost == 0 else math.inf
            else:
                ratio = cost / best
            out[method].append(ratio)
    return out


def profile(ratio_list: list[float], tau: float) -> float:
    """rho(tau): the share of problems whose ratio is at most tau."""
    return sum(r <= tau for r in ratio_list) / len(ratio_list) if ratio_list else math.nan


def score(ratio_list: list[float], tau_max: float = TAU_MAX) -> float:
    """The profile's mean height over [1, tau_max] (closed form of the integral of a step function)."""
    if not ratio_list:
        return math.nan
    return sum(max(0.0, tau_max - r) for r in ratio_list) / (len(ratio_list) * (tau_max - 1.0))


def summary(frame, reached):
    """One row per (measure, method): problems, problems where it is best, score."""
    import pandas as pd

    rows = []
    for measure, by_problem in costs(frame, reached).items():
        for method, rs in ratios(by_problem).items():
            best_on = sum(r == 1.0 for r in rs)
            rows.append({"measure": measure, "method": method, "problems": len(rs), "best_on": best_on, "score": score(rs)})
    return pd.DataFrame(rows, columns=["measure", "method", "problems", "best_on", "score"])


def targets_markdown(reached) -> str:
    """Per (task, target, method): steps and queries to 25/50/75% of the gap (median over seeds; k/n reached)."""
    if reached is None or not len(reached) or not reached["has_curve"].any():
        return "No anytime curves in these records (the suite's `anytime` key is off).\n"
    header = ["task", "target", "method"] + [f"{int(f * 100)}%: steps / queries (reached)" for f in FRACTIONS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    with_curves = reached[reached["has_curve"]]
    for (task, target, method), group in with_curves.groupby(["task", "target", "row"], sort=True):
        cells = []
        for fraction in FRACTIONS:
            at = group[(group["fraction"] == fraction) & (group["gap"] > 0)]
            if not len(at):
                cells.append("no gap")
                continue
            steps = sorted(math.inf if v != v else v for v in at["steps_to_target"])
            queries = sorted(math.inf if v != v else v for v in at["queries_to_target"])
            shown = lambda v: "never" if math.isinf(v) else f"{v:g}"
            reached_n = sum(not math.isinf(v) for v in steps)
            cells.append(f"{shown(_median(steps))} / {shown(_median(queries))} ({reached_n}/{len(steps)})")
        lines.append("| " + " | ".join([task, target, method, *cells]) + " |")
    return "\n".join(lines) + "\n\n" + TARGETS_CAPTION + "\n"


TARGETS_CAPTION = (
    "Steps and oracle calls (queries: every account but steps) at which a method's anytime test curve first closed 25, 50 "
    "and 75% of the gap between the seed's pretrained checkpoint and the best final value any method reached on that seed "
    "(medians over seeds, `never` when most seeds did not; reached: seeds that did). The curve is evaluated at "
    "log-spaced points, so a value is the first such point at or past the target. 'no gap': no method improved on "
    "the start. The runner's evaluations are not counted in the method's cost."
)


def profiles_markdown(summary_frame) -> str:
    if summary_frame is None or not len(summary_frame):
        return ""
    lines = ["| measure | method | score | best on | problems |", "|---|---|---|---|---|"]
    for r in summary_frame.sort_values(["measure", "score"], ascending=[True, False]).itertuples(index=False):
        lines.append(f"| {r.measure} | {r.method} | {r.score:.3f} | {r.best_on} | {r.problems} |")
    return "\n".join(lines) + "\n\n" + PROFILES_CAPTION + "\n"


PROFILES_CAPTION = (
    "Performance profiles over the (task, target) problems (Dolan & Moré). final: mean final error over seeds; queries: "
    "median oracle calls (+1) to close half the gap, infinite where most seeds never do. Score: the profile's mean "
    f"height over 1 <= tau <= {TAU_MAX:g} (1: best on every problem; 0: never within {TAU_MAX:g}x of the best); "
    f"tau_max = {TAU_MAX:g} follows AlgoPerf, our choice."
)
