"""Starting weights named by a task option: a checkpoint file (its sha256 is the checkpoint's identity),
public weights that fail at once and in one line when offline, and a corrupt dataset found mid-run."""

from __future__ import annotations

import json
import time

import pytest
import torch
from metricbench.bench.cli import main
from metricbench.bench.core.errors import UsageError
from metricbench.bench.run.artifacts import ArtifactStore
from metricbench.bench.run.pretrain import checkpoint_config, pretrained_checkpoint
from metricbench.tasks import create_task
from metricbench.tasks.kinds.base import DataPaths


@pytest.fixture
def a9a_data(tmp_path):
    data = tmp_path / "data"
    assert main(["data", "fixture", "a9a", "--data-dir", str(data)]) == 0
    return data


def saved_model(path, seed: int) -> dict:
    torch.manual_seed(seed)
    state = create_task("a9a").build_model().state_dict()
    torch.save({"state_dict": state}, path)
    return state


def test_a_checkpoint_file_is_the_start_and_its_sha256_its_identity(tmp_path, a9a_data):
    weights = tmp_path / "start.pt"
    state = saved_model(weights, seed=3)
    task = create_task("a9a", weights=str(weights))
    splits = task.load_splits(DataPaths(a9a_data, tmp_path / "gen"))
    store = ArtifactStore(tmp_path / "cache" / "pretrained")
    loaded, info = pretrained_checkpoint(task, splits, seed=0, device="cpu", store=store)
    assert all(torch.equal(loaded[k], state[k]) for k in state) and info["built"]
    _, again = pretrained_checkpoint(task, splits, seed=1, device="cpu", store=store)
    assert not again["built"]  # every seed starts from the same given weights
    first = checkpoint_config(task, 0, "cpu")
    moved = tmp_path / "moved.pt"
    weights.rename(moved)
    assert checkpoint_config(create_task("a9a", weights=str(moved)), 0, "cpu")["weights"] == first["weights"]
    saved_model(moved, seed=4)  # the same path, other contents: another checkpoint
    assert checkpoint_config(create_task("a9a", weights=str(moved)), 0, "cpu")["weights"] != first["weights"]


def test_weights_that_do_not_fit_the_model_are_one_line(tmp_path, a9a_data):
    weights = tmp_path / "other.pt"
    torch.manual_seed(0)
    torch.save(create_task("a9a", hidden=8).build_model().state_dict(), weights)
    task = create_task("a9a", weights=str(weights))
    splits = task.load_splits(DataPaths(a9a_data, tmp_path / "gen"))
    with pytest.raises(UsageError, match=r"does not fit task 'a9a''s model.*size mismatch"):
        pretrained_checkpoint(task, splits, seed=0, device="cpu", store=ArtifactStore(tmp_path / "cache"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot be read by torch.load"):
        pretrained_checkpoint(
            create_task("a9a", weights=str(tmp_path / "junk.pt")), splits, 0, "cpu", ArtifactStore(tmp_path / "c2")
        )


@pytest.mark.parametrize(
    "option, words",
    [
        ('a9a.weights="missing.pt"', ["weights file 'missing.pt' not found"]),
        ('a9a.weights="torchvision:ResNet18_Weights.IMAGENET1K_V1"', ["not in torch's cache", "downloads are off"]),
        ('a9a.weights="timm:nasnetalarge.tf_in1k"', ["not in the Hugging Face cache", "downloads are off"]),
    ],
)
def test_unavailable_weights_stop_the_run_at_once_in_one_line(tmp_path, a9a_data, capsys, option, words):
    out = tmp_path / "out"
    started = time.perf_counter()
    code = main(["run", "paper-a9a", "--data-dir", str(a9a_data), "--out", str(out), "--task-option", option, "--quiet"])
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert all(word in err for word in words), err
    assert not out.exists()  # nothing was created
    assert seconds < 30  # generous for a loaded CI machine; offline it is well under a second of its own


@pytest.mark.parametrize(
    "argument, words",
    [
        ("a9a.weights", ["--task-option", "TASK.OPTION=VALUE"]),
        ("cifar10.depth=32", ["--task-option names task 'cifar10'", "its tasks: a9a"]),
        ("a9a.hiden=3", ["hiden", "hidden"]),
    ],
)
def test_bad_task_options_on_the_command_line_are_one_line(tmp_path, a9a_data, capsys, argument, words):
    code = main(["run", "paper-a9a", "--data-dir", str(a9a_data), "--out", str(tmp_path / "out"), "--task-option", argument])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert all(word in err for word in words), err


def test_a_corrupt_dataset_found_while_loading_stops_the_run_and_keeps_finished_cells(tmp_path, a9a_data, capsys):
    cifar = tmp_path / "cifar"
    assert main(["data", "fixture", "cifar10", "--data-dir", str(cifar)]) == 0
    for name in ("a9a", "a9a.t"):
        (cifar / name).write_bytes((a9a_data / name).read_bytes())
    batch = cifar / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:300])  # present (the check before the run passes) but truncated
    suite = tmp_path / "two.toml"
    suite.write_text(
        'name = "two"\ntasks = ["a9a", "cifar10"]\nmethods = ["surrogate"]\nseeds = 1\n[budget]\nsteps = 2\n'
        "[task_options.a9a]\npretrain_steps = 2\n[task_options.cifar10]\npretrain_steps = 2\n"
    )
    out = tmp_path / "out"
    code = main(["run", str(suite), "--data-dir", str(cifar), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "data_batch_2" in err and "truncated or corrupt" in err, err
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert [r["task"] for r in records] == ["a9a"] and records[0]["status"] == "ok"  # the finished cell stays
