"""The cost of one training step of each paper task's model at the task's real input size, on whatever
device runs it (`pytest tests/benchmarks/test_paper_steps.py --benchmark-only`). docs/paper-tasks.md's expected
costs come from these figures; batch sizes are the recipes' where one step fits in a few seconds of a
2-core CPU, smaller otherwise (the per-image time is printed with each)."""

from __future__ import annotations

import pytest
import torch
from metricbench.tasks import create_task
from metricbench.tasks.data.splits import Batch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CPU = DEVICE.type == "cpu"


def images(n, size):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=DEVICE)


def classification(task, n, size):
    return Batch(images(n, size), torch.randint(0, 10, (n,), device=DEVICE))


def detection(n):
    inputs = [torch.randint(0, 256, (3, 375, 500), dtype=torch.uint8, device=DEVICE) for _ in range(n)]  # a typical VOC image
    box = torch.tensor([[50.0, 60.0, 300.0, 280.0]], device=DEVICE)
    targets = [{"boxes": box, "labels": torch.tensor([3], device=DEVICE)} for _ in range(n)]
    return Batch(inputs, targets)


CASES = {
    # name: (task, options, batch, batch size)
    "cifar10 ResNet-32": ("cifar10", {}, lambda: classification("cifar10", 128, 32), 128),
    "imagenet NASNet-A Mobile": (
        "imagenet",
        {"weights": "recipe"},
        lambda: classification("imagenet", 16 if CPU else 64, 224),
        16 if CPU else 64,
    ),
    "sop ResNet-50": (
        "sop",
        {"backbone_weights": "none"},
        lambda: Batch(images(16 if CPU else 128, 224), torch.arange(16 if CPU else 128, device=DEVICE) // 4),
        16 if CPU else 128,
    ),
    "voc2007 Faster R-CNN R50-FPN": (
        "voc2007",
        {"backbone_weights": "none"},
        lambda: detection(2 if CPU else 8),
        2 if CPU else 8,
    ),
    "a9a MLP": ("a9a", {}, lambda: Batch(torch.randn(256, 123, device=DEVICE), torch.randint(0, 2, (256,), device=DEVICE)), 256),
    "covtype MLP": (
        "covtype",
        {},
        lambda: Batch(torch.randn(512, 54, device=DEVICE), torch.randint(0, 2, (512,), device=DEVICE)),
        512,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_training_step(benchmark, case):
    name, options, make_batch, batch_size = CASES[case]
    task = create_task(name, **options)
    model = task.build_model().to(DEVICE).train()
    batch = make_batch()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

    def step():
        loss = task.loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up (allocations, cuDNN autotuning)
    benchmark.pedantic(step, rounds=3, iterations=1)
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update({"batch": batch_size, "device": str(DEVICE), "seconds_per_example": mean / batch_size})
    print(f"\n{case}: {mean:.3f} s per step of {batch_size} on {DEVICE} ({1000 * mean / batch_size:.1f} ms per example)")
