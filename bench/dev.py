"""Set up the project's virtual environment and run the quick suite or the tests.

    python3 -m bench.dev quick [metricbench run options]   # set up, then `metricbench run quick`
    python3 -m bench.dev test [pytest options]             # set up, then the fast test tier (-m "not slow")
    python3 -m bench.dev test -m slow [pytest options]     # the slow tier (whole suites, real processes)

The tests run in one pytest-xdist worker per core (at most 4; `-n 0` or `-n N` to choose), each test file
on one worker so that its module fixtures are built once; every worker uses one PyTorch thread
(tests/conftest.py), so the workers never oversubscribe the cores.

Standard library only (it runs before anything is installed). The environment lives in `.venv`;
it is (re)installed only when pyproject.toml changed since the last install, so a second call
installs nothing.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
STAMP = VENV / ".metricbench-install"
# test workers: one per core up to this many (each builds the session's shared fixtures, a smoke run included)
MAX_WORKERS = 4
# torch and torchvision pinned as a pair (a torchvision build matches exactly one torch)
TORCH = os.environ.get("METRICBENCH_TORCH", "torch==2.14.1 torchvision==0.29.1").split()


def _bin(name: str) -> str:
    return str(VENV / ("Scripts" if os.name == "nt" else "bin") / name)


def _wanted_stamp() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(" ".join(TORCH).encode())
    return digest.hexdigest()


def ensure_environment() -> None:
    if STAMP.exists() and STAMP.read_text() == _wanted_stamp():
        return
    if not Path(_bin("python")).exists():
        print(f"creating {VENV}", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    pip = [_bin("python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    print("installing metricbench and its dependencies into .venv (once)", file=sys.stderr)
    quiet_env = {**os.environ, "PYTHONWARNINGS": "ignore"}  # setuptools' editable-install banner
    subprocess.run(pip + TORCH, check=True, env=quiet_env)
    subprocess.run(pip + ["-e", f"{ROOT}[test,lint,docs]"], check=True, env=quiet_env)
    STAMP.write_text(_wanted_stamp())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("quick", "test"):
        print(__doc__, file=sys.stderr)
        return 2
    ensure_environment()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if argv[0] == "quick":
        command = [_bin("metricbench"), "run", "quick", *argv[1:]]
    else:
        # the fast tier unless the caller chose a marker expression (`-m slow`: the slow tier)
        tier = [] if any(a.startswith("-m") for a in argv[1:]) else ["-m", "not slow"]
        # pytest-benchmark measures nothing under xdist, so `--benchmark-only` runs in this process
        chosen = any(a.startswith(("-n", "--numprocesses", "--benchmark-only")) or a == "no:xdist" for a in argv[1:])
        workers = ["-n", str(min(os.cpu_count() or 1, MAX_WORKERS)), "--dist", "loadfile", "--no-loadscope-reorder"]
        workers = [] if chosen else workers
        command = [_bin("python"), "-m", "pytest", *tier, *workers, *argv[1:]]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
