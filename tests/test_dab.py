"""`dab`: the bridge learns a non-differentiable metric (a step: the error rate; a sort: Recall@1) from
the kind's ranked-list inputs, its gradient points the way that improves the true metric, the inputs
carry gradients to the model's outputs on every kind, and a cell spends one batch score per step."""

from __future__ import annotations

import pytest
import torch
from metricbench.bench.core.budget import Budget
from metricbench.bench.run.cell import CellEnv, run_cell
from metricbench.bench.run.suite import load_suite
from metricbench.methods.correlation import pearson
from metricbench.methods.dab import Bridge, classification_inputs, detection_inputs, ranked_lists, retrieval_inputs


def _error_rate(p, y):
    return ((p >= 0.5).long() != y).float().mean().item()  # a step function of the scores


def _binary_batch(g, n=32):
    y = torch.randint(0, 2, (n,), generator=g)
    quality = torch.rand((), generator=g) * 4 - 1  # batches from nearly random to nearly perfect
    logits = quality * (2 * y - 1) + torch.randn(n, generator=g)
    return torch.sigmoid(logits), y


def _fit(bridge, make_batch, metric, inputs, steps, g):
    optimizer = torch.optim.Adam(bridge.parameters(), lr=3e-3)
    for _ in range(steps):
        p, y = make_batch(g)
        lists, margins = inputs(p, y)
        loss = (bridge(lists, margins) - metric(p, y)) ** 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_the_bridge_learns_the_error_rate_and_its_gradient_lowers_the_true_error():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    bridge = Bridge(64, 32, 64)
    _fit(bridge, _binary_batch, _error_rate, classification_inputs, 1500, g)

    held_out = [_binary_batch(g) for _ in range(100)]
    estimates = [bridge(*classification_inputs(p, y)).item() for p, y in held_out]
    assert pearson(estimates, [_error_rate(p, y) for p, y in held_out]) > 0.9

    # descend the bridge's output alone on a batch's logits: the true (non-differentiable) error falls
    y = torch.randint(0, 2, (32,), generator=g)
    logits = (0.2 * (2 * y - 1) + torch.randn(32, generator=g)).requires_grad_(True)
    start = _error_rate(torch.sigmoid(logits.detach()), y)
    optimizer = torch.optim.SGD([logits], lr=1.0)
    for _ in range(50):
        optimizer.zero_grad()
        bridge(*classification_inputs(torch.sigmoid(logits), y)).backward()
        optimizer.step()
    assert _error_rate(torch.sigmoid(logits.detach()), y) < start / 2, start


def _recall_at_1(e, y):
    s = e @ e.T
    s.fill_diagonal_(-2)
    return (y[s.argmax(dim=1)] == y).float().mean().item()  # a function of the sorted similarities


def _retrieval_batch(g, classes=8, per_class=4, dim=16):
    y = torch.arange(classes).repeat_interleave(per_class)
    centres = torch.randn(classes, dim, generator=g)
    spread = torch.rand((), generator=g) * 3
    return torch.nn.functional.normalize(centres[y] + spread * torch.randn(len(y), dim, generator=g), dim=1), y


def test_the_bridge_learns_recall_at_1_from_the_batch_similarities():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    bridge = Bridge(2 * 31, 32, 64)
    _fit(bridge, _retrieval_batch, _recall_at_1, retrieval_inputs, 800, g)
    held_out = [_retrieval_batch(g) for _ in range(60)]
    estimates = [bridge(*retrieval_inputs(e, y)).item() for e, y in held_out]
    assert pearson(estimates, [_recall_at_1(e, y) for e, y in held_out]) > 0.8


def test_ranked_lists_sort_scores_and_carry_their_labels():
    lists = ranked_lists(torch.tensor([[0.1, 0.9, 0.5]]), torch.tensor([[1, 0, 1]]))
    assert torch.equal(lists, torch.tensor([[0.9, 0.5, 0.1, 0.0, 1.0, 1.0]]))


def test_inputs_of_every_kind_carry_gradients_to_the_predictions():
    probabilities = torch.softmax(torch.randn(6, 3), dim=1).requires_grad_(True)
    lists, margins = classification_inputs(probabilities, torch.tensor([0, 1, 2, 0, 1, 2]))
    assert lists.shape == (3, 12) and margins.shape == (6,)
    (lists.sum() + margins.sum()).backward()
    assert probabilities.grad.abs().sum() > 0

    embeddings = torch.nn.functional.normalize(torch.randn(6, 4), dim=1).requires_grad_(True)
    lists, margins = retrieval_inputs(embeddings, torch.tensor([0, 0, 1, 1, 2, 2]))
    assert lists.shape == (6, 10)
    (lists.sum() + margins.sum()).backward()
    assert embeddings.grad.abs().sum() > 0

    boxes = torch.tensor([[0.0, 0, 8, 8], [20, 20, 30, 30], [0, 0, 9, 9]], requires_grad=True)
    scores = torch.tensor([0.9, 0.8, 0.3], requires_grad=True)
    detections = [
        {"boxes": boxes, "scores": scores, "labels": torch.tensor([1, 1, 2])},
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    targets = [
        {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    lists, counts = detection_inputs(detections, targets, items=4)
    assert lists.shape == (2, 8) and counts.tolist() == [1.0, 0.0]
    assert torch.equal(lists[0, :4], torch.tensor([0.9, 0.8, 0.3, 0.0])) and lists[0, 4].item() == pytest.approx(
        0.64
    )  # best same-class IoU
    assert lists[0, 6].item() == 0.0  # a class-2 box over a class-1 truth overlaps nothing
    lists.sum().backward()
    assert scores.grad.abs().sum() > 0 and boxes.grad.abs().sum() > 0


def test_dab_spends_one_batch_score_per_step_reproducibly(tmp_path, checkpoint_cache):
    (cell,) = load_suite("smoke").select(tasks=["digits"], methods=["dab"]).cells()[:1]
    cell = type(cell)(**{**cell.__dict__, "budget": Budget(steps=10, queries=0, batch_scores=6)})
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache))
    records = [run_cell(cell, env) for _ in range(2)]
    record = records[0]
    assert record["status"] == "ok", record["reason"]
    spent = {account: v["calls"] for account, v in record["spent"].items()}
    assert spent == {"steps": 10, "queries": 0, "batch_queries": 0, "batch_scores": 6, "stats": 0}
    logs = record["history"]["logs"]
    assert len(logs["dab_batch_metric"]) == 6 and len(logs["dab_bridge_correlation"]) == 1
    assert [s for s, _ in logs["dab_bridge_term"]] == [2, 3, 4, 5]  # after a fifth of the steps, while scored
    assert records[0]["metrics"] == records[1]["metrics"] and records[0]["history"] == records[1]["history"]
