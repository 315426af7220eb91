"""The shared starting checkpoint of a (task, seed): trained once, cached on disk, reused by every method.

The cache key covers the task's name and options, the seed, the device type, the pretraining
recipe and the code version (a hash of the task's source folder and of the training code), so changing any of them
trains afresh instead of reusing a stale checkpoint.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import torch

import bench.training
from bench.files import atomic_write_bytes
from bench.training import train_steps


def code_version(task) -> str:
    """Hash of the source files that determine what pretraining produces."""
    task_dir = Path(inspect.getsourcefile(type(task))).parent
    files = sorted(task_dir.glob("*.py")) + [Path(bench.training.__file__), Path(__file__)]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def checkpoint_key(task, seed: int, device_type: str) -> str:
    # the device type is part of the key: CPU and GPU kernels give different weights from one seed,
    # and a CPU run must reproduce a CPU run exactly
    config = {
        "task": task.name,
        "options": task.options,
        "seed": seed,
        "device": device_type,
        "recipe": task.pretrain.to_dict(),
        "code": code_version(task),
    }
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def seeded_model(task, seed: int) -> torch.nn.Module:
    """The task's model initialised from `seed` (the global RNG is restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return task.build_model()


def pretrained_checkpoint(task, splits, seed: int, device: torch.device, cache_dir: Path) -> tuple[dict, dict]:
    """The (state dict, info) of the task's pretrained model for `seed`, training it if not cached.

    Pretraining sees the train split only. `info` holds the key, the recipe and the starting model's
    val and test metrics (for the table's "pretrained" row; never shown to a method).
    """
    key = checkpoint_key(task, seed, torch.device(device).type)
    path = Path(cache_dir) / f"{task.name}-seed{seed}-{key}.pt"
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return saved["state_dict"], saved["info"]
    model = seeded_model(task, seed).to(device)
    generator = torch.Generator().manual_seed(seed)
    train_steps(model, task.loss, splits.train.batches(task.pretrain.batch_size, generator), task.pretrain)
    info = {
        "key": key,
        "recipe": task.pretrain.to_dict(),
        "val": task.evaluate(model, splits.val),
        "test": task.evaluate(model, splits.test),
    }
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, lambda handle: torch.save({"state_dict": state, "info": info}, handle))
    return state, info
