"""The runner's anytime test curve: log-spaced marks, what a point holds, and that observing changes nothing."""

from __future__ import annotations

import json

import pytest
from metricbench.bench.run.anytime import log_marks, oracle_calls
from metricbench.bench.run.cell import run_cell
from metricbench.bench.run.runner import RunSettings, run_suite
from metricbench.bench.run.suite import load_suite, parse_suite


def test_log_marks_span_one_to_the_limit():
    assert log_marks(60, 8) == [1, 2, 3, 6, 10, 19, 33, 60]
    assert log_marks(1, 8) == [1]
    assert log_marks(0, 8) == []
    assert log_marks(5, 20) == [1, 2, 3, 4, 5]  # fewer distinct integers than points


def test_oracle_calls_count_every_account_but_steps():
    spent = {"steps": {"calls": 9, "examples": 0}, "queries": {"calls": 2, "examples": 5}, "batch_queries": [3, 30]}
    assert oracle_calls(spent) == 5


def test_suite_key_anytime():
    base = {"tasks": ["digits"], "methods": ["surrogate"]}
    assert parse_suite({**base, "anytime": True}, "s.toml", "s").anytime == 8
    assert parse_suite({**base, "anytime": 5}, "s.toml", "s").anytime == 5
    assert parse_suite(base, "s.toml", "s").anytime == 0
    with pytest.raises(Exception, match="key 'anytime' must be true, false or a number"):
        parse_suite({**base, "anytime": "yes"}, "s.toml", "s")


@pytest.mark.parametrize("method", ["surrogate", "es", "ala", "dab", "metricopt-adam"])
def test_the_test_curve_changes_no_result(method, cell_env):
    """Same seed, with and without the curve: the same final metrics, spending and val curve."""
    suite = load_suite("smoke").select(tasks=["breast-cancer"], methods=[method])
    observed = suite.cells()[0]
    assert observed.anytime == 4
    plain = suite.cells()[0].__class__(**{**observed.__dict__, "anytime": 0})
    assert plain.cell_id == observed.cell_id  # how a cell is observed is not part of its identity
    a, b = run_cell(observed, cell_env), run_cell(plain, cell_env)
    assert a["status"] == b["status"] == "ok", (a["reason"], b["reason"])
    assert a["metrics"] == b["metrics"]
    assert a["curves"] == b["curves"]
    assert {k: v["calls"] for k, v in a["spent"].items()} == {k: v["calls"] for k, v in b["spent"].items()}
    assert "anytime" not in b
    points = a["anytime"]
    assert points[0]["step"] == 0 and points[0]["queries"] == 0 and points[0]["metrics"] == a["pretrained"]["test"]
    assert points[-1]["step"] == a["steps"]["reported_steps"] and points[-1]["metrics"] == a["metrics"]
    steps = [p["step"] for p in points]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert [p["queries"] for p in points] == sorted(p["queries"] for p in points)
    assert all(set(p["metrics"]) == set(a["metrics"]) for p in points)
    assert a["anytime_seconds"] >= 0


def test_a_finished_cell_without_the_curve_runs_again_when_it_is_asked_for(tmp_path, checkpoint_cache, tracking_uri):
    suite = load_suite("smoke").select(tasks=["breast-cancer"], methods=["surrogate"])
    settings = RunSettings(out_dir=tmp_path, device="cpu", quiet=True, cache_dir=checkpoint_cache, tracking_uri=tracking_uri)
    suite.anytime = 0
    first = run_suite(suite, settings)
    assert first.computed == 1
    record = json.loads(next((tmp_path / "cells").glob("*.json")).read_text())
    assert "anytime" not in record
    suite.anytime = 4
    again = run_suite(suite, settings)
    assert again.computed == 1 and again.skipped == 0
    record_after = json.loads(next((tmp_path / "cells").glob("*.json")).read_text())
    assert record_after["metrics"] == record["metrics"] and len(record_after["anytime"]) >= 3
    assert run_suite(suite, settings).skipped == 1
