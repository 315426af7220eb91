"""`dab`: a Differentiable Approximation Bridge (Ramapuram & Webb) around the black-box metric.

DAB keeps a non-differentiable function in the forward pass and routes its gradient through a learned
approximator. As a metric-optimisation baseline (our design; the authors published only a sorting
demo): the hard function is the target metric of a training mini-batch's predictions, scored by the
oracle (`oracle.score`, account `batch_scores`, one call per step). At every step, from one forward:

- the bridge a_psi maps the batch's predictions with their labels to a predicted metric value and is
  trained to regress the true batch metric (squared error times `fit_weight`, Adam);
- the model is trained on `surrogate loss + lambda * s * a_psi(predictions)`, s = +1 for a metric
  where lower is better and -1 otherwise, once `warmup` steps have let the bridge learn; before that
  on the surrogate loss alone.

The bridge input, per task kind (ours; every part is a sorted list, so the bridge sees rankings,
which is what Recall@K, AUCPR and mAP are functions of):
- classification: one "ranked list" per class column (binary: the positive class): the batch's scores
  for that class sorted in decreasing order, with the one-vs-rest labels in the same order; plus the
  sorted per-example margins (true-class probability minus the best other class; binary: 2 p_y - 1),
  which decide misclassification;
- retrieval: one ranked list per query item: its cosine similarities to the other items of the batch,
  sorted, with same-class labels; plus the sorted per-query margins (hardest positive minus hardest
  negative similarity);
- detection: one list per image: its `items` highest-scoring detections' scores and their IoU with
  the best ground-truth box of the same class, by decreasing score; plus the sorted ground-truth
  counts. A torchvision detector gives predictions only in eval mode, so detection spends a second
  forward per step (eval mode, with gradients) for them.
Gradients reach the model through the sorted values (scores, similarities, IoUs); the order and the
labels are constants of each step. The bridge embeds each list with one shared MLP, averages the
embeddings, and reads the metric from them and the margins' embedding.
"""

from __future__ import annotations

from functools import partial

import torch
from metricbench.bench.core.errors import HookContractError
from metricbench.bench.core.seeding import seeded_module
from metricbench.methods import Option, non_negative, positive, register_method
from metricbench.methods.base import Method
from metricbench.methods.correlation import pearson
from metricbench.methods.loss_training import LossTrainer, finetune_recipe, loss_training_options
from torch import nn
from torchvision.ops import box_iou


def ranked_lists(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(G, L) scores and labels -> (G, 2L): each row's scores in decreasing order, then its labels in
    that order."""
    order = scores.argsort(dim=1, descending=True)
    return torch.cat([scores.gather(1, order), labels.to(scores.dtype).gather(1, order)], dim=1)


def classification_inputs(probabilities: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    labels = labels.to(probabilities.device)
    if probabilities.ndim == 1:  # binary: positive-class probabilities
        lists = ranked_lists(probabilities[None], labels[None])
        true_class = torch.where(labels == 1, probabilities, 1 - probabilities)
        margins = 2 * true_class - 1
    else:
        one_hot = nn.functional.one_hot(labels, probabilities.shape[1]).bool()
        lists = ranked_lists(probabilities.T, one_hot.T)
        true_class = probabilities[one_hot]
        best_other = probabilities.masked_fill(one_hot, -1).max(dim=1).values
        margins = true_class - best_other
    return lists, margins.sort(descending=True).values


def retrieval_inputs(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    labels = labels.to(embeddings.device)
    n = len(labels)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=embeddings.device)
    similarity = (embeddings @ embeddings.T)[off_diagonal].reshape(n, n - 1)
    same = (labels[:, None] == labels[None, :])[off_diagonal].reshape(n, n - 1)
    hardest_positive = similarity.masked_fill(~same, 2).min(dim=1).values
    hardest_negative = similarity.masked_fill(same, -2).max(dim=1).values
    has_both = same.any(dim=1) & (~same).any(dim=1)
    margins = torch.where(has_both, hardest_positive - hardest_negative, torch.zeros_like(hardest_positive))
    return ranked_lists(similarity, same), margins.sort(descending=True).values


def detection_inputs(detections: list[dict], targets: list[dict], items: int) -> tuple[torch.Tensor, torch.Tensor]:
    lists, counts = [], []
    for found, truth in zip(detections, targets, strict=True):
        scores, boxes, labels = found["scores"], found["boxes"], found["labels"]
        gt_boxes, gt_labels = truth["boxes"].to(boxes), truth["labels"].to(labels.device)
        overlap = torch.zeros_like(scores)
        if len(scores) and len(gt_boxes):
            iou = box_iou(boxes, gt_boxes) * (labels[:, None] == gt_labels[None, :])
            overlap = iou.max(dim=1).values
        top = scores.argsort(descending=True)[:items]
        row = torch.zeros(2, items, dtype=scores.dtype, device=scores.device)
        row[0, : len(top)] = scores[top]
        row[1, : len(top)] = overlap[top]
        lists.append(row.reshape(-1))
        counts.append(float(len(gt_boxes)))
    counts_tensor = torch.tensor(counts, device=lists[0].device).sort(descending=True).values
    return torch.stack(lists), counts_tensor


class Bridge(nn.Module):
    """a_psi: ranked lists (G, W) and a margins vector (M,) -> a predicted metric value. One MLP embeds
    every list, the embeddings are averaged (any number of lists), another embeds the margins."""

    def __init__(self, list_width: int, margins_width: int, hidden: int):
        super().__init__()
        self.lists = nn.Sequential(nn.Linear(list_width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.margins = nn.Sequential(nn.Linear(margins_width, hidden), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, lists: torch.Tensor, margins: torch.Tensor) -> torch.Tensor:
        pooled = self.lists(lists).mean(dim=0)
        return self.head(torch.cat([pooled, self.margins(margins)])).squeeze(0)


def fit_width(x: torch.Tensor, width: int) -> torch.Tensor:
    """The last dimension cut or zero-padded to `width` (a batch of another size still fits the bridge)."""
    if x.shape[-1] >= width:
        return x[..., :width]
    return nn.functional.pad(x, (0, width - x.shape[-1]))


@register_method(
    "dab",
    "Differentiable Approximation Bridge: a network learns the batch metric from the batch's predictions and carries "
    "its gradient to the model, next to the surrogate loss",
    options={
        **loss_training_options(),
        "weight": Option(
            float,
            1.0,
            "lambda: weight of the bridge's output in the model's loss; ours",
            check=non_negative,
            requirement="0 or more",
        ),
        "bridge_hidden": Option(int, 64, "hidden units of the bridge; ours", check=positive, requirement="at least 1"),
        "bridge_lr": Option(
            float,
            1e-3,
            "Adam learning rate of the bridge; ours (the authors' demo: 1e-4 over far longer runs)",
            check=positive,
            requirement="positive",
        ),
        "fit_weight": Option(
            float, 10.0, "weight of the bridge's squared error (as in the authors' demo)", check=positive, requirement="positive"
        ),
        "warmup": Option(
            int,
            -1,
            "steps the bridge learns before its gradient reaches the model (-1: a fifth of the step budget); ours",
            check=lambda n: n >= -1,
            requirement="-1 or more",
        ),
        "items": Option(
            int, 16, "detection: detections per image in the bridge's input; ours", check=positive, requirement="at least 1"
        ),
    },
)
class DifferentiableApproximationBridge(Method):
    def finetune(self, model, task, oracle, ctx):
        o = self.options
        recipe = finetune_recipe(o, task.finetune_recipe, ctx.budget.steps)
        warmup = recipe.steps // 5 if o["warmup"] < 0 else o["warmup"]
        sign = oracle.sign
        scored_steps = min(recipe.steps, ctx.remaining("batch_scores"))  # then the surrogate loss alone
        trainer = LossTrainer(model, recipe)
        batches = task.train_batches(recipe.batch_size)
        bridge, optimizer, widths = None, None, None
        estimates, observed = [], []
        model.train()
        for step in range(recipe.steps):
            batch = next(batches)
            out = task.train_step(model, batch)
            loss, true = out.loss, None
            if step < scored_steps:
                predictions = batch_predictions(model, task, batch, out)
                lists, margins = bridge_inputs(task.kind, predictions, batch.targets, o["items"])
                if bridge is None:
                    widths = (lists.shape[1], len(margins))
                    bridge = seeded_module(partial(Bridge, *widths, o["bridge_hidden"]), ctx.generator).to(ctx.device)
                    optimizer = torch.optim.Adam(bridge.parameters(), lr=o["bridge_lr"])
                lists, margins = fit_width(lists, widths[0]), fit_width(margins, widths[1])
                if step >= warmup and o["weight"] > 0:
                    bridge.requires_grad_(False)  # this term moves the model; the bridge learns only from its fit
                    bridge_term = o["weight"] * sign * bridge(lists, margins)
                    bridge.requires_grad_(True)
                    loss = loss + bridge_term
                    ctx.log("dab_bridge_term", bridge_term.detach())
                true = batch_metric(oracle, predictions, batch.targets)
            trainer.update(loss)  # before the bridge's own step, which changes the weights this loss went through
            ctx.step(out.loss.detach())  # the surrogate part: comparable with the other methods' losses
            if true is not None:
                estimate = bridge(lists.detach(), margins.detach())
                error = (estimate - true) ** 2
                optimizer.zero_grad(set_to_none=True)
                (o["fit_weight"] * error).backward()
                optimizer.step()
                estimates.append(float(estimate.detach()))  # before the fit on this batch: a held-out estimate
                observed.append(true)
                ctx.log("dab_fit_error", error.detach())
                ctx.log("dab_batch_metric", true)
        ctx.log("dab_bridge_correlation", pearson(estimates, observed))
        return ctx.finish()


def batch_predictions(model, task, batch, out):
    """The batch's differentiable predictions: the training forward's, or, for a detector (which gives
    losses only in train mode), those of a second forward in eval mode with gradients."""
    if out.predictions is not None:
        return out.predictions
    model.eval()
    try:
        return task.predict(model, batch.inputs)
    finally:
        model.train()


def bridge_inputs(kind: str, predictions, targets, items: int) -> tuple[torch.Tensor, torch.Tensor]:
    if kind == "classification":
        return classification_inputs(predictions, targets)
    if kind == "retrieval":
        return retrieval_inputs(predictions, targets)
    if kind == "detection":
        return detection_inputs(predictions, targets, items)
    raise HookContractError(f"dab defines no bridge input for task kind '{kind}' (it knows classification, retrieval, detection)")


def batch_metric(oracle, predictions, targets) -> float | None:
    """The target metric of the batch (one batch score), or None where it is undefined on this batch
    (e.g. AUCPR of a batch without positives: the oracle's metric raises a ValueError)."""
    detached = (
        predictions.detach()
        if isinstance(predictions, torch.Tensor)
        else [{k: v.detach() for k, v in p.items()} for p in predictions]
    )
    try:
        return oracle.score(detached, targets)
    except ValueError:
        return None
