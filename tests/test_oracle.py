"""The sealed oracle: nothing a method is handed reaches the test split; every query is counted."""

from __future__ import annotations

import gc
import sys
import types

import pytest
import torch
from metricbench.bench.cell import prepare_finetune
from metricbench.bench.errors import BudgetExhausted
from metricbench.bench.suite import load_suite
from metricbench.methods import create_method
from metricbench.tasks import metrics


def _cell(task="breast-cancer", queries=3):
    (cell,) = load_suite("smoke").select(tasks=[task], methods=["surrogate"]).cells()
    return type(cell)(**{**cell.__dict__, "budget": type(cell.budget)(steps=5, queries=queries)})


def _reachable(roots, targets) -> list:
    """Objects in `targets` reachable from `roots` through references (modules and classes aside:
    reaching harness internals through `import` is not something a method is handed)."""
    target_ids = {id(t) for t in targets}
    target_storages = {t.untyped_storage().data_ptr() for t in targets if isinstance(t, torch.Tensor)}
    module_dicts = {id(vars(m)) for m in list(sys.modules.values()) if m is not None and hasattr(m, "__dict__")}
    seen, stack, found = set(), list(roots), []
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (types.ModuleType, type)) or id(obj) in module_dicts:
            continue
        if id(obj) in target_ids or (isinstance(obj, torch.Tensor) and obj.untyped_storage().data_ptr() in target_storages):
            found.append(obj)
            continue
        stack.extend(gc.get_referents(obj))
    return found


@pytest.mark.parametrize("task", ["digits", "breast-cancer", "glyphs-retrieval"])
def test_nothing_handed_to_a_method_reaches_the_test_split(task, cell_env):
    p = prepare_finetune(_cell(task), cell_env)
    handed = [p.model, p.view, p.oracle, p.ctx, create_method("surrogate")]
    test = p.splits.test
    assert _reachable(handed, [test, test.inputs, test.targets]) == []
    # the walker does find what is reachable: val through the oracle, train through the view
    assert _reachable([p.oracle], [p.splits.val.inputs])
    assert _reachable([p.view], [p.splits.train.inputs])


def test_queries_are_counted_and_the_budget_is_enforced(cell_env):
    p = prepare_finetune(_cell(queries=3), cell_env)
    oracle = p.oracle
    full = oracle.query(p.model)
    val_predictions, val_targets = p.task.predict_split(p.model, p.splits.val)
    assert full == metrics.compute(oracle.metric, val_predictions, val_targets)
    oracle.query(p.model, batch_size=10)
    oracle.score(val_predictions[:7], val_targets[:7])
    assert oracle.spent.calls == 3
    assert oracle.spent.examples == len(p.splits.val) + 10 + 7
    assert oracle.spent.seconds > 0 and oracle.remaining == 0
    with pytest.raises(BudgetExhausted):
        oracle.query(p.model)


def test_mini_batch_queries_are_seeded(cell_env):
    values = []
    for _ in range(2):
        p = prepare_finetune(_cell(queries=5), cell_env)
        values.append([p.oracle.query(p.model, batch_size=16) for _ in range(4)])
    assert values[0] == values[1]
    assert len(set(values[0])) > 1  # different mini-batches, not one repeated


def test_the_oracle_reports_the_metric_direction(cell_env):
    p = prepare_finetune(_cell(), cell_env)
    assert p.oracle.metric == "misclassification" and p.oracle.direction == "lower"
    assert p.view.direction == "lower" and "aucpr" in p.view.metrics


def test_a_retrieval_oracle_mini_batch_always_has_same_class_pairs(cell_env):
    """A uniform draw of a few items from 60 small classes would usually hold no pair, and Recall@K
    would be undefined; the retrieval kind draws whole class groups, so every size works."""
    p = prepare_finetune(_cell("glyphs-retrieval", queries=6), cell_env)
    sizes = (2, 5, 8, 17, 33)
    values = [p.oracle.query(p.model, batch_size=n) for n in sizes]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert p.oracle.spent.calls == len(sizes) and p.oracle.spent.examples >= sum(sizes)
