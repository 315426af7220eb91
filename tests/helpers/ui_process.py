"""`metricbench ui` as a user starts it (a subprocess), and the processes it leaves, read from /proc.

    from ui_process import UiProcess, alive

psutil is used when it is installed; /proc otherwise (Linux).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, session id) of a process, None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[1]), int(fields[3])


def descendants(pid: int) -> set[int]:
    """Every process below `pid` now."""
    try:
        import psutil

        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except ImportError:
        pass
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents[int(entry)] = stat[1]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie waiting for its parent counts as gone), and any process
    in the sessions they led (what they started, wherever it was re-parented)."""
    running = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None and stat[0] != "Z":
            if int(entry) in pids or stat[2] in pids:
                running.add(int(entry))
    return running


class UiProcess:
    """`metricbench ui ARGS` with stdout and stderr read in the background; `link` is its first line."""

    def __init__(self, *args: str, timeout: float = 180):
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "metricbench.bench.cli", "ui", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._first = threading.Event()
        threading.Thread(target=self._read, args=(self.process.stdout, self.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.process.stderr, self.stderr, False), daemon=True).start()
        self._first.wait(timeout)
        if not self.stdout:
            self.process.kill()
            raise AssertionError(f"`metricbench ui` printed no link in {timeout} s: {''.join(self.stderr)[-2000:]}")
        self.link = self.stdout[0].strip()
        self.server = self.link.split("/#/")[0]

    def _read(self, stream, lines: list[str], first: bool) -> None:
        for line in stream:
            lines.append(line)
            if first:
                self._first.set()
        if first:
            self._first.set()  # closed without a line: the command ended

    def stop(self, signum: int, timeout: float = 30) -> int:
        """Send `signum`, wait for the command to end; its exit code."""
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def close(self) -> None:
        """After a failed test: stop it as a user would (SIGTERM), and kill it when that does not work."""
        if self.process.poll() is None:
            try:
                self.stop(signal.SIGTERM)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def api(self, path: str) -> dict:
        import urllib.request

        with urllib.request.urlopen(f"{self.server}/api/2.0/mlflow/{path}", timeout=30) as reply:
            return json.loads(reply.read())
