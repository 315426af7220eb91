"""Exceptions with a meaning to the harness: what becomes exit code 2 (`UsageError`, `DataError`), and what fails
a cell (any other exception a method or task raises fails only its cell; these name the common causes)."""


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2, no traceback (unless --debug)."""


class Diverged(Exception):
    """A loss or metric became NaN or infinite."""


class BudgetExhausted(Exception):
    """A method asked for more of a budget account (steps, queries, ...) than the cell's budget allows."""


class UnreportedSteps(Exception):
    """A method took more optimizer steps on the model than it reported with `ctx.step`."""


class HookContractError(TypeError):
    """A task's or method's hook returned something the harness cannot use; the message says how to fix it."""


class DataError(UsageError):
    """A dataset on disk that cannot be used: a missing file, a truncated or malformed one. The message names
    the file (and the line, where the format has lines) and how to fix it; the invocation stops with exit 2."""
