"""MetricOpt's registered variants in cells, at small options: the stage meta-trains the value function
(and the learned rule) on its own budget, finetuning spends 2 x pairs batch queries per step, the
diagnostics are logged, the ablations drop what they name, the same seed gives the same run, and a
stage built on one task is transferred to another (by folder, stage id or MLflow run id)."""

from __future__ import annotations

import json
import re

import pytest
from metricbench.bench.core.budget import Budget
from metricbench.bench.core.errors import UsageError
from metricbench.bench.run.cell import CellEnv, run_cell, write_record
from metricbench.bench.run.runner import check_stage_sources
from metricbench.bench.run.suite import load_suite
from metricbench.methods import METHODS

SMALL = {
    "trajectories": 3,
    "trajectory_steps": 4,
    "meta_steps": 10,
    "pairs": 2,
    "refine_steps": 2,
    "rule_meta_steps": 5,
    "rule_unroll": 3,
}


def _cell(method="metricopt-adam", task="digits", seed=0, **options):
    (cell,) = load_suite("smoke").select(tasks=[task], methods=["surrogate"]).cells()
    resolved = METHODS.entry(method).resolve_options("method", {**SMALL, **options})
    changes = {"method": method, "method_options": resolved, "budget": Budget(steps=5, queries=0), "seed": seed}
    return type(cell)(**{**cell.__dict__, **changes})


def test_metricopt_meta_trains_in_a_stage_and_finetunes_the_adapters_on_batch_queries(tmp_path, checkpoint_cache):
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache))
    record = run_cell(_cell(), env)
    assert record["status"] == "ok", record.get("traceback")
    stage = record["stage"]
    assert stage["spent"]["steps"]["calls"] == 3 * 4 and stage["spent"]["batch_queries"]["calls"] == 3 * 2
    assert "heldout_spearman" in stage["logs"]
    spent = {account: v["calls"] for account, v in record["spent"].items()}
    assert spent == {"steps": 5, "queries": 0, "batch_queries": 5 * 4, "batch_scores": 0, "stats": 0}
    logs = record["history"]["logs"]
    for name in (
        "metricopt_value_spearman",
        "metricopt_value_informative",
        "metricopt_guide_cosine",
        "metricopt_evaluation_seconds",
    ):
        assert name in logs, name
    again = run_cell(_cell(), env)
    assert again["stage"]["built_here"] is False and again["metrics"] == record["metrics"]


@pytest.mark.parametrize(
    "method, has_stage, has_value",
    [("metricopt-no-meta", False, True), ("guided-es-loss", False, False), ("metricopt-no-oe", True, True)],
)
def test_the_ablations_drop_what_they_name(tmp_path, checkpoint_cache, method, has_stage, has_value):
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache))
    record = run_cell(_cell(method), env)
    assert record["status"] == "ok", record.get("traceback")
    assert ("stage" in record) == has_stage
    assert ("metricopt_value_spearman" in record["history"]["logs"]) == has_value
    assert record["method_options"] == METHODS.entry(method).resolve_options("method", SMALL)


def test_the_variants_differ_only_in_their_defaults():
    adam, sgd, learned = (
        METHODS.entry(n).resolve_options("method", {}) for n in ("metricopt-adam", "metricopt-sgd", "metricopt-learned")
    )
    assert (adam["optimizer"], sgd["optimizer"], learned["optimizer"]) == ("adam", "sgd", "learned")
    assert {k: v for k, v in sgd.items() if k != "optimizer"} == {k: v for k, v in adam.items() if k != "optimizer"}
    no_oe = METHODS.entry("metricopt-no-oe").resolve_options("method", {})
    assert {k for k in adam if adam[k] != no_oe[k]} == {"ordinal"}


def test_the_learned_variant_meta_trains_its_rule_in_the_stage_and_steps_with_it(tmp_path, checkpoint_cache):
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache))
    record = run_cell(_cell("metricopt-learned"), env)
    assert record["status"] == "ok", record.get("traceback")
    assert {"rule_first_meta_loss", "rule_final_meta_loss"} <= set(record["stage"]["logs"])
    adam = run_cell(_cell("metricopt-adam"), env)  # its stage has no rule: a different stage
    assert adam["stage"]["id"] != record["stage"]["id"] and adam["metrics"] != record["metrics"]
    untrained = run_cell(_cell("metricopt-learned", meta=False), env)
    assert untrained["status"] == "ok" and any("untrained" in note for note in untrained["notes"])


def test_a_stage_transfers_to_another_task_by_folder_stage_id_and_run_id(tmp_path, checkpoint_cache):
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache))
    source = run_cell(_cell(), env)  # digits: a convolutional network's adapters
    assert source["status"] == "ok", source.get("traceback")
    (folder,) = [f for f in (checkpoint_cache / "stages").iterdir() if f.name.endswith(source["stage"]["id"])]
    source["mlflow_run_id"] = "0123456789abcdef0123456789abcdef"
    write_record(tmp_path, source)
    results = []
    for reference in (str(folder), str(folder / "value_function.pt"), source["stage"]["id"], source["mlflow_run_id"]):
        cell = _cell(task="breast-cancer", value_from=reference)  # an MLP's adapters: another phi size
        check_stage_sources([cell], env)
        record = run_cell(cell, env)
        assert record["status"] == "ok", record.get("traceback")
        stage = record["stage"]
        assert stage["id"] == source["stage"]["id"] and stage["transferred_from"] == reference and not stage["built_here"]
        assert stage["spent"] == source["stage"]["spent"]  # what building it cost is shown where it is reused
        results.append(record["metrics"])
    assert all(r == results[0] for r in results)
    with pytest.raises(UsageError, match="stage 'nowhere' not found"):
        check_stage_sources([_cell(task="breast-cancer", value_from="nowhere")], env)


def test_a_stage_meta_trains_across_the_tasks_a_suite_names(tmp_path, checkpoint_cache):
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache))
    cell = _cell(task="breast-cancer", meta_tasks="synthetic-binary,breast-cancer")
    check_stage_sources([cell], env)
    record = run_cell(cell, env)
    assert record["status"] == "ok", record.get("traceback")
    stage = record["stage"]
    assert stage["spent"]["steps"]["calls"] == 2 * 3 * 4  # two tasks x three trajectories x four steps
    (folder,) = [f for f in (checkpoint_cache / "stages").iterdir() if f.name.endswith(stage["id"])]
    identity = json.loads((folder / "stage.json").read_text())["identity"]
    assert [t["task"] for t in identity["meta_tasks"]] == ["synthetic-binary", "breast-cancer"]
    assert identity["meta_tasks"][0]["checkpoint"] != identity["meta_tasks"][1]["checkpoint"] == identity["checkpoint"]
    alone = run_cell(_cell(task="breast-cancer"), env)
    assert alone["stage"]["id"] != stage["id"]


@pytest.mark.parametrize(
    "meta_tasks, message",
    [("digitz", "meta-training task 'digitz' is not registered (did you mean 'digits'?)"), ("glyphs-retrieval", "has no metric")],
)
def test_a_meta_training_task_that_cannot_serve_is_refused_before_anything_runs(tmp_path, meta_tasks, message):
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(UsageError, match=re.escape(message)):
        check_stage_sources([_cell(meta_tasks=meta_tasks)], env)
    assert not (tmp_path / "cache").exists()
