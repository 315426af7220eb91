"""The shared starting checkpoint of a (task, seed): trained once, stored, reused by every method.

The checkpoint is an artifact of kind "pretrained" in an `ArtifactStore` (`CACHE/pretrained/`), so it
is shared by every cell, by later runs and by runs started side by side: the first to ask trains it
while holding the key's lock, the others wait and load it. Its `weights.pt` is checked against the
size and sha256 in the artifact's manifest before it is loaded; a corrupt checkpoint is rebuilt (with
one warning line), never loaded silently.

The key (`checkpoint_config`) is what determines the trained weights: the task's name and options,
the seed, the device type (and on the CPU the thread count), the pretraining recipe, the task's
explicit `version`, and a hash of the code that runs: the modules defining the task's class and its
bases (its own module and its kind), the data-order code and the training loop. Adding another task
file or editing a metric leaves it unchanged; a change to shared code elsewhere (a model module) is
announced by bumping `version`.

A task whose `weights` option names a checkpoint file or public weights (`tasks.data.weights`) is not
pretrained: the checkpoint is those weights loaded into the task's model, keyed by the task, its
options and what the weights are (a file by its sha256), and shared by every seed and device. Other
weights options (a backbone the recipe starts from) join the key of a pretrained checkpoint.

The checkpoint holds weights only: the `(pretrained)` metrics are recomputed by each cell with the
current metric code, never read back from the store.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import time
from pathlib import Path

import metricbench.bench.core.seeding
import metricbench.bench.core.training
import metricbench.tasks.data.sampling
import metricbench.tasks.data.splits
import torch
from metricbench.bench.core import interrupts
from metricbench.bench.core.files import key_digest
from metricbench.bench.core.seeding import mix_seed, seeded_global_rng
from metricbench.bench.core.training import train_steps
from metricbench.bench.run.artifacts import ArtifactStore
from metricbench.tasks.data.weights import load_into

WEIGHTS = "weights.pt"


def code_files(task) -> list[Path]:
    """The source files whose code decides what pretraining `task` produces."""
    modules = {sys.modules[cls.__module__] for cls in type(task).__mro__ if cls.__module__ not in ("builtins", "abc")}
    files = {Path(inspect.getsourcefile(m)) for m in modules}
    shared = (
        metricbench.bench.core.seeding,
        metricbench.bench.core.training,
        metricbench.tasks.data.sampling,
        metricbench.tasks.data.splits,
    )
    files |= {Path(m.__file__) for m in shared} | {Path(__file__)}
    return sorted(files)


def code_version(task) -> str:
    digest = hashlib.sha256()
    for path in code_files(task):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def checkpoint_config(task, seed: int, device_type: str) -> dict:
    """What decides the weights pretraining `task` with `seed` on `device_type` produces (the store's key)."""
    # the device type is part of the key: CPU and GPU kernels give different weights from one seed,
    # and a CPU run must reproduce a CPU run exactly; on the CPU so is the thread count, which
    # changes the order of floating-point reductions
    if task.starting_weights != "recipe":  # given weights: the same checkpoint for every seed and device
        return {"task": task.name, "options": task.options, "weights": task.weights_identity(), "version": task.version}
    config = {
        "task": task.name,
        "options": task.options,
        "seed": seed,
        "device": device_type,
        "threads": torch.get_num_threads() if device_type == "cpu" else None,
        "recipe": task.pretrain.to_dict(),
        "version": task.version,
        "code": code_version(task),
    }
    if task.weight_options:  # e.g. an ImageNet backbone the recipe starts from (left out when none, so keys stay)
        config["weights"] = task.weights_identity()
    return config


def checkpoint_key(task, seed: int, device_type: str) -> str:
    """The checkpoint's 16-hex-digit key: the digest of `checkpoint_config`, as in its folder's name."""
    return key_digest(checkpoint_config(task, seed, device_type))


def seeded_model(task, seed: int) -> torch.nn.Module:
    """The task's model initialised from `seed` (the global RNG is restored afterwards)."""
    with seeded_global_rng(seed, "cpu"):
        return task.build_model()


def pretrained_checkpoint(
    task, splits, seed: int, device: torch.device | str, store: ArtifactStore, progress=None
) -> tuple[dict, dict]:
    """The (state dict on the CPU, info) of the task's pretrained model for `seed`, trained if not stored.

    Pretraining sees the train split only. `info` holds the key, the recipe, how long training took,
    and `built` (whether this call trained it). `progress(total)`, if given, returns a bar with
    `update(n)` and `close()`.
    """
    device = torch.device(device)
    config = checkpoint_config(task, seed, device.type)

    given = task.starting_weights

    def build(folder: Path) -> dict:
        if given != "recipe":
            started = time.perf_counter()
            model = seeded_model(task, seed)  # the architecture; every tensor is then replaced
            load_into(model, given, f"task '{task.name}''s model with options {task.options}")
            state, seconds = model.state_dict(), time.perf_counter() - started
            torch.save({"state_dict": state}, folder / WEIGHTS)
            return {"key": key_digest(config), "weights": config["weights"], "seconds": seconds}
        state, seconds = _pretrain(task, splits, seed, device, progress)
        torch.save({"state_dict": state}, folder / WEIGHTS)
        return {"key": key_digest(config), "recipe": task.pretrain.to_dict(), "seconds": seconds}

    label = f"{task.name}-seed{seed}" if given == "recipe" else f"{task.name}-given"
    artifact = store.get_or_build("pretrained", config, build, label=label)
    # loaded back even when just built, so this run starts from exactly what later runs will load
    saved = torch.load(artifact.file(WEIGHTS), map_location="cpu", weights_only=True)
    return saved["state_dict"], {**artifact.info, "built": artifact.built}


def _after_step(bar) -> None:
    if bar is not None:
        bar.update(1)
    interrupts.stop_if_requested()  # a safe point: the checkpoint is not stored, the next run trains it


def _pretrain(task, splits, seed: int, device: torch.device, progress) -> tuple[dict, float]:
    """Train the task's model from `seed` with its pretraining recipe: (state dict on the CPU, seconds)."""
    model = seeded_model(task, seed).to(device)
    recipe = task.pretrain
    batches = task.train_batches(splits.train, recipe.batch_size, mix_seed("pretrain batches", seed))
    bar = progress(recipe.steps) if progress is not None else None
    started = time.perf_counter()
    try:
        # library code that draws from the global RNG (a detector's proposal sampler) gets a state of
        # its own, so the checkpoint does not depend on what ran earlier in the process
        with seeded_global_rng(mix_seed("pretrain", seed), device):
            train_steps(model, task.loss, batches, recipe, on_step=lambda _step, _loss: _after_step(bar))
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # GPU work is asynchronous: time it when it is done
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, seconds
