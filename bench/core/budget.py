"""What a method may spend in one cell, and the ledger that meters it.

A method spends several currencies, and they are not interchangeable: a full-val metric query costs
a pass over all of val; an evaluation of a candidate on a fixed val mini-batch costs a pass over a
few examples; scoring the method's own predictions on a training batch costs no forward at all. One
`Budget` names a limit for each account, the same for every method of a cell; one `Ledger` per cell
authorises a charge before it runs and records calls, examples and seconds per account, so the
record (and the tables) show what each method spent, not only whether it stayed within its limits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from metricbench.bench.core.errors import BudgetExhausted

# account -> what one call buys; the order is the order of records and tables
ACCOUNTS = {
    "steps": "an optimizer step that updates the model's parameters (`ctx.step`)",
    "queries": "the target metric on all of val (`oracle.query(model)`)",
    "batch_queries": "the target metric on a fixed val mini-batch, per model or candidate (`oracle.query(model, on=batch)`, "
    "`oracle.query_candidates`)",
    "batch_scores": "the target metric of predictions the method made itself, e.g. on a training batch (`oracle.score`)",
    "stats": "validation statistics, e.g. a confusion matrix (`oracle.statistics`)",
}

# our defaults for the accounts a task's budget does not set (not from any paper): enough for an
# antithetic ES population of 16 per step, a batch score per step (DAB), and as many statistics
# calls as full-val queries (ALA observes them where it would query)
BATCH_QUERIES_PER_STEP = 16
BATCH_SCORES_PER_STEP = 1


@dataclass(frozen=True)
class Budget:
    """Limits on each account for one cell (calls). Unset accounts get documented defaults from
    `steps` and `queries`; `0` means none may be spent."""

    steps: int
    queries: int
    batch_queries: int | None = None
    batch_scores: int | None = None
    stats: int | None = None

    def __post_init__(self):
        for account in ACCOUNTS:
            value = getattr(self, account)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"budget '{account}' must be a non-negative integer, got {value!r}")

    def limit(self, account: str) -> int:
        """The account's limit in calls; an unset account's default follows `steps` and `queries`."""
        value = getattr(self, account)
        if value is not None:
            return value
        return {
            "batch_queries": BATCH_QUERIES_PER_STEP * self.steps,
            "batch_scores": BATCH_SCORES_PER_STEP * self.steps,
            "stats": self.queries,
        }[account]

    def overridden(self, **limits: int) -> Budget:
        """This budget with the given accounts' limits replaced (the suite's `[budget]` table)."""
        return replace(self, **limits)

    def to_dict(self) -> dict[str, int]:
        """Every account's limit (defaults resolved: two budgets with the same limits are the same)."""
        return {account: self.limit(account) for account in ACCOUNTS}


@dataclass
class Account:
    """What was spent on one account."""

    calls: int = 0
    examples: int = 0
    seconds: float = 0.0


@dataclass
class Ledger:
    """The accounts of one cell against its `Budget`. `authorise` before the work, `charge` after."""

    budget: Budget
    accounts: dict[str, Account] = field(default_factory=lambda: {name: Account() for name in ACCOUNTS})

    def remaining(self, account: str) -> int:
        return self.budget.limit(account) - self.accounts[account].calls

    def authorise(self, account: str, calls: int = 1) -> None:
        """Raise `BudgetExhausted` unless `calls` more calls fit in the account's limit."""
        if calls > self.remaining(account):
            spent, limit = self.accounts[account].calls, self.budget.limit(account)
            raise BudgetExhausted(
                f"budget '{account}' exhausted: {spent} of {limit} spent, {calls} more asked for; "
                f"check `remaining('{account}')` before spending"
            )

    def charge(self, account: str, calls: int = 1, examples: int = 0, seconds: float = 0.0) -> None:
        spent = self.accounts[account]
        spent.calls += calls
        spent.examples += examples
        spent.seconds += seconds

    def to_dict(self) -> dict[str, dict]:
        """{account: {calls, examples, seconds, limit}} for the record."""
        return {name: {**asdict(spent), "limit": self.budget.limit(name)} for name, spent in self.accounts.items()}
