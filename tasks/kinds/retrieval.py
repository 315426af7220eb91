"""The retrieval kind: an embedding model judged on Recall@K / MAP@R over a set of items whose classes
were never seen in training (Stanford Online Products' protocol).

- Splits are class-disjoint (`metricbench.tasks.data.partition.class_disjoint_split`); items are labelled by class.
- Training batches are class-balanced: P classes x K items (`per_class`), so every batch holds
  positive pairs for the metric-learning loss.
- The loss family is the circle loss (Sun et al., CVPR 2020) on cosine similarities, with named
  parameters `margin` and `scale` (Adaptive Loss Alignment adapts them). The defaults (0.4, 80) are
  ours, chosen on `glyphs-retrieval`.
- Predictions are L2-normalised embeddings; all requested retrieval metrics come from one pass over
  the similarities (`retrieval_metrics`), computed on the cell's device.
- An oracle mini-batch is drawn as whole groups of `val_per_class` items of one class, so a
  mini-batch query always has same-class pairs (a uniform draw from small classes has almost none).
"""

from __future__ import annotations

import re

import torch
from metricbench.bench.core.errors import HookContractError
from metricbench.tasks import metrics as metric_lib
from metricbench.tasks.data.sampling import ClassBalancedBatches, class_balanced_sample
from metricbench.tasks.data.splits import Split
from metricbench.tasks.kinds.base import LossFamily, Task
from metricbench.tasks.kinds.retrieval_loss import circle_loss
from metricbench.tasks.metrics.retrieval import retrieval_metrics

_RECALL = re.compile(r"recall@(\d+)$")


class CircleLoss(LossFamily):
    """Circle loss over the batch's pairs; parameters `margin` (relaxation) and `scale` (gamma)."""

    def __init__(self, margin: float, scale: float):
        self.margin = margin
        self.scale = scale

    def init_params(self) -> dict[str, torch.Tensor]:
        return {"margin": torch.tensor(self.margin), "scale": torch.tensor(self.scale)}

    def __call__(self, embeddings, labels, params=None):
        if params is None:
            return circle_loss(embeddings, labels, self.margin, self.scale)
        return circle_loss(embeddings, labels, params["margin"], params["scale"])


class RetrievalTask(Task):
    """Retrieval: the model maps a batch of inputs to embeddings (N, D); targets are int64 class labels.

    Implement `load_splits` (class-disjoint, e.g. with `class_disjoint_split`; the splits' `labels()`
    must give the classes) and `build_model`. Class attributes: `per_class` (K of a P x K training
    batch; P = batch size // K), `val_per_class` (group size of an oracle mini-batch), `margin` and
    `scale` (the circle loss's initial parameters).
    """

    kind = "retrieval"
    metrics = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r")
    per_class: int = 4
    val_per_class: int = 4
    margin: float = 0.4
    scale: float = 80.0

    def forward(self, model, batch):
        return model(batch.inputs)

    def loss_family(self) -> CircleLoss:
        return CircleLoss(self.margin, self.scale)

    def predictions(self, embeddings):
        return torch.nn.functional.normalize(embeddings, dim=1)

    def predict(self, model, inputs):
        return self.predictions(model(inputs))

    def statistics(self, predictions, targets):
        """`similarity`: (mean positive-pair cosine, mean negative-pair cosine, mean hardest-negative
        cosine, fraction of items whose hardest negative is closer than their hardest positive)."""
        labels = targets.to(predictions.device)
        sim = predictions @ predictions.T
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=sim.device)
        positive, negative = same & ~eye, ~same
        hardest_negative = sim.masked_fill(~negative, -2).max(dim=1).values
        hardest_positive = sim.masked_fill(~positive, 2).min(dim=1).values
        has_both = positive.any(dim=1) & negative.any(dim=1)
        values = [
            sim[positive].mean(),
            sim[negative].mean(),
            hardest_negative[negative.any(dim=1)].mean(),
            (hardest_negative > hardest_positive)[has_both].float().mean(),
        ]
        return {"similarity": torch.stack(values).nan_to_num(0.0)}

    def _labels(self, split: Split) -> torch.Tensor:
        labels = split.labels()
        if labels is None:
            raise HookContractError(
                f"task '{self.name}': a retrieval split must know its class labels (TensorSplit with 1-D integer "
                "targets, or StreamSplit with StreamConfig(labels=...))"
            )
        return labels

    def train_stream(self, split, batch_size, seed):
        return ClassBalancedBatches(self._labels(split), max(1, batch_size // self.per_class), self.per_class, seed)

    def sample_val(self, split, n, generator):
        return class_balanced_sample(self._labels(split), n, self.val_per_class, generator)

    def score(self, predictions, targets, metrics=None, device=None):
        wanted = metrics or self.metrics
        ks = tuple(int(m.group(1)) for m in map(_RECALL.match, wanted) if m)
        device = str(device if device is not None else predictions.device)
        values = retrieval_metrics(
            predictions,
            targets,
            ks,
            map_at_r="map@r" in wanted,
            r_precision="r-precision" in wanted,
            device=device,
            metric=f"task '{self.name}'",
        )
        others = [m for m in wanted if m not in values]
        values.update({m: metric_lib.compute(m, predictions, targets, **self.metric_options.get(m, {})) for m in others})
        return {m: values[m] for m in wanted}
