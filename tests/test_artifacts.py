"""The artifact store: built once per key, shared by processes, never half-written, never loaded corrupt;
and the pretrained checkpoints kept in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace

import metricbench.bench.run.artifacts as artifacts
import pytest
import torch
from metricbench.bench.core.files import key_digest
from metricbench.bench.run.artifacts import ArtifactStore
from metricbench.bench.run.pretrain import checkpoint_key, pretrained_checkpoint
from metricbench.tasks import create_task
from metricbench.tasks.kinds.base import DataPaths

KEY = {"name": "example", "size": 3}
PAYLOAD = bytes(range(256)) * 64


@pytest.fixture(autouse=True)
def new_invocation(monkeypatch):
    """Start each test with no verified artifacts; calling it forgets them again, as a new run would."""
    monkeypatch.setattr(artifacts, "_verified", {})
    return artifacts._verified.clear


def payload_build(builds: list, payload: bytes = PAYLOAD):
    """A build function that writes a file and a file in a subfolder, counting its calls in `builds`."""

    def build(folder):
        builds.append(folder)
        (folder / "payload.bin").write_bytes(payload)
        (folder / "notes").mkdir()
        (folder / "notes" / "readme.txt").write_text("made by a test\n")
        return {"length": len(payload), "shape": (2, 3)}

    return build


def test_an_artifact_is_built_once_and_then_reused(tmp_path, new_invocation):
    store, builds = ArtifactStore(tmp_path), []
    first = store.get_or_build("demo", KEY, payload_build(builds), label="my demo/1")
    again = store.get_or_build("demo", KEY, payload_build(builds), label="my demo/1")
    assert (first.built, again.built, len(builds)) == (True, False, 1)
    assert first.info == again.info == {"length": len(PAYLOAD), "shape": [2, 3]}  # as JSON gives it back
    assert first.path == again.path == store.path("demo", KEY, "my demo/1") == tmp_path / "demo" / f"my_demo_1-{key_digest(KEY)}"
    assert first.file("payload.bin").read_bytes() == PAYLOAD
    new_invocation()
    later = ArtifactStore(tmp_path).get_or_build("demo", dict(reversed(KEY.items())), payload_build(builds), label="my demo/1")
    assert later.built is False and later.info == first.info and len(builds) == 1
    assert ArtifactStore(tmp_path).get("demo", KEY, "my demo/1") == later

    other = store.get_or_build("demo", {**KEY, "size": 4}, payload_build(builds, b"other"), label="my demo/1")
    assert other.built is True and other.path != first.path and len(builds) == 2
    assert other.file("payload.bin").read_bytes() == b"other" and first.file("payload.bin").read_bytes() == PAYLOAD
    assert store.get("demo", {"name": "never built"}) is None


def test_a_failing_build_stores_nothing_and_the_next_call_builds(tmp_path):
    store = ArtifactStore(tmp_path)

    def failing(folder):
        (folder / "payload.bin").write_bytes(PAYLOAD[:100])
        raise RuntimeError("out of memory halfway")

    with pytest.raises(RuntimeError, match="halfway"):
        store.get_or_build("demo", KEY, failing, label="demo")
    assert store.get("demo", KEY, "demo") is None
    assert [p.name for p in (tmp_path / "demo").iterdir()] == [f"demo-{key_digest(KEY)}.lock"]
    builds = []
    assert store.get_or_build("demo", KEY, payload_build(builds), label="demo").built and len(builds) == 1


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-10])


@pytest.mark.parametrize(
    ("damage", "victim"),
    [(_flip_a_byte, "payload.bin"), (_truncate, "payload.bin"), (os.remove, "manifest.json"), (os.remove, "notes/readme.txt")],
    ids=["flipped-byte", "truncated", "deleted-manifest", "deleted-file"],
)
def test_a_corrupt_artifact_is_reported_once_and_rebuilt(tmp_path, capsys, new_invocation, damage, victim):
    store, builds = ArtifactStore(tmp_path), []
    built = store.get_or_build("demo", KEY, payload_build(builds))
    new_invocation()  # the damage happens between two runs, as a disk or a copy would do it
    damage(built.path / victim)
    capsys.readouterr()
    assert store.get("demo", KEY) is None
    rebuilt = store.get_or_build("demo", KEY, payload_build(builds))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"metricbench: warning: artifact {built.path} is corrupt ({victim}:")
    assert err[0].endswith("; rebuilding it")
    assert rebuilt.built and len(builds) == 2 and rebuilt.info == built.info
    assert rebuilt.file("payload.bin").read_bytes() == PAYLOAD and rebuilt.file("notes/readme.txt").exists()
    new_invocation()
    assert not store.get_or_build("demo", KEY, payload_build(builds)).built and capsys.readouterr().err == ""
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == sorted([built.path.name, f"{built.path.name}.lock"])


def test_a_folder_holding_another_keys_artifact_is_not_taken_for_this_key(tmp_path, capsys):
    store, builds, other_key = ArtifactStore(tmp_path), [], {**KEY, "size": 4}
    store.get_or_build("demo", KEY, payload_build(builds)).path.rename(
        store.path("demo", other_key)
    )  # a folder copied under another name
    assert store.get("demo", other_key) is None
    assert store.get_or_build("demo", other_key, payload_build(builds, b"other")).file("payload.bin").read_bytes() == b"other"
    assert len(builds) == 2 and "(manifest.json: written for another key)" in capsys.readouterr().err


def test_a_process_hashes_an_artifact_once_but_still_notices_a_file_replaced_since(tmp_path, monkeypatch, capsys):
    store, builds = ArtifactStore(tmp_path), []
    store.get_or_build("demo", KEY, payload_build(builds))
    artifacts._verified.clear()
    hashed = []
    real = artifacts._sha256
    monkeypatch.setattr(artifacts, "_sha256", lambda path, *a, **k: (hashed.append(path.name), real(path, *a, **k))[1])
    for _ in range(3):
        assert store.get("demo", KEY) is not None
    assert sorted(hashed) == ["payload.bin", "readme.txt"]
    _truncate(store.path("demo", KEY) / "payload.bin")
    assert store.get_or_build("demo", KEY, payload_build(builds)).built and len(builds) == 2
    assert "payload.bin" in capsys.readouterr().err


def test_a_leftover_temporary_folder_is_not_an_artifact_and_its_builder_clears_it(tmp_path):
    # what a builder killed just before its rename leaves: a complete folder under a `.tmp-` name
    complete = ArtifactStore(tmp_path / "elsewhere").get_or_build("demo", KEY, payload_build([]), label="demo")
    store, name = ArtifactStore(tmp_path), complete.path.name
    (tmp_path / "demo").mkdir()
    leftover = tmp_path / "demo" / f".tmp-{name}-0123456789ab"
    not_ours = tmp_path / "demo" / f".tmp-other-{key_digest({'x': 1})}-0123456789ab"
    for folder in (leftover, not_ours):
        complete.path.rename(folder)
        complete = ArtifactStore(tmp_path / "elsewhere").get_or_build("demo", KEY, payload_build([]), label="demo")
    assert store.get("demo", KEY, "demo") is None
    builds = []
    assert store.get_or_build("demo", KEY, payload_build(builds), label="demo").built and len(builds) == 1
    assert not leftover.exists() and not_ours.exists()  # another key's builder may still be at work


# a child process: waits until all its siblings are ready, then asks the store for one key
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from metricbench.bench.run.artifacts import ArtifactStore

    root, log, name, siblings, wait_for = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    (root / f"ready-{name}").touch()
    while len(list(root.glob("ready-*"))) < siblings:
        time.sleep(0.01)

    def build(folder):
        with open(log, "a") as handle:
            handle.write(f"build {name}\\n")
        (root / f"building-{name}").touch()
        deadline = time.time() + 0.5
        while time.time() < deadline or (wait_for and not (root / f"building-{wait_for}").exists()):
            if time.time() > deadline + 10:
                raise SystemExit(f"{name} built alone: the build of {wait_for} never started")
            time.sleep(0.01)
        (folder / "payload.txt").write_text(f"made by {name}")
        return {"builder": name}

    artifact = ArtifactStore(root / "store").get_or_build("demo", {"key": sys.argv[6]}, build, label="demo")
    print(json.dumps({"built": artifact.built, "info": artifact.info, "text": artifact.file("payload.txt").read_text()}))
    """
)


def _run_together(tmp_path, script, argument_lists, env=None):
    """Start one child per argument list at once; each child's JSON output, in order."""
    children = [
        subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for args in argument_lists
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
        results.append(json.loads(out))
    return results


def test_two_processes_asking_for_one_key_at_once_build_it_once(tmp_path):
    log = tmp_path / "builds.log"
    a, b = _run_together(tmp_path, CHILD, [(tmp_path, log, name, 2, "", "same") for name in ("a", "b")])
    assert len(log.read_text().splitlines()) == 1
    assert sorted([a["built"], b["built"]]) == [False, True]
    assert a["info"] == b["info"] and a["text"] == b["text"] == f"made by {a['info']['builder']}"


def test_two_processes_building_different_keys_do_not_wait_for_each_other(tmp_path):
    log = tmp_path / "builds.log"
    # each build waits until the other one has started: were one blocked by the other's lock, it would fail
    a, b = _run_together(tmp_path, CHILD, [(tmp_path, log, "a", 2, "b", "first"), (tmp_path, log, "b", 2, "a", "second")])
    assert a["built"] and b["built"] and a["info"] != b["info"]
    assert sorted(log.read_text().splitlines()) == ["build a", "build b"]


# ---- pretrained checkpoints in the store

# a child process pretraining the task `tiny_digits` gives (from its options and recipe, so the child
# imports the digits task alone: loading every registered task would double the test's time)
PRETRAIN_CHILD = textwrap.dedent(
    """
    import hashlib, json, os, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from metricbench.bench.run.artifacts import ArtifactStore
    from metricbench.bench.run.pretrain import pretrained_checkpoint
    from metricbench.bench.core.training import TrainRecipe
    from metricbench.tasks.kinds.base import DataPaths
    from metricbench.tasks.digits import DigitsTask

    root, name = Path(sys.argv[1]), sys.argv[2]
    task = DigitsTask(**json.loads(sys.argv[3]))
    task.pretrain = TrainRecipe(**json.loads(sys.argv[4]))
    splits = task.load_splits(DataPaths(None, root / "datasets"))
    (root / f"ready-{name}").touch()
    while len(list(root.glob("ready-*"))) < 2:
        time.sleep(0.01)
    state, info = pretrained_checkpoint(task, splits, 0, "cpu", ArtifactStore(root / "store"))
    digest = hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state))).hexdigest()
    print(json.dumps({"info": info, "weights": digest}), flush=True)
    os._exit(0)  # skips the interpreter's teardown with torch loaded, which costs seconds on a busy machine
    """
)


def tiny_digits():
    """The real `digits` task, narrower and pretrained for a few steps only."""
    task = create_task("digits", width=4)
    task.pretrain = replace(task.pretrain, steps=5, batch_size=32)
    return task


@pytest.fixture
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_two_processes_pretraining_one_task_and_seed_at_once_train_it_once(tmp_path, one_torch_thread):
    task, env = tiny_digits(), {**os.environ, "OMP_NUM_THREADS": "1"}
    task_json, recipe_json = json.dumps(task.options), json.dumps(task.pretrain.to_dict())
    a, b = _run_together(tmp_path, PRETRAIN_CHILD, [(tmp_path, name, task_json, recipe_json) for name in "ab"], env=env)
    assert sorted([a["info"].pop("built"), b["info"].pop("built")]) == [False, True]
    assert a == b  # same key, recipe and training time, and the same weights
    assert a["info"]["key"] == checkpoint_key(task, 0, "cpu")  # the children pretrained the task created here
    (folder,) = [p for p in (tmp_path / "store" / "pretrained").iterdir() if p.is_dir()]
    assert folder.name == f"digits-seed0-{a['info']['key']}"


def test_a_flipped_byte_in_a_checkpoint_is_rebuilt_not_loaded(tmp_path, capsys, new_invocation, one_torch_thread):
    task, store = tiny_digits(), ArtifactStore(tmp_path / "cache")
    splits = task.load_splits(DataPaths(None, tmp_path / "datasets"))
    state, info = pretrained_checkpoint(task, splits, 0, "cpu", store)
    assert info["built"] and set(info) == {"key", "recipe", "seconds", "built"}
    assert info["key"] == checkpoint_key(task, 0, "cpu") and info["recipe"]["steps"] == 5
    weights = tmp_path / "cache" / "pretrained" / f"digits-seed0-{info['key']}" / "weights.pt"
    assert set(torch.load(weights, weights_only=True)) == {"state_dict"}

    new_invocation()
    _flip_a_byte(weights)
    capsys.readouterr()
    again, info_again = pretrained_checkpoint(task, splits, 0, "cpu", store)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "is corrupt (weights.pt:" in err[0]
    assert info_again["built"] and info_again["key"] == info["key"]
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
    _, info_last = pretrained_checkpoint(task, splits, 0, "cpu", store)
    assert not info_last["built"] and {**info_last, "built": True} == info_again
