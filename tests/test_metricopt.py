"""MetricOpt in a cell (registered here by the test; its registered variants come later): the stage
meta-trains the value function on its own budget, finetuning spends 2 x pairs batch queries per step
and moves the adapters only, the diagnostics are logged, the ablations drop what they should, and the
same seed gives the same run."""

from __future__ import annotations

import pytest
from metricbench.bench.budget import Budget
from metricbench.bench.cell import CellEnv, run_cell
from metricbench.bench.suite import load_suite
from metricbench.methods import METHODS
from metricbench.methods.metricopt import METRICOPT_OPTIONS, MetricOpt

SMALL = {"trajectories": 3, "trajectory_steps": 4, "meta_steps": 10, "pairs": 2, "refine_steps": 2}


@pytest.fixture
def metricopt(temporary_method):
    temporary_method("test-metricopt", MetricOpt, METRICOPT_OPTIONS)


def _cell(**options):
    (cell,) = load_suite("smoke").select(tasks=["digits"], methods=["surrogate"]).cells()
    resolved = METHODS.entry("test-metricopt").resolve_options("method", {**SMALL, **options})
    return type(cell)(
        **{**cell.__dict__, "method": "test-metricopt", "method_options": resolved, "budget": Budget(steps=5, queries=0)}
    )


def test_metricopt_meta_trains_in_a_stage_and_finetunes_the_adapters_on_batch_queries(metricopt, tmp_path, checkpoint_cache):
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache))
    record = run_cell(_cell(), env)
    assert record["status"] == "ok", record.get("traceback")
    stage = record["stage"]
    assert stage["spent"]["steps"]["calls"] == 3 * 4 and stage["spent"]["batch_queries"]["calls"] == 3 * 2
    assert "heldout_spearman" in stage["logs"]
    spent = {account: v["calls"] for account, v in record["spent"].items()}
    assert spent == {"steps": 5, "queries": 0, "batch_queries": 5 * 4, "batch_scores": 0, "stats": 0}
    logs = record["history"]["logs"]
    for name in ("metricopt_value_spearman", "metricopt_value_informative", "metricopt_guide_cosine", "metricopt_es_seconds"):
        assert name in logs, name
    again = run_cell(_cell(), env)
    assert again["stage"]["built_here"] is False and again["metrics"] == record["metrics"]


@pytest.mark.parametrize(
    "options, has_stage, has_value",
    [({"meta": False}, False, True), ({"use_value": False}, False, False), ({"ordinal": False}, True, True)],
    ids=["no-meta", "guided-es-loss", "no-oe"],
)
def test_the_ablations_drop_what_they_name(metricopt, tmp_path, checkpoint_cache, options, has_stage, has_value):
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache))
    record = run_cell(_cell(**options), env)
    assert record["status"] == "ok", record.get("traceback")
    assert ("stage" in record) == has_stage
    assert ("metricopt_value_spearman" in record["history"]["logs"]) == has_value
