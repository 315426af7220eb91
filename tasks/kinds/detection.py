"""The detection kind: torchvision's detection model API, scored with VOC and COCO mAP.

- A batch is a list of images (uint8 C x H x W, any size) and a list of target dicts (`boxes`
  (M, 4) x1 y1 x2 y2, `labels` (M,) int64 with 0 = background, `difficult` (M,) bool).
- In train mode the model takes images and targets and returns a dict of loss terms; in eval mode
  it takes images and returns one dict of `boxes`, `scores`, `labels` per image.
- The loss family weighs the detector's loss terms (`loss_terms`), all weights 1 initially:
  the detector's own training loss. Adaptive Loss Alignment adapts the weights.
- Predictions exist only in eval mode (a torchvision detector in train mode returns losses only),
  so `TrainStep.predictions` is None for detection.
"""

from __future__ import annotations

import torch
from metricbench.bench.core.errors import HookContractError
from metricbench.tasks.kinds.base import LossFamily, Task

FASTER_RCNN_LOSS_TERMS = ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")


class WeightedLossTerms(LossFamily):
    """`sum_k w_k * loss_k` over a detector's loss dict; parameters: one weight per term, initially 1."""

    def __init__(self, terms: tuple[str, ...]):
        self.terms = tuple(terms)

    def init_params(self) -> dict[str, torch.Tensor]:
        return {term: torch.tensor(1.0) for term in self.terms}

    def __call__(self, loss_dict, targets, params=None):
        missing = [t for t in self.terms if t not in loss_dict]
        if missing:
            raise HookContractError(
                f"the detector returned loss terms {sorted(loss_dict)}, not {missing[0]!r}; "
                "set the task's `loss_terms` to its terms"
            )
        if params is None:
            return sum(loss_dict[t] for t in self.terms)
        return sum(params[t].to(loss_dict[t]) * loss_dict[t] for t in self.terms)


def images_to_model(images: list[torch.Tensor]) -> list[torch.Tensor]:
    """uint8 images to the float [0, 1] images torchvision detectors expect (float images pass through)."""
    return [x.float().div_(255) if x.dtype == torch.uint8 else x for x in images]


class DetectionTask(Task):
    """Detection with a torchvision-style detector (`torchvision.models.detection` API).

    Implement `load_splits` (e.g. `StreamSplit` over `tasks.formats.voc.VOCDetection` with `list_collate`,
    or a `ListSplit`) and `build_model`. Set `loss_terms` to the names of the detector's loss dict and
    `num_classes` to the number of foreground classes (labels 1..C; 0 is background).
    """

    kind = "detection"
    num_classes: int = 1
    metrics = ("voc-map", "coco-map")
    loss_terms: tuple[str, ...] = FASTER_RCNN_LOSS_TERMS
    eval_batch_size = 16

    def forward(self, model, batch):
        if not model.training:
            raise HookContractError("a detector returns its loss terms only in train mode; call model.train() first")
        targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in batch.targets]
        return model(images_to_model(batch.inputs), targets)

    def loss_family(self) -> WeightedLossTerms:
        return WeightedLossTerms(self.loss_terms)

    def predictions(self, outputs):
        return None

    def statistics(self, predictions, targets):
        """`ap_per_class`: VOC AP at IoU 0.5 of each of the `num_classes` foreground classes (labels 1..C;
        0 where a class has no ground truth in the batch)."""
        from metricbench.tasks.metrics.detection import voc_ap_per_class

        values = torch.zeros(self.num_classes)
        for label, ap in voc_ap_per_class(predictions, targets).items():
            if 1 <= label <= self.num_classes:
                values[label - 1] = ap
        return {"ap_per_class": values}

    def predict(self, model, inputs):
        return model(images_to_model(inputs))
