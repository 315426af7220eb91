"""While a method finetunes, registered metrics are computed only through the oracle.

The oracle meters every metric it computes against the cell's budget. A method that reached past it
(to the task's `evaluate` through a private attribute, say) would get the metric for free; so the
harness seals the metric library for the length of `finetune`, the oracle and the harness's own
monitor unseal it around their work, and any other metric computation raises `MetricSealed`,
which fails the cell with a message saying what happened. The state lives in context variables, so
no object a method is handed refers to it.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar

_sealed_for: ContextVar[str | None] = ContextVar("metricbench_metrics_sealed_for", default=None)
_unsealed: ContextVar[bool] = ContextVar("metricbench_metrics_unsealed", default=False)


class MetricSealed(RuntimeError):
    """A metric was computed while a method ran, outside the oracle."""


def check(metric: str) -> None:
    """Raise `MetricSealed` if metrics are sealed and the caller is not the oracle or the harness."""
    who = _sealed_for.get()
    if who is not None and not _unsealed.get():
        raise MetricSealed(
            f"metric '{metric}' was computed while {who} ran, outside the oracle; "
            "ask the oracle (query / query_candidates / score / statistics), which counts it against the budget"
        )


@contextlib.contextmanager
def sealed(who: str):
    """Seal the metric library for the body (`who` names the method, for the message)."""
    token = _sealed_for.set(who)
    try:
        yield
    finally:
        _sealed_for.reset(token)


@contextlib.contextmanager
def unsealed():
    """Let the body compute metrics (the oracle's metered evaluation; the harness's monitor)."""
    token = _unsealed.set(True)
    try:
        yield
    finally:
        _unsealed.reset(token)
