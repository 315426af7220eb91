"""`metricbench list`: fast (no torch, no MLflow), truthful (its catalog of the built-ins is what the live
registries report, the split sizes tasks declare are the sizes their splits have), and complete (plugins
are listed too)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers.plugin_package import write_plugin
from metricbench.bench.cli import main
from metricbench.tasks import TASKS, create_task, list_tasks
from metricbench.tasks.data.partition import class_disjoint_counts, class_disjoint_split, stratified_sizes, stratified_split
from metricbench.tasks.kinds.base import DataPaths

HEAVY = ("torch", "mlflow", "sklearn", "torchvision", "timm")


def _env(**extra):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **extra}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


@pytest.mark.parametrize(
    "argv", [["list", "tasks"], ["list", "tasks", "--options"], ["list", "methods", "--options"], ["list", "suites"]]
)
def test_list_imports_neither_torch_nor_mlflow(argv):
    code = (
        "import sys; from metricbench.bench.cli import main; code = main(sys.argv[1:]); "
        f"print(code, sorted(set({HEAVY!r}) & set(sys.modules)), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=_env())
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "0 []"
    assert out.stdout.strip()


def test_the_catalog_is_what_the_registries_report():
    """The built-ins' rows `list` reads equal those the live registries and tasks give (in a fresh
    process, so nothing a test registered counts)."""
    out = subprocess.run(
        [sys.executable, "-m", "metricbench.bench.listing", "--check"], capture_output=True, text=True, env=_env()
    )
    assert out.returncode == 0, out.stderr


def _row(text: str, name: str) -> list[str]:
    """The cells of `name`'s row in `list tasks`'s table (columns are separated by two spaces or more)."""
    lines = text.splitlines()
    header = [cell for cell in lines[0].split("  ") if cell.strip()]
    assert [cell.strip() for cell in header][:6] == ["TASK", "KIND", "TRAIN", "VAL", "TEST", "BUDGET"]
    (line,) = [line for line in lines if line.startswith(f"{name} ")]
    return [cell.strip() for cell in line.split("  ") if cell.strip()]


@pytest.mark.parametrize("name", ["digits", "synthetic-binary", "glyphs-retrieval", "cifar10", "sop"])
def test_list_tasks_shows_kind_split_sizes_budget_and_metrics_with_direction(capsys, name):
    assert main(["list", "tasks"]) == 0
    cells = _row(capsys.readouterr().out, name)
    task = create_task(name)
    sizes = task.split_sizes()
    counts = [f"{'~' if split in sizes.approximate else ''}{getattr(sizes, split):,}" for split in ("train", "val", "test")]
    assert cells[:5] == [name, task.kind, *counts]
    assert cells[5] == f"{task.budget.steps:,} steps, {task.budget.queries:,} queries"
    arrows = {"lower": "↓", "higher": "↑"}
    assert cells[6] == ", ".join(f"{m} {arrows[d]}" for m, d in task.metric_directions().items())


def test_digits_row_reads_as_documented(capsys):
    assert main(["list", "tasks", "digits"]) == 0
    out = capsys.readouterr().out
    assert _row(out, "digits") == [
        "digits",
        "classification",
        "1,077",
        "270",
        "450",
        "100 steps, 10 queries",
        "misclassification ↓, aucpr ↑",
    ]
    assert out.splitlines()[2].strip().startswith("scikit-learn handwritten digits")


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "tasks", "--options", "syn*"],
        ["list", "tasks", "syn*", "--options"],
        ["list", "--options", "tasks", "syn*"],
    ],
)
def test_the_pattern_may_come_before_or_after_the_flags(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "synthetic-binary" in out and "digits" not in out
    assert "samples (int, default 40000)" in out and "pretraining: 300 steps, batch 256, adam lr 0.001" in out


def test_list_methods_and_suites_take_a_pattern_too(capsys):
    assert main(["list", "methods", "--options", "metricopt-a*"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert names == ["metricopt-adam"]
    assert "optimizer (str {sgd, adam, learned}, default 'adam')" in out  # the variant's own default
    assert main(["list", "suites", "paper-*"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == sorted(names) and "paper-cifar10" in names and "quick" not in names and "paper" not in names


@pytest.mark.parametrize("argv", [["list", "suites", "nothing*"], ["list", "tasks", "nothing*"], ["list", "tasks", "a", "b"]])
def test_a_pattern_that_matches_nothing_or_a_stray_word_is_one_line_and_exit_2(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("metricbench: error:")


def test_a_plugins_tasks_and_methods_are_listed_beside_the_builtins(tmp_path):
    write_plugin(
        tmp_path,
        "mb_list_plugin",
        """
        from metricbench.methods import register_method
        from metricbench.methods.base import Method
        from metricbench.tasks import Option, register_task
        from metricbench.tasks.digits import DigitsTask

        options = {
            "split_seed": Option(int, 0), "test_fraction": Option(float, 0.25), "val_fraction": Option(float, 0.2),
            "width": Option(int, 16),
        }

        @register_task("plugin-digits", "digits again, from a plugin package", options)
        class PluginDigits(DigitsTask):
            pass

        @register_task("plugin-optionless-digits", "digits without the options its methods read")
        class OptionlessDigits(DigitsTask):
            pass

        @register_method("plugin-noop", "does nothing, from a plugin package")
        class PluginNoop(Method):
            def finetune(self, model, task, oracle, ctx):
                return ctx.finish()
    """,
    )
    env = _env(PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))

    def listed(*args):
        out = subprocess.run(
            [sys.executable, "-m", "metricbench.bench.cli", "list", *args], capture_output=True, text=True, env=env
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    tasks = listed("tasks")
    assert _row(tasks, "plugin-digits")[1:] == _row(tasks, "digits")[1:]  # described live, like its base
    assert "digits again, from a plugin package" in tasks and "voc2007" in tasks
    # one that cannot be described (its split sizes read an option it lacks) is listed, and says why
    assert _row(tasks, "plugin-optionless-digits")[1:] == ["?"] * 4
    assert "digits without the options its methods read (not described: KeyError: 'test_fraction')" in tasks
    methods = listed("methods", "--options")
    assert "plugin-noop" in methods and "does nothing, from a plugin package" in methods and "metricopt-adam" in methods


# ---- the split sizes tasks declare


def _embedded_tasks() -> list[str]:
    return [name for name in list_tasks() if not TASKS.entry(name).factory.requires_data]


def test_every_embedded_task_is_checked():
    assert {"digits", "breast-cancer", "synthetic-binary", "glyphs-retrieval", "shapes-detection"} <= set(_embedded_tasks())


SMALLER = {  # non-default options, so the declaration is checked to follow them
    "digits": {"test_fraction": 0.3, "val_fraction": 0.15},
    "breast-cancer": {"test_fraction": 0.2, "val_fraction": 0.3},
    "synthetic-binary": {"samples": 3_001, "test_fraction": 0.33},
    "glyphs-retrieval": {"classes": 37, "per_class": 5, "val_fraction": 0.3, "test_fraction": 0.1},
    "shapes-detection": {"train_images": 7, "val_images": 3, "test_images": 2, "image_size": 48, "workers": 0},
}


@pytest.mark.parametrize("variant", ["defaults", "other options"])
@pytest.mark.parametrize("name", _embedded_tasks())
def test_declared_split_sizes_are_the_loaded_splits_sizes(tmp_path, name, variant):
    options = SMALLER.get(name, {}) if variant == "other options" else {}
    if name == "shapes-detection" and variant == "defaults":
        options = {"workers": 0}
    task = create_task(name, **options)
    declared = task.split_sizes()
    assert declared is not None, f"task '{name}' declares no split sizes"
    assert declared.approximate == ()
    splits = task.load_splits(DataPaths(None, tmp_path))
    assert declared[:3] == tuple(splits.sizes().values())


PAPER_TASKS = ("cifar10", "imagenet", "sop", "voc2007", "a9a", "covtype")
STREAMED = {"imagenet": {"workers": 0}, "sop": {"workers": 0}, "voc2007": {"workers": 0}}


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    folders = {}
    for task in PAPER_TASKS:
        folders[task] = tmp_path_factory.mktemp(task)
        assert main(["data", "fixture", task, "--data-dir", str(folders[task])]) == 0
    return folders


def _fixture_dataset_sizes(name: str, folder, sizes: dict[str, int]) -> dict[str, int]:
    """`dataset_sizes` as the task declares them for the real dataset, counted on the fixture."""
    train, test = sizes["train"] + sizes["val"], sizes["test"]
    if name == "imagenet":
        from metricbench.tasks.formats.imagenet import list_image_folder

        per_class = np.bincount(list_image_folder(folder, "train").labels)
        return {"train": train, "test": test, "classes": len(per_class), "smallest_class": int(per_class.min())}
    if name == "sop":
        from metricbench.tasks.formats.sop import TRAIN_INDEX, read_index

        return {"train": train, "train_classes": len(np.unique(read_index(folder, TRAIN_INDEX, "").classes)), "test": test}
    return {
        "cifar10": {"train": train, "test": test},
        "voc2007": {"trainval": train, "test": test},
        "a9a": {"examples": train, "test": test},
        "covtype": {"examples": train + test},
    }[name]


@pytest.mark.parametrize("name", PAPER_TASKS)
def test_a_paper_tasks_declared_sizes_follow_its_loader_on_the_fixture(fixtures, monkeypatch, name):
    """The standard sizes are the datasets' (documented in each task's `dataset_sizes`); how train / val /
    test follow from them is checked on the fixture: with the fixture's own counts in `dataset_sizes`,
    the declaration gives the sizes the loader gives (exactly; sop's estimate is exact on equal classes)."""
    task = create_task(name, **STREAMED.get(name, {}))
    loaded = task.load_splits(DataPaths(fixtures[name], fixtures[name] / ".generated")).sizes()
    assert set(type(task).dataset_sizes) == set(_fixture_dataset_sizes(name, fixtures[name], loaded))
    monkeypatch.setattr(type(task), "dataset_sizes", _fixture_dataset_sizes(name, fixtures[name], loaded))
    assert task.split_sizes()[:3] == tuple(loaded.values())


def test_the_paper_tasks_declare_the_standard_sizes():
    """As in the task specification (train / test images or examples of each standard dataset)."""
    standard = {
        "cifar10": (50_000, 10_000),
        "imagenet": (1_281_167, 50_000),
        "sop": (59_551, 60_502),
        "voc2007": (5_011, 4_952),
        "a9a": (32_561, 16_281),
    }
    for name, (train, test) in standard.items():
        sizes = create_task(name).split_sizes()
        assert (sizes.train + sizes.val, sizes.test) == (train, test), name
    covtype = create_task("covtype").split_sizes()
    assert sum(covtype[:3]) == 581_012


@pytest.mark.parametrize("examples", [3_001, 1_797, 569, 32_561])
@pytest.mark.parametrize("fractions", [(0.25, 0.2), (0.3, 0.25), (0.2, 0.125), (0.33, 0.1), (0.0, 0.1)])
def test_stratified_sizes_are_the_sizes_of_stratified_split(examples, fractions):
    test_fraction, val_fraction = fractions
    labels = np.random.default_rng(examples).integers(0, 7, examples)
    official = test_fraction == 0.0
    parts = stratified_split(labels, test_fraction, val_fraction, split_seed=3, has_test=official)
    expected = tuple(len(part) for part in parts)
    assert stratified_sizes(examples, test_fraction, val_fraction, official_test=0 if official else None) == expected


@pytest.mark.parametrize("classes", [3, 10, 37, 300, 11_318])
def test_class_disjoint_counts_are_the_classes_of_class_disjoint_split(classes):
    labels = np.repeat(np.arange(classes), 2)
    for val_fraction, test_fraction in [(0.2, 0.2), (0.1, 0.0), (0.3, 0.1)]:
        try:
            parts = class_disjoint_split(labels, val_fraction, test_fraction, split_seed=1)
        except ValueError:
            with pytest.raises(ValueError):
                class_disjoint_counts(classes, val_fraction, test_fraction)
            continue
        assert class_disjoint_counts(classes, val_fraction, test_fraction) == tuple(len(part) // 2 for part in parts)
