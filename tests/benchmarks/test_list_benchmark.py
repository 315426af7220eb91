"""How long `metricbench list tasks` takes in a fresh process, interpreter start included, and its peak
resident memory (the listing should answer in well under a second; it reads the built-ins' rows from a
catalog instead of importing torch). Run: `pytest tests/benchmarks/test_list_benchmark.py --benchmark-only -s`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak memory from /proc")

ROUNDS = 10

# the command as the console script runs it, then its own peak resident memory in KB (VmHWM: getrusage's
# ru_maxrss would count the forking test process's, which Linux carries across exec) and what it imported
LIST = """
import sys
from metricbench.bench.cli import main
code = main(sys.argv[1:])
heavy = sorted({"torch", "mlflow", "sklearn", "torchvision"} & set(sys.modules))
peak = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(code, peak, ",".join(heavy) or "-", file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["list", "tasks"], ["list", "methods", "--options"]], ids=" ".join)
def test_list_in_a_fresh_process(benchmark, argv):
    peaks = []

    def listing():
        out = subprocess.run([sys.executable, "-c", LIST, *argv], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        code, peak_kb, heavy = out.stderr.strip().splitlines()[-1].split()
        assert code == "0" and heavy == "-", out.stderr
        peaks.append(int(peak_kb))

    benchmark.pedantic(listing, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    peak_mb = statistics.median(peaks) / 1024
    benchmark.extra_info.update({"argv": argv, "peak_rss_mb": peak_mb})
    print(f"\nmetricbench {' '.join(argv)}: median {benchmark.stats.stats.median * 1000:.0f} ms, peak RSS {peak_mb:.0f} MB")
