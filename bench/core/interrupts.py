"""Ctrl-C while a suite runs: a request to stop, honoured at the next safe point.

The SIGINT handler only records the request. Raising `KeyboardInterrupt` from the handler, as Python's
default does, lands in whatever bytecode runs at that instant: inside a garbage-collection callback
(SQLAlchemy's, during MLflow logging) Python prints "Exception ignored" and drops it, and the suite ran
on to the end. Instead the harness asks `stop_if_requested()` where stopping is safe and cheap to check:
after every step a method reports (`ctx.step`) or a stage or pretraining takes, between cells, and after
a cell's logging. There it raises `KeyboardInterrupt`, which the runner turns into a KILLED invocation
and the CLI into one line and exit 130.

A cell catches everything its method raises, `KeyboardInterrupt` included, so that one method cannot
end the suite; it lets a `KeyboardInterrupt` through only when the user asked to stop (`requested()`).
A second Ctrl-C raises at once, for the rare code that runs long between two safe points.
"""

from __future__ import annotations

import contextlib
import signal
import threading

_requested = threading.Event()


def requested() -> bool:
    """Whether the user pressed Ctrl-C (sent SIGINT) during the current suite."""
    return _requested.is_set()


def stop_if_requested() -> None:
    """Raise `KeyboardInterrupt` if the user asked to stop; a safe point of the harness."""
    if _requested.is_set():
        raise KeyboardInterrupt


def _on_sigint(_signum, _frame):
    if _requested.is_set():  # the second Ctrl-C: the user will not wait for a safe point
        raise KeyboardInterrupt
    _requested.set()


@contextlib.contextmanager
def ctrl_c_stops_the_suite():
    """Handle SIGINT for the body (only possible in the main thread; elsewhere the default stays)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
        stop_if_requested()  # a request that arrived after the last safe point still stops the run
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
