"""A busy machine on demand: a second process that keeps running `metricbench run smoke` (at PyTorch's
own thread count, as an unconfigured colleague's job would) until the measurement ends."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

LOADS = ["idle", "busy"]
SMOKE_LOOP = """
import shutil, subprocess, sys
while True:
    shutil.rmtree(sys.argv[2], ignore_errors=True)
    subprocess.run([sys.argv[1], "run", "smoke", "--threads", "0", "--quiet", "--out", sys.argv[2]], capture_output=True)
"""


@contextlib.contextmanager
def machine_load(load: str):
    """Run the body on the machine as it is ("idle") or with a concurrent smoke loop ("busy")."""
    if load == "idle":
        yield
        return
    exe = shutil.which("metricbench", path=str(Path(sys.executable).parent))
    folder = tempfile.mkdtemp(prefix="metricbench-load-")
    process = subprocess.Popen([sys.executable, "-c", SMOKE_LOOP, exe, str(Path(folder) / "out")], start_new_session=True)
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def load_average() -> float:
    return os.getloadavg()[0]
