"""Wall time of `metricbench run smoke` and `metricbench run quick` as a new user runs them: the console
script in a fresh process, into an empty folder (pretraining, stages, datasets, MLflow logging, tables
and figures included), idle and with a second process keeping the machine busy (`load.py`).

    pytest tests/benchmarks/test_suite_wall.py --benchmark-only -s -k "smoke and idle"

The limits (docs/performance.md, "Suite wall times"): smoke under 60 s idle; quick under 10 minutes idle and under 20
minutes busy. `METRICBENCH_QUICK_OUT=results/quick` makes the idle quick run write its folder there (how
the committed results are made); otherwise every run writes into a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .load import LOADS, load_average, machine_load

ROUNDS = {"smoke": 3, "quick": 1}


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("load", LOADS)
@pytest.mark.parametrize("suite", ["smoke", "quick"])
def test_suite_wall_seconds(benchmark, tmp_path, suite, load):
    exe = shutil.which("metricbench", path=str(Path(sys.executable).parent))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    seconds, loads = [], []
    chosen = os.environ.get("METRICBENCH_QUICK_OUT") if (suite, load) == ("quick", "idle") else None

    def run():
        out = Path(chosen) if chosen else tmp_path / f"{suite}-{len(seconds)}"
        for entry in ("cells", "artifacts", "cache", "mlartifacts", "mlflow.db"):  # an empty folder, tables aside
            target = out / entry
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        started = time.perf_counter()
        done = subprocess.run([exe, "run", suite, "--out", str(out), "--quiet"], capture_output=True, text=True, env=env)
        seconds.append(time.perf_counter() - started)
        loads.append(load_average())
        assert done.returncode == 0, done.stderr[-3000:]

    with machine_load(load):
        benchmark.pedantic(run, rounds=ROUNDS[suite], iterations=1)
    median = statistics.median(seconds)
    benchmark.extra_info.update({"suite": suite, "load": load, "wall_seconds": seconds, "load_average": loads})
    print(f"\n{suite}, {load}: {median:.1f} s wall (median of {len(seconds)}: {seconds}), load average at the end {loads}")
