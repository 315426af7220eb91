"""The observation channel is sealed: cheating methods are caught or see nothing.

Each route a method could take to the harness's own evaluations or to the test split is tried by a
method written to cheat: the val curves that used to sit on `ctx`, the monitor, the oracle's private
fields, the globals of the functions it can see (which used to lead to the split cache), and taking
more optimizer steps than it reports. The object-graph walk follows private attributes, closures and
the globals of every function it meets (modules themselves aside: a method importing the harness is
review's business, and the AST rules in test_layering.py keep the repository's own methods honest).
"""

from __future__ import annotations

import gc
import sys
import types

import pytest
import torch
from helpers.small_cells import small_cell
from metricbench.bench.core.budget import Budget
from metricbench.bench.run.cell import SplitCache, prepare_finetune, run_cell
from metricbench.bench.run.metering import StepMeter, metering
from metricbench.methods import create_method
from metricbench.methods.base import Method
from metricbench.tasks.data.splits import Splits

# walking every object torch's module globals lead to touches its deprecated aliases, which warn
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _cell(task="digits", method="surrogate", steps=6):
    cell = small_cell(task)
    return type(cell)(**{**cell.__dict__, "method": method, "method_options": {}, "budget": Budget(steps=steps, queries=3)})


def reachable(roots, targets) -> list:
    """Objects of `targets` (or tensors sharing their storage) reachable from `roots` through any
    reference: public and private attributes, containers, bound methods, closures, defaults and the
    globals of functions (module objects are not entered; their dicts are, when a function's
    `__globals__` leads there)."""
    target_ids = {id(t) for t in targets}
    target_storages = {t.untyped_storage().data_ptr() for t in targets if isinstance(t, torch.Tensor)}
    seen, stack, found = set(), list(roots), []
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            continue
        if id(obj) in target_ids or (isinstance(obj, torch.Tensor) and obj.untyped_storage().data_ptr() in target_storages):
            found.append(obj)
            continue
        stack.extend(gc.get_referents(obj))  # a function's include __globals__, __closure__ and __defaults__
    return found


def _handed(p):
    return [p.model, p.view, p.oracle, p.ctx, create_method("surrogate"), create_method("es")]


@pytest.mark.parametrize("task", ["digits", "glyphs-retrieval", "shapes-detection"])
def test_the_test_split_and_the_harness_evaluations_are_unreachable_even_privately(task, cell_env):
    cache = SplitCache()
    p = prepare_finetune(_cell(task), cell_env, cache)
    test = p.splits.test
    secrets = [p.splits, test, p.meter, p.meter.curves, p.meter.monitor, cache]
    if hasattr(test, "inputs"):
        secrets += [test.inputs, test.targets]
    with metering(p.meter, "probe"):  # as while a method runs
        p.meter.observe()
        assert p.meter.curves  # the harness has its curve...
        assert reachable(_handed(p), secrets) == []  # ...and nothing a method holds leads to it
    # the walk does find what is reachable: val through the oracle's private state, train through the view
    assert reachable([p.oracle], [p.splits.val])
    assert reachable([p.view], [p.splits.train])


def test_val_inputs_and_labels_are_not_public(cell_env):
    p = prepare_finetune(_cell(), cell_env)
    val = p.splits.val

    def public_walk(roots):
        seen, stack, found = set(), list(roots), []
        while stack:
            obj = stack.pop()
            if id(obj) in seen or isinstance(obj, (types.ModuleType, type, types.FunctionType)):
                continue
            seen.add(id(obj))
            if obj is val or (isinstance(obj, torch.Tensor) and obj.untyped_storage().data_ptr() in storages):
                found.append(obj)
                continue
            if isinstance(obj, dict):
                stack.extend(obj.values())
            elif isinstance(obj, (list, tuple, set)):
                stack.extend(obj)
            elif hasattr(obj, "__dict__"):
                stack.extend(v for k, v in vars(obj).items() if not k.startswith("_"))
        return found

    storages = {val.inputs.untyped_storage().data_ptr(), val.targets.untyped_storage().data_ptr()}
    batch = p.oracle.batch(10)
    assert public_walk([p.oracle, p.view, p.ctx, batch]) == []


class PeekAtPublicCurves(Method):
    def finetune(self, model, task, oracle, ctx):
        ctx.history.curves[oracle.metric]  # where the runner's val curve used to be
        return ctx.finish()


class CallThePrivateMonitor(Method):
    def finetune(self, model, task, oracle, ctx):
        ctx._monitor(model)
        return ctx.finish()


class EvaluateThroughPrivateOracleFields(Method):
    def finetune(self, model, task, oracle, ctx):
        oracle._task.evaluate(model, oracle._val)  # all of val, every metric, for free
        return ctx.finish()


class SearchTheGlobalsForSplits(Method):
    """Walks everything reachable from what it holds, globals of functions included, for a `Splits`
    (the old route: `gc.get_referents(ctx._monitor.__globals__['_load_splits'])`); trains on its
    test split if found."""

    def finetune(self, model, task, oracle, ctx):
        seen, stack = set(), [model, task, oracle, ctx]
        while stack:
            obj = stack.pop()
            if id(obj) in seen or isinstance(obj, types.ModuleType):
                continue
            seen.add(id(obj))
            if isinstance(obj, Splits):
                raise AssertionError("found the splits")
            stack.extend(gc.get_referents(obj))
        return ctx.finish()


class UnderReportSteps(Method):
    def finetune(self, model, task, oracle, ctx):
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        batches = task.train_batches(16)
        for i in range(ctx.budget.steps):
            loss = task.loss(model, next(batches))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if i % 2 == 0:
                ctx.step(loss)
        return ctx.finish()


class OverspendSteps(Method):
    def finetune(self, model, task, oracle, ctx):
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        batches = task.train_batches(16)
        for _ in range(10 * ctx.budget.steps):  # reports none of them
            loss = task.loss(model, next(batches))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return ctx.finish()


class StepsOnACopyAreAuxiliary(Method):
    def finetune(self, model, task, oracle, ctx):
        import copy

        clone = copy.deepcopy(model)
        optimizer = torch.optim.SGD(clone.parameters(), lr=1e-3)
        batches = task.train_batches(16)
        for _ in range(3):
            loss = task.loss(clone, next(batches))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return ctx.finish()


@pytest.mark.parametrize(
    "cheat, outcome",
    [
        (PeekAtPublicCurves, "AttributeError: 'FinetuneContext' object has no attribute 'history'"),
        (CallThePrivateMonitor, "AttributeError: 'FinetuneContext' object has no attribute '_monitor'"),
        (EvaluateThroughPrivateOracleFields, "MetricSealed: metric 'misclassification' was computed while method 'cheat' ran"),
        (UnderReportSteps, "UnreportedSteps: the method took 3 optimizer steps on the model's parameters but reported 1"),
        (OverspendSteps, "UnreportedSteps: the method took 2 optimizer steps"),
    ],
)
def test_a_cheating_method_fails_its_cell_with_a_reason(cheat, outcome, temporary_method, tmp_path, checkpoint_cache):
    from metricbench.bench.run.cell import CellEnv

    temporary_method("cheat", cheat)
    record = run_cell(_cell(method="cheat"), CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache)))
    assert record["status"] == "failed" and record["reason"].startswith(outcome), record["reason"]
    assert record["metrics"] == {}


def test_a_method_searching_every_reference_it_holds_finds_no_split(temporary_method, tmp_path, checkpoint_cache):
    from metricbench.bench.run.cell import CellEnv

    temporary_method("cheat", SearchTheGlobalsForSplits)
    record = run_cell(_cell(method="cheat"), CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache)))
    assert record["status"] == "ok", record["reason"]


def test_optimizer_steps_beyond_the_budget_fail_even_when_reported(cell_env):
    p = prepare_finetune(_cell(steps=3), cell_env)
    optimizer = torch.optim.SGD(p.model.parameters(), lr=1e-3)
    batches = p.view.train_batches(16)
    with metering(p.meter, "probe"), pytest.raises(Exception, match="budget 'steps' exhausted"):
        for _ in range(5):
            loss = p.view.loss(p.model, next(batches))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            p.ctx.step(loss)
    assert p.meter.optimizer_steps == 4


def test_steps_on_a_copy_of_the_model_are_counted_apart(temporary_method, tmp_path, checkpoint_cache):
    from metricbench.bench.run.cell import CellEnv

    temporary_method("aux", StepsOnACopyAreAuxiliary)
    record = run_cell(_cell(method="aux"), CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache)))
    assert record["status"] == "ok"
    assert record["steps"] == {"reported_steps": 0, "optimizer_steps": 0, "aux_optimizer_steps": 3}


def test_the_meter_is_inactive_outside_finetuning(cell_env):
    p = prepare_finetune(_cell(), cell_env)
    optimizer = torch.optim.SGD(p.model.parameters(), lr=1e-3)
    loss = p.view.loss(p.model, next(p.view.train_batches(8)))
    loss.backward()
    optimizer.step()  # no meter active: nothing counted, nothing raised
    assert p.meter.optimizer_steps == 0
    assert isinstance(p.meter, StepMeter) and "metricbench.bench.run.metering" in sys.modules
