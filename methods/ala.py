"""`ala`: Adaptive Loss Alignment (Huang et al., ICML 2019): an RL controller adapts the parameters of
the task's loss family while the model finetunes, so the loss tracks the target metric.

The loss family is the task kind's (`TaskView.loss_family`): classification `-sigmoid(y^T Phi log p)`
with Phi a C x C class-relation matrix starting at identity (binary: 2 x 2), the circle loss's margin
and scale for retrieval, the weights of the detector's loss terms for detection.

Every `interval` steps the controller
1. observes the state: the validation statistics (`oracle.statistics`, account `stats`: a row-normalised
   confusion matrix, similarity statistics, per-class AP), their change since the last decision, the
   current loss parameters, training progress and the last reward;
2. is rewarded for its previous action by the sign of the target metric's change on all of val since
   that action (`oracle.query`, account `queries`; the metric's direction read from the oracle);
3. acts on every loss parameter: -beta, 0 or +beta (times max(1, |initial value|), so a scale of 80
   and a weight of 1 move alike).

The policy is one small MLP shared by all loss parameters: each parameter's row of the state (its
own confusion entry for an entry of Phi; the whole, small, statistics vector with a one-hot identity
for the parameters of other kinds) gives three action logits. It learns online by REINFORCE: an
action's return is its discounted rewards over the next `horizon` decisions, minus a moving-average
baseline. The paper's controller is trained across many training runs; within one cell's budget
ours learns within the run. These, and every default in the option help marked "ours", are our
choices where the paper is not available to us; K = 200 steps scaled to the budget, beta = 0.1 and
the discount 0.9 follow the specification's defaults.
"""

from __future__ import annotations

import math

import torch
from metricbench.bench.core.seeding import seeded_module
from metricbench.methods import Option, non_negative, positive, register_method
from metricbench.methods.base import Method
from metricbench.methods.loss_training import LossTrainer, finetune_recipe, loss_training_options
from torch import nn

ACTIONS = torch.tensor([-1.0, 0.0, 1.0])  # the action index 0/1/2 as a step direction


class LossController:
    """The policy over loss-parameter actions and its REINFORCE update.

    `act(state)` samples one action per row of `state` (E x F); `reinforce(decisions, returns)` takes
    one policy-gradient step on the advantages `return - baseline` and moves the baseline (a moving
    average of returns) toward the returns.
    """

    def __init__(
        self,
        features: int,
        hidden: int,
        lr: float,
        baseline_momentum: float,
        generator: torch.Generator,
        initial_keep: float,
    ):
        self.generator = generator
        self.policy = seeded_module(
            lambda: nn.Sequential(nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, len(ACTIONS))), generator
        )
        with torch.no_grad():  # an untrained policy mostly keeps the loss (ours): else its first acts are a random walk
            self.policy[-1].weight.mul_(0.1)
            self.policy[-1].bias.copy_(torch.tensor([1 - initial_keep, 2 * initial_keep, 1 - initial_keep]).div(2).log())
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.baseline_momentum = baseline_momentum
        self.baseline: float | None = None

    def probabilities(self, state: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(self.policy(state), dim=-1)

    def act(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(actions in {-1, 0, +1} per row, the sampled action indices)."""
        choice = torch.multinomial(self.probabilities(state), 1, generator=self.generator).squeeze(1)
        return ACTIONS[choice], choice

    def reinforce(self, decisions: list[tuple[torch.Tensor, torch.Tensor]], returns: list[float]) -> None:
        """One policy-gradient step on (state, action indices) pairs and their returns. The
        log-probabilities are recomputed with the current policy (the one that acted has since been
        updated in place)."""
        if not decisions:
            return
        baseline = sum(returns) / len(returns) if self.baseline is None else self.baseline
        advantages = torch.tensor(returns) - baseline
        # the mean over parameters keeps the step size independent of how many parameters there are
        log_probs = torch.stack(
            [torch.log_softmax(self.policy(state), dim=-1).gather(1, choice[:, None]).mean() for state, choice in decisions]
        )
        loss = -(advantages * log_probs).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        for g in returns:
            self.baseline = (
                g if self.baseline is None else self.baseline_momentum * self.baseline + (1 - self.baseline_momentum) * g
            )


class DiscountedReturns:
    """Actions wait here until `horizon` rewards have followed them; then their return (the discounted
    sum of those rewards) is final. `reward(r)` returns the actions it completed. Actions still
    waiting when the run ends are never rewarded: the policy's update would come too late to matter."""

    def __init__(self, horizon: int, discount: float):
        self.horizon = horizon
        self.discount = discount
        self._pending: list[list] = []  # [decision, return so far, rewards seen]

    def add(self, decision) -> None:
        self._pending.append([decision, 0.0, 0])

    def reward(self, r: float) -> tuple[list, list[float]]:
        for entry in self._pending:
            entry[1] += self.discount ** entry[2] * r
            entry[2] += 1
        done = [e for e in self._pending if e[2] >= self.horizon]
        self._pending = [e for e in self._pending if e[2] < self.horizon]
        return [e[0] for e in done], [e[1] for e in done]


def state_features(
    statistics: dict[str, torch.Tensor],
    previous: dict[str, torch.Tensor] | None,
    params: dict[str, torch.Tensor],
    initial: dict[str, torch.Tensor],
    progress: float,
    last_reward: float,
) -> torch.Tensor:
    """The state as one row of features per loss-parameter entry (E x F, on the CPU).

    A class-relation matrix `phi` with a `confusion` statistic of its shape pairs entry (i, j) with
    confusion (i, j): [confusion, its change, phi - initial, i == j, progress, last reward]. Any other
    loss family's entries each see the whole statistics vector: [statistics, their change, its own
    (value - initial) / max(1, |initial|), progress, last reward, one-hot of the entry]."""
    change = {k: v - previous[k] if previous is not None else torch.zeros_like(v) for k, v in statistics.items()}
    phi, confusion = params.get("phi"), statistics.get("confusion")
    if len(params) == 1 and phi is not None and confusion is not None and confusion.shape == phi.shape:
        c = phi.shape[0]
        return torch.stack(
            [
                confusion.reshape(-1),
                change["confusion"].reshape(-1),
                (phi.cpu() - initial["phi"].cpu()).reshape(-1),
                torch.eye(c).reshape(-1),
                torch.full((c * c,), progress),
                torch.full((c * c,), last_reward),
            ],
            dim=1,
        ).float()
    vector = torch.cat([statistics[k].reshape(-1).float() for k in sorted(statistics)])
    delta = torch.cat([change[k].reshape(-1).float() for k in sorted(statistics)])
    relative = torch.cat(
        [((params[k].cpu() - initial[k].cpu()) / initial[k].cpu().abs().clamp_min(1)).reshape(-1) for k in params]
    )
    entries = len(relative)
    shared = torch.cat([vector, delta, torch.tensor([progress, last_reward])])
    return torch.cat([shared.expand(entries, -1), relative[:, None], torch.eye(entries)], dim=1).float()


def apply_actions(params, initial, actions: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    """Parameters moved by beta * action * max(1, |initial|); parameters that start positive (a scale, a
    loss term's weight) stay at or above one such step, so no action switches a loss term off."""
    moved, offset = {}, 0
    for name, value in params.items():
        n = value.numel()
        unit = initial[name].abs().clamp_min(1)
        step = beta * unit * actions[offset : offset + n].reshape(value.shape).to(value)
        new = value + step.to(value.device)
        if bool((initial[name] > 0).all()):
            new = torch.maximum(new, (beta * unit).to(new))
        moved[name] = new
        offset += n
    return moved


def decision_plan(steps: int, interval: int, queries: int, stats: int) -> tuple[int, int]:
    """(interval, number of decisions): every decision costs one query and one statistics call. An
    interval of 0 spreads the decisions the budget allows evenly over the steps."""
    affordable = min(queries, stats)
    if affordable < 1 or steps < 1:
        return max(interval, 1), 0
    if interval <= 0:
        interval = math.ceil(steps / min(affordable, steps))
    return interval, min(math.ceil(steps / interval), affordable)


def parameter_drift(params, initial) -> float:
    """||params - initial|| / ||initial|| over all loss parameters (0 at the start)."""
    num = sum(float((params[k].cpu() - initial[k].cpu()).pow(2).sum()) for k in params)
    den = sum(float(initial[k].pow(2).sum()) for k in params)
    return math.sqrt(num / max(den, 1e-12))


@register_method(
    "ala",
    "Adaptive Loss Alignment: an RL controller (REINFORCE) adapts the loss family's parameters from val statistics and "
    "the sign of the metric's change",
    options={
        **loss_training_options(),
        "interval": Option(
            int,
            0,
            "K: steps between controller decisions (0: spread the decisions the queries and stats budgets allow evenly; "
            "the specification's 200 for long runs)",
            check=non_negative,
            requirement="0 or more",
        ),
        "beta": Option(
            float,
            0.1,
            "size of one action on a loss parameter; specification's default (ours: times max(1, |initial value|))",
            check=positive,
            requirement="positive",
        ),
        "discount": Option(
            float,
            0.9,
            "discount of later rewards in an action's return; specification's default",
            check=lambda g: 0 <= g <= 1,
            requirement="between 0 and 1",
        ),
        "horizon": Option(
            int,
            3,
            "rewards that make up an action's return (truncated online returns); ours",
            check=positive,
            requirement="at least 1",
        ),
        "policy_hidden": Option(int, 32, "hidden units of the policy MLP; ours", check=positive, requirement="at least 1"),
        "policy_lr": Option(float, 0.01, "Adam learning rate of the policy; ours", check=positive, requirement="positive"),
        "baseline_momentum": Option(
            float,
            0.9,
            "momentum of the moving-average reward baseline; ours",
            check=lambda m: 0 <= m < 1,
            requirement="in [0, 1)",
        ),
        "initial_keep": Option(
            float,
            0.8,
            "probability with which the untrained policy keeps a parameter (its actions start mostly 0); ours",
            check=lambda p: 0 < p < 1,
            requirement="strictly between 0 and 1",
        ),
        "squash": Option(
            str,
            "sigmoid",
            "classification: the paper's sigmoid around y^T Phi log p, or none (Phi = identity is then exactly cross-entropy)",
            ("sigmoid", "none"),
        ),
    },
)
class AdaptiveLossAlignment(Method):
    def finetune(self, model, task, oracle, ctx):
        o = self.options
        recipe = finetune_recipe(o, task.finetune_recipe, ctx.budget.steps)
        family = task.loss_family(squash=o["squash"]) if task.kind == "classification" else task.loss_family()
        initial = {k: v.detach().to(ctx.device, torch.float32) for k, v in family.init_params().items()}
        params = dict(initial)
        interval, decisions = decision_plan(recipe.steps, o["interval"], ctx.remaining("queries"), ctx.remaining("stats"))
        improvement = -oracle.sign  # the metric times this grows when it gets better
        trainer = LossTrainer(model, recipe)
        batches = task.train_batches(recipe.batch_size)
        controller, returns = None, DiscountedReturns(o["horizon"], o["discount"])
        previous_stats, previous_value, last_reward, made = None, None, 0.0, 0
        model.train()
        for step in range(recipe.steps):
            if made < decisions and step % interval == 0:
                statistics = oracle.statistics(model)
                value = oracle.query(model)
                if previous_value is not None:
                    last_reward = (
                        float(math.copysign(1.0, improvement * (value - previous_value))) if value != previous_value else 0.0
                    )
                    if controller is not None:
                        controller.reinforce(*returns.reward(last_reward))
                    ctx.log("ala_reward", last_reward)
                state = state_features(statistics, previous_stats, params, initial, step / recipe.steps, last_reward)
                if controller is None:
                    controller = LossController(
                        state.shape[1],
                        o["policy_hidden"],
                        o["policy_lr"],
                        o["baseline_momentum"],
                        ctx.generator,
                        o["initial_keep"],
                    )
                actions, choice = controller.act(state)
                returns.add((state, choice))
                params = apply_actions(params, initial, actions, o["beta"])
                previous_stats, previous_value, made = statistics, value, made + 1
                ctx.log("ala_val_metric", value)
                ctx.log("ala_action_mean", actions.mean())
                ctx.log("ala_action_nonzero", (actions != 0).float().mean())
                ctx.log("ala_loss_param_drift", parameter_drift(params, initial))
            batch = next(batches)
            loss = family(task.forward(model, batch), batch.targets, params)
            trainer.update(loss)
            ctx.step(loss)
        for name, value in params.items():
            if value.numel() <= 4:
                for i, v in enumerate(value.reshape(-1).tolist()):
                    ctx.log(f"ala_param_{name}" + (f"_{i}" if value.numel() > 1 else ""), v)
        return ctx.finish()
