"""`synthetic-binary`: seeded scikit-learn `make_classification` with an a9a-like shape (123 features,
about 24% positives), MLP. Stands in for a9a / covtype at scale. Besides misclassification rate it
reports the F1 error of the minority class, a metric the logistic loss is mismatched with. The test
split holds 8,000 examples, so differences of a few tenths of a percent are measurable."""

from __future__ import annotations

from metricbench.bench.core.budget import Budget
from metricbench.bench.core.training import TrainRecipe
from metricbench.tasks import Option, register_task
from metricbench.tasks.kinds.tabular import TabularArrays, TabularTask, tabular_options
from sklearn.datasets import make_classification


@register_task(
    "synthetic-binary",
    "seeded make_classification, a9a-like (123 features, ~24% positives, 8,000 test), MLP",
    options=tabular_options(
        test_fraction=0.2,
        val_fraction=0.125,
        hidden=128,
        data_seed=Option(int, 0, "seed of the generated data (not the run seed)"),
        samples=Option(int, 40_000, "examples generated in all (test is test_fraction of them)"),
    ),
)
class SyntheticBinaryTask(TabularTask):
    num_features = 123
    num_classes = 2
    metrics = ("misclassification", "f1-error", "aucpr")
    pretrain = TrainRecipe(steps=300, batch_size=256, optimizer="adam", lr=1e-3)
    budget = Budget(steps=100, queries=10)

    @property
    def dataset_sizes(self):
        return {"examples": self.options["samples"]}

    def load_arrays(self, paths):
        features, labels = make_classification(
            n_samples=self.options["samples"],
            n_features=self.num_features,
            n_informative=24,
            n_redundant=12,
            n_clusters_per_class=3,
            weights=[0.76],
            flip_y=0.03,
            class_sep=0.8,
            random_state=self.options["data_seed"],
        )
        return TabularArrays(features, labels)
