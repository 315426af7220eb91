"""Cells of the built-in tasks at their smallest built-in sizes, for tests that need a real task."""

from __future__ import annotations

from metricbench.bench.run.suite import Cell, load_suite


def small_cell(task: str, method: str = "surrogate") -> Cell:
    """A cell of `task`: smoke's for smoke's tasks, else quick's (seed 0, the first target), whose image
    tasks have small models and a short pretraining (at their default sizes a pretraining takes a minute)."""
    suite = load_suite("smoke")
    if task not in suite.tasks:
        suite = load_suite("quick")
    return suite.select(tasks=[task], methods=[method], seeds=1).cells()[0]
