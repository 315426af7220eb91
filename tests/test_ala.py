"""`ala`: the class-relation loss at Phi = identity orders predictions like cross-entropy and keeps a
finite gradient where p -> 0; the REINFORCE controller learns an action it is always rewarded for;
returns, plans and actions follow their definitions; a cell spends exactly the queries and statistics
calls of its decisions, reproducibly."""

from __future__ import annotations

import pytest
import torch
from metricbench.bench.core.budget import Budget
from metricbench.bench.run.cell import CellEnv, run_cell
from metricbench.bench.run.suite import load_suite
from metricbench.methods.ala import DiscountedReturns, LossController, apply_actions, decision_plan, state_features
from metricbench.tasks.kinds.classification import ClassRelationLoss


def _per_example(loss, logits, targets, params=None):
    return torch.stack([loss(logits[i : i + 1], targets[i : i + 1], params) for i in range(len(targets))])


@pytest.mark.parametrize("classes", [2, 5])
def test_the_sigmoid_loss_at_identity_ranks_predictions_like_cross_entropy(classes):
    g = torch.Generator().manual_seed(0)
    n = 200
    logits = 3 * torch.randn(n, 1 if classes == 2 else classes, generator=g)
    targets = torch.randint(0, classes, (n,), generator=g)
    ala = ClassRelationLoss(classes, squash="sigmoid")
    cross_entropy = ClassRelationLoss(classes, squash="none")
    phi = ala.init_params()
    ours = _per_example(ala, logits, targets, phi)
    reference = _per_example(cross_entropy, logits, targets)
    assert torch.equal(ours.argsort(), reference.argsort())
    assert not torch.allclose(ours, reference)  # a different loss, the same order


@pytest.mark.parametrize("classes", [2, 5])
def test_the_sigmoid_loss_has_a_finite_gradient_where_the_true_class_probability_vanishes(classes):
    width = 1 if classes == 2 else classes
    logits = torch.zeros(3, width)
    targets = torch.tensor([1, 1, 0])
    logits[:, 0] = 1e4 if classes > 2 else -1e4  # p(true class) ~ exp(-1e4): log p would be -inf if taken naively
    logits.requires_grad_(True)
    ala = ClassRelationLoss(classes, squash="sigmoid")
    phi = ala.init_params()
    phi["phi"] = phi["phi"] + 0.1  # off-diagonal relations too
    loss = ala(logits, targets, phi)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_a_controller_always_rewarded_for_one_action_learns_to_take_it():
    """Six loss parameters share one scalar reward, the fraction of them that took +beta (the credit
    assignment ALA's controller faces); at the default policy learning rate it learns to take +beta."""
    controller = LossController(4, 16, 0.01, 0.9, torch.Generator().manual_seed(0), initial_keep=0.8)  # policy lr 0.01
    states = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    before = controller.probabilities(states)[:, 2].mean().item()
    for _ in range(500):
        actions, choice = controller.act(states)
        controller.reinforce([(states, choice)], [float((actions == 1).float().mean())])
    after = controller.probabilities(states)[:, 2].mean().item()
    assert before < 0.2 and after > 0.9, (before, after)


def test_the_untrained_policy_mostly_keeps_the_loss():
    controller = LossController(4, 16, 0.01, 0.9, torch.Generator().manual_seed(0), initial_keep=0.8)
    keep = controller.probabilities(torch.randn(50, 4, generator=torch.Generator().manual_seed(1)))[:, 1]
    assert torch.allclose(keep, torch.full_like(keep, 0.8), atol=0.1)


def test_returns_are_discounted_sums_over_the_horizon():
    returns = DiscountedReturns(horizon=2, discount=0.5)
    returns.add("a")
    assert returns.reward(1.0) == ([], [])
    returns.add("b")
    assert returns.reward(-1.0) == (["a"], [1.0 - 0.5])
    assert returns.reward(1.0) == (["b"], [-1.0 + 0.5])


def test_the_decision_plan_never_exceeds_the_budget():
    assert decision_plan(100, 0, queries=10, stats=10) == (10, 10)
    assert decision_plan(100, 0, queries=10, stats=4) == (25, 4)
    assert decision_plan(8, 0, queries=20, stats=20) == (1, 8)
    assert decision_plan(100, 30, queries=10, stats=10) == (30, 4)
    assert decision_plan(100, 5, queries=3, stats=10) == (5, 3)
    assert decision_plan(100, 0, queries=0, stats=10)[1] == 0


def test_actions_scale_with_the_initial_value_and_positive_parameters_stay_positive():
    initial = {"margin": torch.tensor(0.4), "scale": torch.tensor(80.0)}
    moved = apply_actions(initial, initial, torch.tensor([1.0, -1.0]), beta=0.1)
    assert moved["margin"].item() == pytest.approx(0.5) and moved["scale"].item() == pytest.approx(72.0)
    for _ in range(20):
        moved = apply_actions(moved, initial, torch.tensor([-1.0, -1.0]), beta=0.1)
    assert moved["margin"].item() == pytest.approx(0.1) and moved["scale"].item() == pytest.approx(8.0)
    phi = {"phi": torch.eye(2)}
    assert torch.allclose(apply_actions(phi, phi, torch.tensor([-1.0, 0, 0, 0]), 0.1)["phi"], torch.tensor([[0.9, 0], [0, 1]]))


def test_state_rows_pair_each_phi_entry_with_its_confusion_entry():
    confusion = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    phi = {"phi": torch.eye(2)}
    state = state_features({"confusion": confusion}, None, phi, phi, progress=0.5, last_reward=1.0)
    assert state.shape == (4, 6)
    assert torch.equal(state[:, 0], confusion.reshape(-1)) and torch.equal(state[:, 3], torch.eye(2).reshape(-1))
    other = state_features(
        {"similarity": torch.arange(4.0)},
        None,
        {"margin": torch.tensor(0.4), "scale": torch.tensor(80.0)},
        {"margin": torch.tensor(0.4), "scale": torch.tensor(80.0)},
        0.0,
        0.0,
    )
    assert other.shape == (2, 4 + 4 + 2 + 1 + 2) and torch.equal(other[:, -2:], torch.eye(2))


def _cell(task, steps, queries, **limits):
    (cell,) = load_suite("smoke").select(tasks=[task], methods=["ala"]).cells()
    return type(cell)(**{**cell.__dict__, "budget": Budget(steps=steps, queries=queries, **limits)})


def test_ala_spends_one_query_and_one_statistics_call_per_decision_reproducibly(tmp_path, checkpoint_cache):
    env = CellEnv(device="cpu", out_dir=str(tmp_path), cache_dir=str(checkpoint_cache))
    records = [run_cell(_cell("breast-cancer", steps=9, queries=3, stats=5), env) for _ in range(2)]
    record = records[0]
    assert record["status"] == "ok", record["reason"]
    spent = {account: v["calls"] for account, v in record["spent"].items()}
    assert spent == {"steps": 9, "queries": 3, "batch_queries": 0, "batch_scores": 0, "stats": 3}
    logs = record["history"]["logs"]
    assert [s for s, _ in logs["ala_val_metric"]] == [0, 3, 6] and len(logs["ala_reward"]) == 2
    assert records[0]["metrics"] == records[1]["metrics"] and records[0]["history"] == records[1]["history"]
