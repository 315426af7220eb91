"""The runner's anytime curve: the model's test metrics at log-spaced points of a method's spending.

While a method finetunes, the harness evaluates the model on the sealed test split whenever the step
count, or the number of calls the method has made to the metric oracle (every account but `steps`:
full-val queries, batch queries, batch scores, statistics), crosses the next of `points` log-spaced
marks between 1 and the budget's limit. Evaluations happen between steps only, never inside one (an
ES method perturbs the model while it queries candidates), and in eval mode without gradients or
random numbers, so the curve observes the run without changing it (a test checks the final metrics
are identical with and without it). The method never sees a point: the curve is kept here and in the
harness's record, like the val curve, and its evaluations are timed apart as the runner's cost.

Each point is `{"step", "queries", "spent": {account: [calls, examples]}, "metrics": {...}}`; the
cell's record holds the list under `anytime`, the pretrained checkpoint as step 0 and the final
model as the last point.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from metricbench.bench.core.budget import ACCOUNTS

ORACLE_ACCOUNTS = tuple(a for a in ACCOUNTS if a != "steps")  # what the query axis counts


def log_marks(limit: int, points: int) -> list[int]:
    """Up to `points` distinct integers log-spaced from 1 to `limit` (both included when `limit` >= 1)."""
    if limit < 1 or points < 1:
        return []
    if points == 1 or limit == 1:
        return [limit]
    ratio = math.log(limit) / (points - 1)
    return sorted({min(limit, max(1, round(math.exp(ratio * i)))) for i in range(points)})


def oracle_calls(spent: dict) -> int:
    """Calls to the metric oracle in a ledger's `to_dict()` (or a point's `spent`)."""
    total = 0
    for account in ORACLE_ACCOUNTS:
        value = spent.get(account)
        if value is None:
            continue
        total += value["calls"] if isinstance(value, dict) else value[0]
    return total


class AnytimeCurve:
    """Evaluates the model on test at log-spaced steps and oracle calls; owned by the harness."""

    def __init__(self, evaluate: Callable[[], dict[str, float]], spending: Callable[[], dict], budget, points: int):
        self.evaluate = evaluate
        self.spending = spending
        self.step_marks = log_marks(budget.steps, points)
        self.query_marks = log_marks(sum(budget.limit(a) for a in ORACLE_ACCOUNTS), points)
        self.points: list[dict] = []
        self.seconds = 0.0
        self._next_step = 0  # index into step_marks
        self._next_query = 0

    def start(self, metrics: dict[str, float]) -> None:
        """Step 0: the pretrained checkpoint's test metrics, computed by the runner already."""
        self.points.append(self._point(0, self.spending(), metrics))

    def after_step(self, step: int) -> None:
        spent = self.spending()
        calls = oracle_calls(spent)
        due = False
        while self._next_step < len(self.step_marks) and step >= self.step_marks[self._next_step]:
            self._next_step += 1
            due = True
        while self._next_query < len(self.query_marks) and calls >= self.query_marks[self._next_query]:
            self._next_query += 1
            due = True
        if due:
            started = time.perf_counter()
            metrics = self.evaluate()
            self.seconds += time.perf_counter() - started
            self.points.append(self._point(step, spent, metrics))

    def finish(self, step: int, metrics: dict[str, float]) -> None:
        """The final model's test metrics (computed by the runner anyway) as the last point."""
        if not self.points or self.points[-1]["step"] != step:
            self.points.append(self._point(step, self.spending(), metrics))

    @staticmethod
    def _point(step: int, spent: dict, metrics: dict[str, float]) -> dict:
        return {
            "step": step,
            "queries": oracle_calls(spent),
            "spent": {a: [spent[a]["calls"], spent[a]["examples"]] for a in ACCOUNTS if a in spent},
            "metrics": dict(metrics),
        }
