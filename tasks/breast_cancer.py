"""`breast-cancer`: scikit-learn's bundled Wisconsin breast cancer data (569 real samples, 30 features,
binary), MLP. Stands in for a9a: tabular, binary, logistic loss."""

from __future__ import annotations

from sklearn.datasets import load_breast_cancer

from bench.training import Budget, TrainRecipe
from tasks import Option, register_task
from tasks.base import ClassificationTask
from tasks.data import stratified_splits
from tasks.models import MLP


@register_task(
    "breast-cancer",
    "scikit-learn breast cancer (569 real samples, 30 features, binary), MLP",
    options={
        "split_seed": Option(int, 0, "seed of the fixed stratified split (not the run seed)"),
        "test_fraction": Option(float, 0.3, "share of all samples held out as test"),
        "val_fraction": Option(float, 0.25, "share of the remaining samples used as val (metric observations)"),
        "hidden": Option(int, 32, "width of the hidden layer"),
    },
)
class BreastCancerTask(ClassificationTask):
    num_classes = 2
    metrics = ("misclassification", "aucpr", "auroc")
    pretrain = TrainRecipe(steps=100, batch_size=32, optimizer="adam", lr=3e-3)
    budget = Budget(steps=60, queries=10)

    def load_splits(self, data_dir=None):
        data = load_breast_cancer()
        # the positive class is malignant (sklearn codes malignant as 0)
        labels = 1 - data.target
        o = self.options
        return stratified_splits(data.data, labels, o["test_fraction"], o["val_fraction"], o["split_seed"])

    def build_model(self):
        return MLP(30, (self.options["hidden"],), 1)
