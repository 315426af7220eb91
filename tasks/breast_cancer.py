"""`breast-cancer`: scikit-learn's bundled Wisconsin breast cancer data (569 real samples, 30 features,
binary), MLP. Stands in for a9a: tabular, binary, logistic loss."""

from __future__ import annotations

from metricbench.bench.core.budget import Budget
from metricbench.bench.core.training import TrainRecipe
from metricbench.tasks import register_task
from metricbench.tasks.kinds.tabular import TabularArrays, TabularTask, tabular_options
from sklearn.datasets import load_breast_cancer


@register_task(
    "breast-cancer",
    "scikit-learn breast cancer (569 real samples, 30 features, binary), MLP",
    options=tabular_options(test_fraction=0.3, val_fraction=0.25, hidden=32),
)
class BreastCancerTask(TabularTask):
    num_features = 30
    num_classes = 2
    dataset_sizes = {"examples": 569}
    metrics = ("misclassification", "aucpr", "auroc")
    pretrain = TrainRecipe(steps=100, batch_size=32, optimizer="adam", lr=3e-3)
    budget = Budget(steps=60, queries=10)

    def load_arrays(self, paths):
        data = load_breast_cancer()
        # the positive class is malignant (sklearn codes malignant as 0)
        return TabularArrays(data.data, 1 - data.target)
