"""Networks a method builds for itself (ALA's policy, DAB's bridge, MetricOpt's value function), initialised
from the method's own generator: the same seed gives the same weights, and the global RNG that the
harness seeded for the cell is left as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def seeded_module(build: Callable[[], T], generator: torch.Generator) -> T:
    """`build()` run with PyTorch's global RNG seeded from one draw of `generator`, then restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        return build()
