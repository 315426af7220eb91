"""Named points where the reliability tests stop a real run (fault injection); no-ops otherwise.

`METRICBENCH_PAUSE_AT=<point>` makes the process write `METRICBENCH_PAUSE_FILE` when it reaches that
point and then sleep, so a test can kill it exactly there (inside logging, inside a checkpoint write)
instead of hoping a timer lands there. Without the variable a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from metricbench.bench.core import interrupts

POINTS = (
    "checkpoint-files-written",  # a pretrained checkpoint's files are written, not yet renamed into place
    "record-written",  # a cell's record is on disk, not yet logged
    "run-created",  # a cell's MLflow child run exists, nothing logged into it yet
    "run-logged",  # metrics and artifacts logged, the run not yet marked complete
)


def pause_point(name: str) -> None:
    if os.environ.get("METRICBENCH_PAUSE_AT") != name:
        return
    marker = os.environ.get("METRICBENCH_PAUSE_FILE")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    # a Ctrl-C only records a request to stop (metricbench.bench.core.interrupts): the pause ends on one, and
    # the run goes on to its next safe point, as it would from anywhere else
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not interrupts.requested():
        time.sleep(0.05)
