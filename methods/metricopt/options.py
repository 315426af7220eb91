"""MetricOpt's options (one table: each with its default, where the default comes from, and its check), which
of them shape the meta-trained stage, and how the stage's meta-training lengths scale with the cell's
step budget."""

from __future__ import annotations

from metricbench.methods import Option, non_negative, positive


def _probability(value) -> bool:
    return 0 <= value <= 1


# A stage's work scales with the cells it serves: a smoke cell of 8 steps gets a stage of seconds, a
# quick cell of 100 steps the sizes the metricopt suite pins (200 Reptile steps, 100 rule steps).
META_STEPS_PER_STEP = 2
MAX_META_STEPS = 200
MAX_RULE_META_STEPS = 100


def stage_sizes(options: dict, cell_steps: int) -> dict[str, int]:
    """The stage's meta-training lengths: the options where given, else sized from the cell's step budget."""
    return {
        "meta_steps": options["meta_steps"] or min(MAX_META_STEPS, META_STEPS_PER_STEP * cell_steps),
        "rule_meta_steps": options["rule_meta_steps"] or min(MAX_RULE_META_STEPS, cell_steps),
    }


METRICOPT_OPTIONS = {
    "optimizer": Option(
        str,
        "adam",
        "what the Guided-ES estimate is handed to: the paper's SGD and Adam variants, or a learned update rule "
        "meta-trained on the value function in the stage (its design is ours: methods/metricopt/learned_update.py)",
        ("sgd", "adam", "learned"),
    ),
    "lr": Option(float, 0.01, "learning rate of the adapters' optimizer; ours", check=positive, requirement="positive"),
    "pairs": Option(
        int,
        2,
        "antithetic pairs per step (2 x pairs batch queries); reference: one or a few",
        check=positive,
        requirement="at least 1",
    ),
    "sigma": Option(float, 0.1, "Guided ES perturbation scale; reference", check=positive, requirement="positive"),
    "alpha": Option(
        float,
        0.5,
        "weight of the full space against the guiding subspace; reference",
        check=_probability,
        requirement="between 0 and 1",
    ),
    "beta": Option(float, 2.0, "Guided ES gradient scale; reference", check=positive, requirement="positive"),
    "val_batch": Option(
        int,
        0,
        "val examples per fixed mini-batch (0: 256, or half of val if smaller); ours",
        check=non_negative,
        requirement="0 or more",
    ),
    "refresh_every": Option(
        int, 10, "draw a fresh val mini-batch every this many steps; ours", check=positive, requirement="at least 1"
    ),
    "use_value": Option(
        bool, True, "guide ES with the value function (false: the loss gradient alone, the guided-es-loss ablation)"
    ),
    "meta": Option(
        bool, True, "meta-train the value function in a stage before the cells (false: online only, the no-meta ablation)"
    ),
    "ordinal": Option(bool, True, "the ordinal-embedding term of the value loss (false: the no-oe ablation)"),
    "gamma": Option(float, 1.0, "weight of the regression term in the value loss; ours", check=positive, requirement="positive"),
    "fisher_threshold": Option(
        float,
        1.0,
        "Fisher's-ratio threshold between positives and negatives; specification",
        check=positive,
        requirement="positive",
    ),
    "trajectories": Option(
        int,
        6,
        "trajectories in the stage (the last held out for the diagnostic); ours",
        check=lambda n: n >= 2,
        requirement="at least 2",
    ),
    "trajectory_steps": Option(
        int,
        0,
        "surrogate steps per trajectory (0: half the cell's step budget); ours",
        check=non_negative,
        requirement="0 or more",
    ),
    "observe_every": Option(
        int, 5, "steps between a trajectory's metric observations; ours", check=positive, requirement="at least 1"
    ),
    "trajectory_lr": Option(
        float,
        0.01,
        "base Adam learning rate of the trajectories (each draws one within 10x of it); ours",
        check=positive,
        requirement="positive",
    ),
    "start_noise": Option(
        float,
        0.05,
        "std of the perturbation of phi each trajectory starts from; ours",
        check=non_negative,
        requirement="0 or more",
    ),
    "meta_steps": Option(
        int,
        0,
        f"Reptile outer steps (0: sized from the cell's budget, {META_STEPS_PER_STEP} per cell step, at most "
        f"{MAX_META_STEPS}); ours",
        check=non_negative,
        requirement="0 or more",
    ),
    "inner_steps": Option(int, 5, "Reptile inner Adam steps; reference: a handful", check=positive, requirement="at least 1"),
    "inner_lr": Option(float, 1e-3, "Reptile inner Adam learning rate; reference", check=positive, requirement="positive"),
    "epsilon": Option(float, 0.1, "Reptile step size, annealed to 0; reference", check=positive, requirement="positive"),
    "width": Option(
        int, 64, "the value function's input: phi projected to this many values; ours", check=positive, requirement="at least 1"
    ),
    "phi_scale": Option(
        float, 0.1, "phi - phi_0 is divided by this before the projection; ours", check=positive, requirement="positive"
    ),
    "hidden": Option(int, 64, "hidden units of the value function; ours", check=positive, requirement="at least 1"),
    "embedding": Option(int, 32, "size of the value function's embedding g; ours", check=positive, requirement="at least 1"),
    "refine_steps": Option(
        int,
        5,
        "value-function updates on the observations after each step; ours",
        check=non_negative,
        requirement="0 or more",
    ),
    "refine_lr": Option(float, 1e-3, "Adam learning rate of the online refinement; ours", check=positive, requirement="positive"),
    "meta_tasks": Option(
        str,
        "",
        "comma-separated meta-training tasks whose train and val splits the stage learns from, e.g. "
        "'digits,synthetic-binary' (each must have the cell's target metric; others than the cell's take their default "
        "options); empty: the cell's own task",
    ),
    "value_from": Option(
        str,
        "",
        "transfer: use the value function (and learned rule) of a stage built elsewhere instead of building one: "
        "a value_function.pt file or its folder, a stage id, or the MLflow run id of a cell that used it "
        "(a phi of another size is projected as in PhiProjection); empty: build this cell's own",
    ),
    "rule_hidden": Option(
        int, 16, "learned rule: hidden units of its per-coordinate network; ours", check=positive, requirement="at least 1"
    ),
    "rule_meta_steps": Option(
        int,
        0,
        f"learned rule: meta-training steps on the value function (0: sized from the cell's budget, one per cell step, "
        f"at most {MAX_RULE_META_STEPS}); ours",
        check=non_negative,
        requirement="0 or more",
    ),
    "rule_unroll": Option(int, 20, "learned rule: steps per unrolled run; ours", check=positive, requirement="at least 1"),
    "rule_lr": Option(
        float, 1e-3, "learned rule: Adam learning rate of its meta-training; ours", check=positive, requirement="positive"
    ),
    "rule_noise": Option(
        float,
        1.0,
        "learned rule: noise added to the value gradient it is fed, times that gradient's RMS (stands in for the ES "
        "estimate's); ours",
        check=non_negative,
        requirement="0 or more",
    ),
}


# the options that shape the stage: two cells that differ only in others share one meta-trained value function
STAGE_OPTIONS = (
    "val_batch", "gamma", "ordinal", "fisher_threshold", "trajectories", "trajectory_steps", "observe_every",
    "trajectory_lr", "start_noise", "meta_steps", "meta_tasks", "inner_steps", "inner_lr", "epsilon", "width", "phi_scale",
    "hidden", "embedding",
)  # fmt: skip


# and, for the learned update rule only, these (with `lr`: the rule is meta-trained at the step size it is used with)
RULE_OPTIONS = ("lr", "rule_hidden", "rule_meta_steps", "rule_unroll", "rule_lr", "rule_noise")
