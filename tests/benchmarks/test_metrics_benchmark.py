"""Metric benchmarks at full dataset size. Run with `pytest tests/benchmarks --benchmark-only -s`.

- Recall@{1,10,100,1000} on 60,502 x 512 embeddings (the Stanford Online Products test set's size):
  time, and the peak memory it adds, measured in a fresh process (ru_maxrss; on a GPU also
  `torch.cuda.max_memory_allocated`). The full distance matrix would be 60,502^2 x 4 bytes = 14.6 GB.
- AUCPR on 1,000,000 binary scores.
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from metricbench.tasks import metrics
from metricbench.tasks.metrics.retrieval import retrieval_metrics

SOP_TEST = (60_502, 512, 11_316)

PEAK_MEMORY_SCRIPT = """
import json, os, threading, time, torch
from metricbench.tasks.metrics.retrieval import retrieval_metrics

def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

n, dim, classes, device = {n}, {dim}, {classes}, {device!r}
g = torch.Generator().manual_seed(0)
labels = torch.randint(0, classes, (n,), generator=g).to(device)
embeddings = torch.randn(n, dim, generator=g).to(device)
if device == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
base_gpu = torch.cuda.memory_allocated() if device == "cuda" else 0
# resident memory sampled every 2 ms: its peak during the call minus what was resident before it
baseline, peak, running = resident_mb(), [0.0], [True]
def sample():
    while running[0]:
        peak[0] = max(peak[0], resident_mb()); time.sleep(0.002)
sampler = threading.Thread(target=sample); sampler.start()
started = time.perf_counter()
retrieval_metrics(embeddings, labels, (1, 10, 100, 1000), device=device)
if device == "cuda":
    torch.cuda.synchronize()
seconds = time.perf_counter() - started
running[0] = False; sampler.join()
print(json.dumps({{
    "seconds": seconds,
    "peak_rss_added_mb": peak[0] - baseline,
    "peak_gpu_added_mb": (torch.cuda.max_memory_allocated() - base_gpu) / 2**20 if device == "cuda" else None,
}}))
"""


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def test_recall_at_k_on_sop_sized_embeddings(benchmark):
    n, dim, classes = SOP_TEST
    device = _device()
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, classes, (n,), generator=generator).to(device)
    embeddings = torch.randn(n, dim, generator=generator).to(device)

    def run():
        result = retrieval_metrics(embeddings, labels, (1, 10, 100, 1000), device=device)
        if device == "cuda":
            torch.cuda.synchronize()
        return result

    result = benchmark.pedantic(run, rounds=1 if device == "cpu" else 5, iterations=1, warmup_rounds=0 if device == "cpu" else 1)
    assert set(result) == {"recall@1", "recall@10", "recall@100", "recall@1000"}
    script = PEAK_MEMORY_SCRIPT.format(n=n, dim=dim, classes=classes, device=device)
    measured = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    benchmark.extra_info.update({"device": device, "items": n, "dim": dim, **measured})
    print(
        f"\nRecall@{{1,10,100,1000}} on {n} x {dim} ({device}): {benchmark.stats.stats.median:.2f} s; fresh process: {measured}"
    )
    # the point of chunking: far below the 14.6 GB a full distance matrix would take
    assert measured["peak_rss_added_mb"] < 2048


def test_aucpr_on_a_million_scores(benchmark):
    device = _device()
    generator = torch.Generator().manual_seed(0)
    targets = (torch.rand(1_000_000, generator=generator) < 0.3).to(torch.int64)
    scores = (torch.rand(1_000_000, generator=generator) + 0.3 * targets).to(device)
    targets = targets.to(device)
    value = benchmark.pedantic(lambda: metrics.compute("aucpr", scores, targets), rounds=5, iterations=1, warmup_rounds=1)
    assert 0.3 < value < 1
    benchmark.extra_info.update({"device": device, "scores": 1_000_000})
    print(f"\nAUCPR on 1,000,000 scores ({device}): {benchmark.stats.stats.median * 1000:.0f} ms")
