"""Task kinds: loss families, one-forward training steps, retrieval scoring and sampling, and every
split kind (device-resident with a transform, streamed through workers, lists of dicts) through
pretraining, a method's batches, evaluation and an oracle mini-batch."""

from __future__ import annotations

import metricbench.tasks.kinds.retrieval
import pytest
import torch
from metricbench.bench.core.training import TrainRecipe
from metricbench.bench.run.cell import CellEnv, prepare_finetune, run_cell
from metricbench.bench.run.suite import load_suite
from metricbench.methods.base import Method
from metricbench.tasks import TASKS, create_task
from metricbench.tasks.data.splits import ListSplit, StreamSplit, TensorSplit
from metricbench.tasks.glyphs_retrieval import GlyphsRetrievalTask
from metricbench.tasks.kinds.classification import ClassRelationLoss
from metricbench.tasks.kinds.detection import WeightedLossTerms
from metricbench.tasks.shapes_detection import ShapesDetectionTask

# ---- loss families


@pytest.mark.parametrize("classes", [2, 5])
def test_the_class_relation_loss_with_identity_phi_is_cross_entropy(classes):
    torch.manual_seed(0)
    logits = torch.randn(16, 1 if classes == 2 else classes)
    targets = torch.randint(0, classes, (16,))
    family = ClassRelationLoss(classes)
    if classes == 2:
        expected = torch.nn.functional.binary_cross_entropy_with_logits(logits.reshape(-1), targets.float())
    else:
        expected = torch.nn.functional.cross_entropy(logits, targets)
    identity = family.init_params()
    assert torch.equal(identity["phi"], torch.eye(classes))
    assert torch.allclose(family(logits, targets), expected)  # the fast path (no parameters given)
    assert torch.allclose(family(logits, targets, identity), expected, atol=1e-6)  # the general formula
    # ALA's sigmoid form is a monotone function of each example's cross-entropy: the same ranking
    per_example = [ClassRelationLoss(classes, "sigmoid")(logits[i : i + 1], targets[i : i + 1], identity) for i in range(16)]
    ce = [ClassRelationLoss(classes)(logits[i : i + 1], targets[i : i + 1]) for i in range(16)]
    assert sorted(range(16), key=lambda i: float(per_example[i])) == sorted(range(16), key=lambda i: float(ce[i]))


def test_class_relations_change_the_loss_and_receive_gradients():
    torch.manual_seed(1)
    logits, targets = torch.randn(8, 3), torch.randint(0, 3, (8,))
    phi = torch.eye(3).requires_grad_()
    family = ClassRelationLoss(3, "sigmoid")
    loss = family(logits, targets, {"phi": phi})
    loss.backward()
    assert phi.grad is not None and phi.grad.abs().sum() > 0
    related = torch.eye(3) + 0.3 * torch.ones(3, 3)
    assert not torch.allclose(family(logits, targets, {"phi": related}), loss)


def test_detection_loss_weights_default_to_the_detectors_sum():
    terms = {"a": torch.tensor(1.5), "b": torch.tensor(0.25)}
    family = WeightedLossTerms(("a", "b"))
    assert float(family(terms, None)) == 1.75 == float(family(terms, None, family.init_params()))
    assert float(family(terms, None, {"a": torch.tensor(0.0), "b": torch.tensor(2.0)})) == 0.5


# ---- one forward per training step


class ForwardCounter:
    def __init__(self, model):
        self.calls = 0
        model.register_forward_hook(lambda *_: setattr(self, "calls", self.calls + 1))


@pytest.mark.parametrize("task_name", ["digits", "synthetic-binary"])
def test_a_training_step_gives_loss_predictions_and_targets_from_one_forward(task_name, cell_env):
    (cell,) = load_suite("smoke").select(tasks=["digits"], methods=["surrogate"]).cells()
    cell = type(cell)(**{**cell.__dict__, "task": task_name, "task_options": _tiny_options(task_name)})
    p = prepare_finetune(cell, cell_env)
    counter = ForwardCounter(p.model)
    batch = next(p.view.train_batches(32))
    step = p.view.train_step(p.model, batch)
    assert counter.calls == 1
    assert torch.allclose(step.loss, p.view.loss(p.model, batch))
    assert torch.equal(step.targets, batch.targets)
    assert step.predictions.requires_grad  # differentiable, as a bridge (DAB) needs
    expected = p.task.predictions(step.outputs)
    assert torch.equal(step.predictions, expected)
    family = p.view.loss_family()
    relaxed = {"phi": family.init_params()["phi"] * 0.5}
    assert torch.allclose(p.view.train_step(p.model, batch, relaxed).loss, step.loss * 0.5, atol=1e-5)


def _tiny_options(task_name):
    entry = TASKS.entry(task_name)
    return entry.resolve_options("task", {"samples": 3000} if task_name == "synthetic-binary" else {})


# ---- retrieval


def test_retrieval_scores_every_metric_in_one_pass_on_the_given_device(monkeypatch):
    calls = []
    real = metricbench.tasks.kinds.retrieval.retrieval_metrics
    monkeypatch.setattr(
        metricbench.tasks.kinds.retrieval, "retrieval_metrics", lambda *a, **k: (calls.append(k["device"]), real(*a, **k))[1]
    )
    task = create_task("glyphs-retrieval")
    torch.manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(60, 8), dim=1)
    labels = torch.arange(60) % 15
    scores = task.score(embeddings, labels, device=torch.device("cpu"))
    assert calls == ["cpu"] and list(scores) == list(task.metrics)
    from metricbench.tasks import metrics

    for name, value in scores.items():
        assert value == pytest.approx(metrics.compute(name, embeddings, labels, device="cpu"))


# ---- every split kind through the whole cell


class Probe(Method):
    """Two training steps through `train_step`, then one oracle mini-batch query."""

    def finetune(self, model, task, oracle, ctx):
        batches = task.train_batches(task.finetune_recipe.batch_size)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        for _ in range(2):
            step = task.train_step(model, next(batches))
            optimizer.zero_grad()
            step.loss.backward()
            optimizer.step()
            ctx.step(step.loss)
        oracle.query(model, on=oracle.batch(min(8, oracle.max_batch_size)))
        return ctx.finish()


class TinyGlyphs(GlyphsRetrievalTask):
    pretrain = TrainRecipe(steps=3, batch_size=32, optimizer="adam", lr=1e-3)


class TinyShapes(ShapesDetectionTask):
    pretrain = TrainRecipe(steps=2, batch_size=4, optimizer="adam", lr=1e-4)


SPLIT_KINDS = {
    "tensor-with-transform": (TinyGlyphs, "glyphs-retrieval", {"classes": 30, "per_class": 6}, TensorSplit),
    "streamed-with-workers": (
        TinyShapes,
        "shapes-detection",
        {"train_images": 8, "val_images": 12, "test_images": 6, "image_size": 64, "storage": "stream", "workers": 2},
        StreamSplit,
    ),
    "list-of-dicts": (
        TinyShapes,
        "shapes-detection",
        {"train_images": 8, "val_images": 12, "test_images": 6, "image_size": 64, "storage": "memory"},
        ListSplit,
    ),
}


@pytest.mark.parametrize("kind", list(SPLIT_KINDS))
def test_every_split_kind_runs_pretraining_method_batches_evaluation_and_an_oracle_mini_batch(
    kind, tmp_path, checkpoint_cache, temporary_task, temporary_method, monkeypatch
):
    cls, base, options, split_type = SPLIT_KINDS[kind]
    temporary_task(f"test-{base}", cls, TASKS.entry(base).options)
    temporary_method("test-probe", Probe)
    seen = []
    real_evaluate = cls.evaluate

    def spy(self, model, split, metrics=None):
        seen.append((type(split), len(split)))
        return real_evaluate(self, model, split, metrics)

    monkeypatch.setattr(cls, "evaluate", spy)
    suite = load_suite("smoke").select(tasks=["digits"], methods=["test-probe"])
    suite.tasks, suite.task_options, suite.budget = [f"test-{base}"], {f"test-{base}": options}, {"steps": 2, "queries": 1}
    (cell,) = suite.cells()
    record = run_cell(cell, CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache)))
    assert record["status"] == "ok", record.get("traceback")
    assert record["history"]["steps"] == 2 and record["spent"]["batch_queries"]["calls"] == 1
    assert set(record["metrics"]) == set(cls.metrics) and set(record["pretrained"]["test"]) == set(cls.metrics)
    assert all(t is split_type for t, _ in seen)
    sizes = [n for _, n in seen]  # pretrained test, val curve points, the oracle's mini-batch, test
    full_val, mini_batch = sizes[1], sizes[-2]
    assert 1 <= mini_batch <= full_val // 2


def test_a_detection_cell_gives_the_same_numbers_whatever_ran_before_it(tmp_path, temporary_task):
    """torchvision's proposal samplers draw from the global RNG: the harness seeds it per phase."""
    temporary_task("test-shapes-detection", TinyShapes, TASKS.entry("shapes-detection").options)
    suite = load_suite("smoke").select(methods=["surrogate"])
    options = {"train_images": 8, "val_images": 6, "test_images": 6, "image_size": 64, "storage": "memory"}
    suite.tasks, suite.task_options, suite.budget = ["test-shapes-detection"], {"test-shapes-detection": options}, {"steps": 3}
    (cell,) = suite.cells()
    records = []
    for i, noise in enumerate((0, 1000)):
        torch.manual_seed(noise)
        torch.rand(noise)  # another history of the global RNG before the cell
        env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(tmp_path / f"cache{i}"))
        records.append(run_cell(cell, env))
    assert records[0]["status"] == "ok", records[0].get("traceback")
    assert records[0]["history"]["loss"] == records[1]["history"]["loss"]
    assert records[0]["pretrained"]["test"] == records[1]["pretrained"]["test"]
    assert records[0]["metrics"] == records[1]["metrics"]
