"""`a9a` and `covtype`: the paper's two LIBSVM binary-classification tasks, an MLP (or logistic regression)
trained on the logistic loss and judged on misclassification rate, AUCPR and recall at 90% precision.

- `a9a` (UCI Adult, preprocessed by the LIBSVM authors): `a9a` (32,561 examples) and `a9a.t` (16,281, the
  official test set), 123 binary features, labels -1/+1. Val is a stratified 10% of `a9a` (ours).
- `covtype` (`covtype.binary`, forest cover type 2 against the rest): `covtype.libsvm.binary`, 581,012
  examples, 54 features, labels 1/2, no official split: a fixed, seeded, stratified 20% is test and
  10% of the rest val (ours; `split_seed` 0).

Both read the LIBSVM text format with the dataset's feature count (`tasks.formats.libsvm`), standardise
features with the training part's statistics, and keep everything on the device as tensors. The
LIBSVM site publishes no checksums, so a download is accepted when complete and the loader checks
the format line by line on failure. Models, recipes and budgets are ours where the paper is silent.
"""

from __future__ import annotations

from pathlib import Path

from metricbench.bench.core.budget import Budget
from metricbench.bench.core.registry import Option
from metricbench.bench.core.training import TrainRecipe
from metricbench.tasks import register_task
from metricbench.tasks.data.dataset_files import DatasetFiles
from metricbench.tasks.data.resources import Resource
from metricbench.tasks.data.weights import start_options
from metricbench.tasks.formats.libsvm import binary_fixture, read_libsvm, write_libsvm
from metricbench.tasks.kinds.tabular import TabularArrays, TabularTask, tabular_options

LIBSVM_BINARY = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary"
LIBSVM_PAGE = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary.html"


def write_a9a_fixture(data_dir: Path) -> None:
    """A tiny a9a / a9a.t pair: 123 binary features, labels -1/+1 (LIBSVM text, as the real files)."""
    features, classes = binary_fixture(300, 123, seed=0)
    write_libsvm(Path(data_dir) / "a9a", features[:200], classes[:200], (-1, 1))
    write_libsvm(Path(data_dir) / "a9a.t", features[200:], classes[200:], (-1, 1))


def write_covtype_fixture(data_dir: Path) -> None:
    """A tiny covtype.libsvm.binary: 54 real-valued features, labels 1/2."""
    features, classes = binary_fixture(400, 54, seed=1, density=0.5, binary_values=False)
    write_libsvm(Path(data_dir) / "covtype.libsvm.binary", features, classes, (1, 2))


A9A = DatasetFiles(
    name="a9a (LIBSVM)",
    required=("a9a", "a9a.t"),
    resources=(
        Resource(f"{LIBSVM_BINARY}/a9a", "a9a", None, extract_to="."),
        Resource(f"{LIBSVM_BINARY}/a9a.t", "a9a.t", None, extract_to="."),
    ),
    source=LIBSVM_PAGE,
    fixture=write_a9a_fixture,
)
COVTYPE = DatasetFiles(
    name="covtype.binary (LIBSVM)",
    required=("covtype.libsvm.binary",),
    resources=(
        Resource(
            f"{LIBSVM_BINARY}/covtype.libsvm.binary.bz2",
            "covtype.libsvm.binary.bz2",
            None,
            decompress="bz2",
            output="covtype.libsvm.binary",
        ),
    ),
    source=LIBSVM_PAGE,
    fixture=write_covtype_fixture,
)
BINARY_METRICS = ("misclassification", "aucpr", "recall@precision")


def _options(test_fraction: float, hidden: int) -> dict[str, Option]:
    return tabular_options(
        test_fraction=test_fraction,
        val_fraction=0.1,
        hidden=hidden,
        **start_options("starting weights: 'recipe' (the task's pretraining, cached) or a checkpoint file"),
    )


@register_task(
    "a9a",
    "LIBSVM a9a (UCI Adult: 32,561/16,281, 123 binary features) from --data-dir, MLP or logistic regression",
    options=_options(0.0, 64),
)
class A9ATask(TabularTask):
    num_features = 123
    num_classes = 2
    dataset_sizes = {"examples": 32_561, "test": 16_281}  # a9a, a9a.t
    metrics = BINARY_METRICS
    metric_options = {"recall@precision": {"precision": 0.9}}
    pretrain = TrainRecipe(steps=3_000, batch_size=256, optimizer="adam", lr=1e-3)
    budget = Budget(steps=500, queries=50)
    data = A9A
    weight_options = ("weights",)

    def load_arrays(self, paths):
        hint = A9A.how_to_get(self.name, paths.data_dir)
        labels = {-1.0: 0, 1.0: 1}
        features, classes = read_libsvm(paths.data_dir / "a9a", self.num_features, labels, hint)
        test_features, test_classes = read_libsvm(paths.data_dir / "a9a.t", self.num_features, labels, hint)
        return TabularArrays(features, classes, test_features, test_classes)


@register_task(
    "covtype", "LIBSVM covtype.binary (581,012 x 54, fixed seeded split) from --data-dir, MLP", options=_options(0.2, 256)
)
class CovtypeTask(TabularTask):
    num_features = 54
    num_classes = 2
    dataset_sizes = {"examples": 581_012}
    metrics = ("misclassification", "aucpr")
    pretrain = TrainRecipe(steps=20_000, batch_size=512, optimizer="adam", lr=1e-3)
    budget = Budget(steps=500, queries=50)
    data = COVTYPE
    weight_options = ("weights",)
    eval_batch_size = 8192

    def load_arrays(self, paths):
        hint = COVTYPE.how_to_get(self.name, paths.data_dir)
        features, classes = read_libsvm(paths.data_dir / "covtype.libsvm.binary", self.num_features, {1.0: 0, 2.0: 1}, hint)
        return TabularArrays(features, classes)
