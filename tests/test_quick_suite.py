"""End-to-end: the quick suite through the installed console script, as the README runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_quick_suite_runs_end_to_end_and_resumes(tmp_path):
    exe = shutil.which("metricbench", path=str(Path(sys.executable).parent)) or shutil.which("metricbench")
    assert exe, "the metricbench console script is not installed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = tmp_path / "quick"
    first = subprocess.run([exe, "run", "quick", "--out", str(out), "--device", "cpu"], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert "| surrogate |" in first.stdout and "synthetic-binary f1-error ↓" in first.stdout
    assert (
        f"MLflow store: sqlite:///{out.resolve()}/mlflow.db" in first.stdout and "mlflow ui --backend-store-uri" in first.stdout
    )
    assert "#/experiments/" in first.stdout and "/runs" in first.stdout
    again = subprocess.run([exe, "run", "quick", "--out", str(out), "--quiet"], capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "cells: 0 computed, 9 already finished, 0 failed" in again.stdout
