"""Every seed the project derives, and the two ways it runs code under a seed.

- `mix_seed(*parts)`: a 63-bit seed from any tuple of names and numbers, stable across processes and
  Python versions (a cell's generators, its batch streams, its stages: each gets its own stream).
- `seeded_generator(*parts, device=)`: a `torch.Generator` seeded with `mix_seed(*parts)`.
- `seeded_global_rng(seed, device)`: run a body with PyTorch's global RNGs seeded, then restore them
  (model initialisation, pretraining).
- `seeded_module(build, generator)`: build a network a method owns (ALA's policy, DAB's bridge,
  MetricOpt's value function) from one draw of the method's own generator: the same seed gives the
  same weights, and the global RNG the harness seeded for the cell is left as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def mix_seed(*parts: object) -> int:
    """A 63-bit seed derived from `parts` (stable across processes and Python versions)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seeded_generator(*parts: object, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(mix_seed(*parts))


@contextlib.contextmanager
def seeded_global_rng(seed: int, device):
    """Run the body with PyTorch's global RNGs (CPU, and the device's GPU) seeded, then restore them."""
    device = torch.device(device)
    gpus = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(seed)
        yield


def seeded_module(build: Callable[[], T], generator: torch.Generator) -> T:
    """`build()` run with PyTorch's global RNG seeded from one draw of `generator`, then restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        return build()
