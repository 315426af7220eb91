"""Each paper suite end to end on its task's fixture through the command line: `metricbench run paper-TASK
--data-dir FIXTURE --steps 2`, with options that keep it to seconds on a CPU (one seed, a two-step
pretraining, small images, no public weights), logged to MLflow and in the table beside the published
numbers."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.paper_options import SMALL_OPTIONS
from metricbench.bench.cli import main
from metricbench.tasks import create_task

SMALL = {
    task: ([] if task == "imagenet" else [f"{task}.pretrain_steps=2"])
    + [f"{task}.{name}={json.dumps(value)}" for name, value in options.items()]
    for task, options in SMALL_OPTIONS.items()
}  # imagenet starts from given weights: a checkpoint file (below)


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("task", list(SMALL))
def test_paper_suite_runs_end_to_end_on_its_fixture(task, tmp_path, tracking_uri, checkpoint_cache, capsys):
    data_dir, out = tmp_path / "data", tmp_path / "out"
    assert main(["data", "fixture", task, "--data-dir", str(data_dir)]) == 0
    options = list(SMALL[task])
    if task == "imagenet":  # ImageNet starts from given weights: here a file saved from a seeded model
        weights = tmp_path / "nasnet-a-mobile.pt"
        torch.manual_seed(0)
        torch.save({"state_dict": create_task("imagenet", image_size=64).build_model().state_dict()}, weights)
        options.append(f'imagenet.weights="{weights}"')
    argv = ["run", f"paper-{task}", "--data-dir", str(data_dir), "--steps", "2", "--seeds", "1", "--out", str(out)]
    argv += ["--tracking-uri", tracking_uri, "--cache-dir", str(checkpoint_cache), "--quiet"]
    for option in options:
        argv += ["--task-option", option]
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert records and all(r["status"] == "ok" and r["task"] == task for r in records)
    assert all(r.get("mlflow_run_id") for r in records)
    assert f"| {task} " in (out / "table.md").read_text() or f" {task} " in (out / "table.md").read_text()
    capsys.readouterr()
    assert main(["table", "--out", str(out), "--published"]) == 0
    table = capsys.readouterr().out
    if task in ("cifar10", "a9a", "covtype", "sop", "imagenet"):
        assert "(published)" in table and "third-party extraction" in table or "architecture reference" in table
