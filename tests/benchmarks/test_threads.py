"""How many PyTorch CPU threads a cell should use, by measurement (the `--threads` default).

For one task of each kind: a whole cell (pretraining into an empty cache, the surrogate method's
finetuning, every evaluation) with 1 and with 2 intra-op threads, in a fresh process each round so
one setting cannot warm the other's caches; idle, and with a second process keeping the machine busy
(a concurrent smoke loop at PyTorch's own thread count, `load.py`), since the default must be good in
both: `pytest tests/benchmarks/test_threads.py --benchmark-only -s` (`-k idle` or `-k busy` for one).
The two slow kinds take one round each (a shapes-detection cell is about a minute).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import pytest

from .load import LOADS, load_average, machine_load

TASKS = ["digits", "synthetic-binary", "glyphs-retrieval", "shapes-detection"]
ROUNDS = {"digits": 3, "synthetic-binary": 3, "glyphs-retrieval": 1, "shapes-detection": 1}

CELL = """
import json, sys, tempfile, time, torch
torch.set_num_threads({threads})
from metricbench.bench.run.cell import CellEnv, run_cell
from metricbench.bench.run.suite import load_suite
(cell,) = load_suite("quick").select(tasks=["{task}"], methods=["surrogate"], seeds=1).cells()[:1]
with tempfile.TemporaryDirectory() as tmp:
    started = time.perf_counter()
    record = run_cell(cell, CellEnv(device="cpu", out_dir=tmp, cache_dir=tmp))
    print(json.dumps({{"status": record["status"], "seconds": time.perf_counter() - started}}))
"""


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("load", LOADS)
def test_whole_cell_seconds_by_thread_count(benchmark, task, threads, load):
    in_process = []  # the cell itself, without the interpreter's start and imports

    def cell():
        out = subprocess.run([sys.executable, "-c", CELL.format(task=task, threads=threads)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["status"] == "ok"
        in_process.append(result["seconds"])

    with machine_load(load):
        benchmark.pedantic(cell, rounds=ROUNDS[task], iterations=1)
        loaded = load_average()
    cell_seconds = statistics.median(in_process)
    benchmark.extra_info.update({"task": task, "threads": threads, "load": load, "cell_seconds": cell_seconds})
    print(
        f"\n{task}, {threads} thread(s), {load} (load average {loaded:.1f}): {cell_seconds:.1f} s per cell "
        f"(median of {ROUNDS[task]}: {[round(s, 1) for s in in_process]}, pretraining included)"
    )
