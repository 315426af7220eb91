"""What a result was computed with: the commit, the CPU, the library versions (tags on every run and the
output folder's `environment.json`)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from metricbench import bench


def git_commit() -> str:
    """HEAD's commit, with "+modified" when the code differs from it (the numbers then came from code
    that is in no commit; changed results or notes do not count)."""
    root = Path(bench.__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return "unknown"
        code = ["bench", "methods", "tasks", "pyproject.toml"]
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *code],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return head.stdout.strip() + ("+modified" if changes.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name (numbers computed on the CPU are reproducible bit for bit on the same kind)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_tags(device: str) -> dict[str, str]:
    """The tags of every run of an invocation (`device` as resolved: "cpu" or "cuda"...)."""
    import mlflow
    import numpy
    import sklearn
    import torch

    return {
        "git_commit": git_commit(),
        "device": device,
        "cpu": cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "metricbench_version": bench.__version__,
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "mlflow_version": mlflow.__version__,
        "numpy_version": numpy.__version__,
        "sklearn_version": sklearn.__version__,
        "host": platform.node(),
    }
