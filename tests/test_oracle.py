"""The metered oracle: every account is authorised before it is spent and recorded after; fixed val
mini-batches, candidate evaluation, batch scores and validation statistics."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers.small_cells import small_cell
from metricbench.bench.core.budget import Budget, Ledger
from metricbench.bench.core.errors import BudgetExhausted
from metricbench.bench.run.cell import prepare_finetune
from metricbench.methods.adapters import attach_film_adapters
from metricbench.tasks import metrics
from sklearn.metrics import confusion_matrix


def oracle_cell(task="breast-cancer", **limits):
    cell = small_cell(task)
    return type(cell)(**{**cell.__dict__, "budget": Budget(**{"steps": 5, "queries": 3, **limits})})


def test_full_val_queries_are_counted_and_the_budget_is_enforced_before_the_work(cell_env):
    p = prepare_finetune(oracle_cell(queries=3), cell_env)
    oracle = p.oracle
    full = oracle.query(p.model)
    val_predictions, val_targets = p.task.predict_split(p.model, p.splits.val)
    assert full == metrics.compute(oracle.metric, val_predictions, val_targets)
    oracle.query(p.model)
    oracle.query(p.model)
    spent = oracle.spent["queries"]
    assert spent["calls"] == 3 and spent["examples"] == 3 * len(p.splits.val) and spent["seconds"] > 0
    assert oracle.remaining("queries") == 0
    with pytest.raises(BudgetExhausted, match="budget 'queries' exhausted: 3 of 3"):
        oracle.query(p.model)
    assert oracle.spent["queries"]["calls"] == 3  # the refused call cost nothing


def test_each_account_is_charged_on_its_own(cell_env):
    """A batch score (DAB) or a statistics call (ALA) is not a full-val query: each has its own limit."""
    p = prepare_finetune(oracle_cell(batch_queries=2, batch_scores=4, stats=1), cell_env)
    oracle = p.oracle
    batch = oracle.batch(20)
    oracle.query(p.model, on=batch)
    predictions, targets = p.task.predict_split(p.model, p.splits.train.subset(torch.arange(30)))
    for _ in range(4):
        oracle.score(predictions, targets)
    oracle.statistics(p.model)
    spent = {account: (v["calls"], v["examples"]) for account, v in oracle.spent.items()}
    assert spent == {
        "steps": (0, 0),
        "queries": (0, 0),
        "batch_queries": (1, 20),
        "batch_scores": (4, 120),
        "stats": (1, len(p.splits.val)),
    }
    with pytest.raises(BudgetExhausted, match="batch_scores"):
        oracle.score(predictions, targets)
    with pytest.raises(BudgetExhausted, match="stats"):
        oracle.statistics(p.model)
    with pytest.raises(BudgetExhausted, match="batch_queries"):  # 2 candidates asked for, 1 left: refused whole
        oracle.query_candidates(p.model, attach_film_adapters(p.model), torch.zeros(2, len(attach_film_adapters(p.model))), batch)


def test_a_fixed_batch_gives_the_same_value_each_time_and_fresh_batches_differ(cell_env):
    p = prepare_finetune(oracle_cell("digits", batch_queries=20), cell_env)
    oracle = p.oracle
    batch = oracle.batch(40)
    assert batch.size == 40 and not hasattr(batch, "inputs") and not hasattr(batch, "targets")
    same = {oracle.query(p.model, on=batch) for _ in range(3)}
    assert len(same) == 1
    fresh = {oracle.query(p.model, on=oracle.batch(40)) for _ in range(8)}
    assert len(fresh) > 1
    with pytest.raises(ValueError, match="half of val"):
        oracle.batch(len(p.splits.val))


def test_batches_are_seeded_by_the_cell(cell_env):
    runs = []
    for _ in range(2):
        p = prepare_finetune(oracle_cell("digits", batch_queries=8), cell_env)
        runs.append([p.oracle.query(p.model, on=p.oracle.batch(16)) for _ in range(4)])
    assert runs[0] == runs[1]


def test_a_batch_from_another_oracle_is_refused(cell_env):
    a = prepare_finetune(oracle_cell("digits"), cell_env)
    b = prepare_finetune(oracle_cell("digits"), cell_env)
    with pytest.raises(TypeError, match="drawn from this oracle"):
        a.oracle.query(a.model, on=b.oracle.batch(8))


@pytest.mark.parametrize("task", ["digits", "glyphs-retrieval", "breast-cancer"])
def test_candidate_evaluation_equals_a_deepcopy_per_candidate_and_leaves_the_model_alone(task, cell_env):
    p = prepare_finetune(oracle_cell(task, batch_queries=20), cell_env)
    adapters = attach_film_adapters(p.model)
    stored = adapters.vector()
    vectors = stored + 0.2 * torch.randn(4, len(adapters), generator=torch.Generator().manual_seed(0))
    batch = p.oracle.batch(min(60, p.oracle.max_batch_size))
    values = p.oracle.query_candidates(p.model, adapters, vectors, on=batch)
    assert values.shape == (4,) and len(set(values.tolist())) > 1
    assert torch.equal(adapters.vector(), stored) and p.model.training
    for vector, value in zip(vectors, values.tolist(), strict=True):
        candidate = copy.deepcopy(p.model)
        attach_film_adapters(candidate).set_vector(vector)
        assert p.oracle.query(candidate, on=batch) == pytest.approx(value, abs=1e-6)
    batched = p.oracle.query_candidates(p.model, adapters, vectors, on=batch, batched=True)
    assert torch.allclose(batched, values, atol=1e-6)
    assert p.oracle.spent["batch_queries"]["calls"] == 4 + 4 + 4


def test_classification_statistics_are_the_confusion_matrix(cell_env):
    p = prepare_finetune(oracle_cell("digits"), cell_env)
    stats = p.oracle.statistics(p.model)["confusion"]
    predictions, targets = p.task.predict_split(p.model, p.splits.val)
    expected = confusion_matrix(targets.numpy(), predictions.argmax(1).numpy(), labels=range(10), normalize="true")
    assert stats.shape == (10, 10) and np.allclose(stats.numpy(), expected, atol=1e-6)


def test_retrieval_and_detection_statistics_have_a_fixed_shape(cell_env):
    p = prepare_finetune(oracle_cell("glyphs-retrieval"), cell_env)
    similarity = p.oracle.statistics(p.model, on=p.oracle.batch(40))["similarity"]
    assert similarity.shape == (4,) and similarity[0] > similarity[1]  # same-class pairs are closer
    p = prepare_finetune(oracle_cell("shapes-detection"), cell_env)
    assert p.oracle.statistics(p.model, on=p.oracle.batch(8))["ap_per_class"].shape == (p.task.num_classes,)


def test_the_oracle_reports_the_metric_direction(cell_env):
    p = prepare_finetune(oracle_cell(), cell_env)
    assert p.oracle.metric == "misclassification" and p.oracle.direction == "lower"
    assert p.view.direction == "lower" and "aucpr" in p.view.metrics


def test_a_retrieval_mini_batch_always_has_same_class_pairs(cell_env):
    """A uniform draw of a few items from 60 small classes would usually hold no pair, and Recall@K
    would be undefined; the retrieval kind draws whole class groups, so every size works."""
    p = prepare_finetune(oracle_cell("glyphs-retrieval", batch_queries=6), cell_env)
    sizes = (2, 5, 8, 17, 33)
    values = [p.oracle.query(p.model, on=p.oracle.batch(n)) for n in sizes]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert p.oracle.spent["batch_queries"]["calls"] == len(sizes)


def test_unset_accounts_follow_the_step_and_query_limits():
    budget = Budget(steps=10, queries=3)
    assert budget.to_dict() == {"steps": 10, "queries": 3, "batch_queries": 160, "batch_scores": 10, "stats": 3}
    assert budget.overridden(steps=20).limit("batch_queries") == 320
    assert Budget(steps=10, queries=3, batch_queries=0).limit("batch_queries") == 0
    ledger = Ledger(budget)
    ledger.authorise("batch_queries", 160)
    with pytest.raises(BudgetExhausted):
        ledger.authorise("batch_queries", 161)
