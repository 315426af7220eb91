"""Performance profiles and scores on a hand-made case; cost to target on hand-made curves."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from metricbench.bench.report import profiles


def test_ratios_profile_and_score_on_a_hand_made_case():
    costs = {
        ("p1", "m"): {"a": 1.0, "b": 2.0, "c": 8.0},
        ("p2", "m"): {"a": 3.0, "b": 1.5, "c": math.inf},  # c never reaches the target
        ("p3", "m"): {"a": 0.0, "b": 0.0, "c": 0.5},  # a best cost of 0: only another 0 ties it
    }
    r = profiles.ratios(costs)
    assert r == {"a": [1.0, 2.0, 1.0], "b": [2.0, 1.0, 1.0], "c": [8.0, math.inf, math.inf]}
    assert profiles.profile(r["a"], 1.0) == pytest.approx(2 / 3)
    assert profiles.profile(r["a"], 2.0) == 1.0
    assert profiles.profile(r["c"], 100.0) == pytest.approx(1 / 3)
    # mean over problems of max(0, 4 - r) / 3
    assert profiles.score(r["a"]) == pytest.approx((3 + 2 + 3) / 9)
    assert profiles.score(r["b"]) == pytest.approx((2 + 3 + 3) / 9)
    assert profiles.score(r["c"]) == 0.0
    # the closed form is the integral of the step function rho over [1, 4], divided by 3
    taus = [1 + 3 * (i + 0.5) / 30000 for i in range(30000)]
    assert sum(profiles.profile(r["a"], t) for t in taus) / len(taus) == pytest.approx(profiles.score(r["a"]), abs=1e-4)


def test_a_method_missing_from_a_problem_counts_as_never_reaching_it():
    r = profiles.ratios({("p1", "m"): {"a": 1.0, "b": 1.0}, ("p2", "m"): {"a": 2.0}})
    assert r["b"] == [1.0, math.inf]


def _frame(values, direction="higher"):
    rows = []
    for seed, (start, finals) in enumerate(values):
        for method, value in finals.items():
            cell = f"{method}-{seed}"
            common = dict(record="cell", task_label="t", target="m", metric="m", direction=direction, seed=seed, row=method,
                          method_label=method, cell_id=cell, status="ok")  # fmt: skip
            rows.append({**common, "split": "test", "value": value})
            rows.append({**common, "split": "pretrained", "value": start})
    return pd.DataFrame(rows)


def _curves(points):
    return pd.DataFrame(
        [{"cell_id": cell, "metric": "m", "step": s, "queries": q, "value": v} for cell, pts in points.items() for s, q, v in pts]
    )


def test_cost_to_target_on_hand_made_curves():
    frame = _frame([(0.50, {"a": 0.70, "b": 0.60})])  # gap 0.2: targets 0.55, 0.60, 0.65
    curves = _curves(
        {
            "a-0": [(0, 0, 0.50), (1, 10, 0.56), (4, 40, 0.66), (8, 80, 0.70)],
            "b-0": [(0, 0, 0.50), (2, 0, 0.52), (8, 0, 0.60)],
        }
    )
    reached = profiles.targets_reached(frame, curves).set_index(["row", "fraction"])
    assert reached.loc[("a", 0.25), ["steps_to_target", "queries_to_target"]].tolist() == [1, 10]
    assert reached.loc[("a", 0.5), ["steps_to_target", "queries_to_target"]].tolist() == [4, 40]
    assert reached.loc[("a", 0.75), "steps_to_target"] == 4
    assert reached.loc[("b", 0.5), ["steps_to_target", "queries_to_target"]].tolist() == [8, 0]
    assert math.isnan(reached.loc[("b", 0.75), "steps_to_target"])
    cost = profiles.costs(frame, profiles.targets_reached(frame, curves))
    assert cost["final"][("t", "m")] == pytest.approx({"a": 0.30, "b": 0.40})
    assert cost["queries"][("t", "m")] == {"a": 41.0, "b": 1.0}  # b needs no oracle call: cost 1


def test_lower_is_better_and_no_gap():
    frame = _frame([(0.10, {"a": 0.06, "b": 0.12}), (0.10, {"a": 0.11, "b": 0.12})], direction="lower")
    curves = _curves({"a-0": [(0, 0, 0.10), (5, 5, 0.08), (9, 9, 0.06)], "b-0": [(0, 0, 0.10), (9, 9, 0.12)],
                      "a-1": [(0, 0, 0.10), (9, 9, 0.11)], "b-1": [(0, 0, 0.10), (9, 9, 0.12)]})  # fmt: skip
    reached = profiles.targets_reached(frame, curves)
    seed0 = reached[(reached["seed"] == 0) & (reached["row"] == "a")].set_index("fraction")
    assert seed0.loc[0.5, "steps_to_target"] == 5 and seed0.loc[0.75, "steps_to_target"] == 9
    seed1 = reached[reached["seed"] == 1]
    assert (seed1["gap"] <= 0).all() and seed1["steps_to_target"].isna().all()  # nobody improved: no target
    text = profiles.targets_markdown(reached)
    assert "| t | m | a | 5 / 5 (1/1) | 5 / 5 (1/1) | 9 / 9 (1/1) |" in text  # seed 1 has no gap: not counted
