"""Telling a real Ctrl-C from a `KeyboardInterrupt` a method raised itself.

A cell catches everything its method raises, `SystemExit` and `KeyboardInterrupt` included, so one
method cannot end the suite. Only a real Ctrl-C may: while a suite runs, SIGINT is handled here, which
records that the user asked to stop before raising `KeyboardInterrupt`.
"""

from __future__ import annotations

import contextlib
import signal
import threading

_requested = threading.Event()


def requested() -> bool:
    """Whether the user pressed Ctrl-C (sent SIGINT) during the current suite."""
    return _requested.is_set()


def _on_sigint(_signum, _frame):
    _requested.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c_stops_the_suite():
    """Handle SIGINT for the body (only possible in the main thread; elsewhere the default stays)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
