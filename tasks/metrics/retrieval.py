"""Retrieval metrics over a whole set of embeddings: Recall@K, MAP@R, R-precision.

Inputs: `embeddings` (N, D) and `labels` (N,), torch tensors (CPU or CUDA) or NumPy arrays.
Every item queries all other items (itself excluded). Neighbours are ranked by Euclidean distance
between L2-normalised embeddings, which orders them exactly as cosine similarity does, so the
ranking is computed from dot products.

- recall@K: share of queries with at least one same-class item among their K nearest neighbours.
- map@r (Musgrave et al., "A Metric Learning Reality Check", 2020): for a query with R other items
  of its class, the mean over i = 1..R of precision@i counted only where neighbour i is relevant,
  divided by R; averaged over queries.
- r-precision: share of relevant items among a query's R nearest neighbours; averaged over queries.

A query with no other item of its class can never succeed and has R = 0; it is left out of every
mean (as in pytorch-metric-learning), and a set where no query has a same-class partner raises
MetricError. Exactly tied distances are ordered arbitrarily (as `torch.topk` leaves them).

Memory: queries are processed in chunks, so at most `chunk_size x N` similarities exist at once
(by default about 256 MB); the N x N matrix is never built, on CPU or GPU. `device="auto"` moves CPU
inputs to the GPU when one is present. `retrieval_metrics` computes several of these in one pass,
which is what a retrieval task should call when it reports more than one.
"""

from __future__ import annotations

import torch
from metricbench.bench.core import seal
from metricbench.bench.core.registry import Option
from metricbench.tasks.metrics.core import HIGHER, MetricError, as_tensor, register_metric

CHUNK_BYTES = 256 * 2**20
RECALL_KS = (1, 2, 4, 8, 10, 16, 32, 100, 1000)


def _auto_device(embeddings: torch.Tensor) -> torch.device:
    """Where `device="auto"` computes: the GPU when one is present and the inputs are on the CPU."""
    return torch.device("cuda") if embeddings.device.type == "cpu" and torch.cuda.is_available() else embeddings.device


def _prepare(metric: str, embeddings, labels, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    embeddings = as_tensor(embeddings)
    if not torch.is_floating_point(embeddings):
        embeddings = embeddings.to(torch.float32)
    labels = as_tensor(labels).reshape(-1)
    if embeddings.ndim != 2:
        raise MetricError(f"{metric}: embeddings must be (N, D), got shape {tuple(embeddings.shape)}")
    if embeddings.shape[0] != labels.shape[0]:
        raise MetricError(f"{metric}: {embeddings.shape[0]} embeddings but {labels.shape[0]} labels")
    if embeddings.shape[0] < 2:
        raise MetricError(f"{metric}: needs at least 2 items, got {embeddings.shape[0]}")
    if torch.isnan(embeddings).any():
        raise MetricError(f"{metric}: embeddings contain NaN (did the model diverge?)")
    target = _auto_device(embeddings) if device == "auto" else torch.device(device)
    embeddings = torch.nn.functional.normalize(embeddings.to(target), dim=1)
    return embeddings, labels.to(device=target, dtype=torch.int64)


def retrieval_metrics(
    embeddings,
    labels,
    ks: tuple[int, ...] = (1,),
    map_at_r: bool = False,
    r_precision: bool = False,
    chunk_size: int | None = None,
    device: str = "auto",
    metric: str = "retrieval",
) -> dict[str, float]:
    """Recall@K for each K in `ks` (keys "recall@K"), and optionally "map@r" and "r-precision", in one pass."""
    seal.check(metric)
    embeddings, labels = _prepare(metric, embeddings, labels, device)
    n = embeddings.shape[0]
    ks = tuple(dict.fromkeys(ks))  # a K listed twice is counted once
    if any(k < 1 for k in ks):
        raise MetricError(f"{metric}: every K must be at least 1, got {list(ks)}")
    _, class_index, class_sizes = torch.unique(labels, return_inverse=True, return_counts=True)
    relevant_count = class_sizes[class_index] - 1  # R of each query
    valid = relevant_count > 0
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise MetricError(f"{metric}: no item has another item of its class, so nothing can be retrieved")
    need_r = map_at_r or r_precision
    depth = min(n - 1, max([*ks, int(relevant_count.max()) if need_r else 0]))
    if chunk_size is None:
        chunk_size = max(1, CHUNK_BYTES // (n * embeddings.element_size()))

    hits_at = {k: 0 for k in ks}
    map_sum = rprec_sum = 0.0
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        similarity = embeddings[start:stop] @ embeddings.T
        rows = torch.arange(stop - start, device=embeddings.device)
        similarity[rows, rows + start] = float("-inf")  # a query never retrieves itself
        neighbours = similarity.topk(depth, dim=1).indices
        del similarity
        relevant = labels[neighbours] == labels[start:stop, None]
        chunk_valid = valid[start:stop]
        for k in ks:
            hits_at[k] += int((relevant[:, :k].any(1) & chunk_valid).sum())
        if need_r:
            r = relevant_count[start:stop]
            within_r = torch.arange(depth, device=embeddings.device)[None, :] < r[:, None]
            relevant_in_r = relevant & within_r
            safe_r = r.clamp_min(1).to(torch.float64)
            if map_at_r:
                precision_at_i = relevant_in_r.cumsum(1).to(torch.float64) / torch.arange(1, depth + 1, device=embeddings.device)
                average_precision = (precision_at_i * relevant_in_r).sum(1) / safe_r
                map_sum += float(average_precision[chunk_valid].sum())
            if r_precision:
                rprec_sum += float((relevant_in_r.sum(1) / safe_r)[chunk_valid].sum())
    results = {f"recall@{k}": hits_at[k] / n_valid for k in ks}
    if map_at_r:
        results["map@r"] = map_sum / n_valid
    if r_precision:
        results["r-precision"] = rprec_sum / n_valid
    return results


_OPTIONS = {
    "chunk_size": Option(int, 0, "queries per chunk (0: as many as fit in about 256 MB of similarities)"),
    "device": Option(str, "auto", "where to compute: auto (the GPU when one is present), cpu or cuda"),
}


def _register_recall(k: int) -> None:
    name = f"recall@{k}"

    @register_metric(name, HIGHER, f"share of queries with a same-class item among their {k} nearest others", _OPTIONS)
    def recall_at_k(embeddings, labels, chunk_size: int = 0, device: str = "auto") -> float:
        return retrieval_metrics(embeddings, labels, (k,), chunk_size=chunk_size or None, device=device, metric=name)[name]


for _k in RECALL_KS:
    _register_recall(_k)


@register_metric("map@r", HIGHER, "mean average precision at R, R = the number of other items of the query's class", _OPTIONS)
def map_at_r(embeddings, labels, chunk_size: int = 0, device: str = "auto") -> float:
    return retrieval_metrics(embeddings, labels, (), map_at_r=True, chunk_size=chunk_size or None, device=device, metric="map@r")[
        "map@r"
    ]


@register_metric("r-precision", HIGHER, "share of relevant items among a query's R nearest others", _OPTIONS)
def r_precision(embeddings, labels, chunk_size: int = 0, device: str = "auto") -> float:
    return retrieval_metrics(
        embeddings, labels, (), r_precision=True, chunk_size=chunk_size or None, device=device, metric="r-precision"
    )["r-precision"]
