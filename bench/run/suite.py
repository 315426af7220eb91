"""Suite files (TOML) and their expansion into cells.

A suite file::

    name = "quick"                      # the MLflow experiment; defaults to the file's stem
    description = "..."
    tasks = ["digits", "breast-cancer"] # or "all"
    methods = "all"                     # or a list of names
    seeds = 3                           # N means seeds 0..N-1; or an explicit list [0, 7]
    anytime = true                      # optional: anytime curves on the test split (true: 8 points per axis; N: N; false: none)

    [targets]                           # optional: the metrics each task's cells optimise
    digits = ["misclassification", "aucpr"]   # default: the task's first metric

    [budget]                            # optional: overrides each task's default budget, per account
    steps = 100                         # optimizer steps on the model
    queries = 10                        # full-val metric queries
    batch_queries = 1600                # metric on fixed val mini-batches, per candidate (default 16 per step)
    batch_scores = 100                  # metric of the method's own predictions (default 1 per step)
    stats = 10                          # validation statistics (default: as many as queries)
    eval_every = 20                     # the uncounted val curve (0: a tenth of the steps); not part of a cell's identity

    [task_budget.shapes-detection]      # optional, per task: over [budget] for that task's cells (same keys)
    steps = 20
    eval_every = 4

    [task_options.digits]               # optional, per task
    width = 16

    [method_options.surrogate]          # optional, per method
    lr = 0.01
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from metricbench.bench.core.budget import ACCOUNTS, Budget
from metricbench.bench.core.errors import UsageError
from metricbench.bench.core.registry import suggest

SUITE_KEYS = {
    *("name", "description", "tasks", "methods", "seeds", "anytime"),
    *("targets", "budget", "task_budget", "task_options", "method_options"),
}
DEFAULT_ANYTIME_POINTS = 8  # our default: log-spaced points per axis (steps, queries) when a suite says `anytime = true`
BUDGET_KEYS = {*ACCOUNTS, "eval_every"}


@dataclass(frozen=True)
class Cell:
    """One (task, target metric, method, seed) run with everything that determines its result; picklable.

    `eval_every` (the runner's val-curve interval) and `anytime` (points per axis of the runner's test
    curve, 0: none) are how the cell is observed, not what it computes, so they are left out of the
    cell's identity: changing them changes no result (a test checks that the test curve does not).
    """

    suite: str
    task: str
    task_options: dict[str, Any]
    method: str
    method_options: dict[str, Any]
    seed: int
    budget: Budget
    target: str
    eval_every: int = 0
    anytime: int = 0

    def config(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "task_options": self.task_options,
            "target": self.target,
            "method": self.method,
            "method_options": self.method_options,
            "seed": self.seed,
            "budget": self.budget.to_dict(),
        }

    @property
    def cell_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.task}--{self.target}--{self.method}--seed{self.seed}--{digest}"


@dataclass
class Suite:
    name: str
    description: str
    tasks: list[str]
    methods: list[str]
    seeds: list[int]
    anytime: int = 0  # log-spaced points per axis of the runner's test curves; 0: none
    targets: dict[str, list[str]] = field(default_factory=dict)
    budget: dict[str, int] = field(default_factory=dict)
    task_budget: dict[str, dict[str, int]] = field(default_factory=dict)  # per task, over `budget`
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""

    def select(
        self,
        tasks: list[str] | None = None,
        methods: list[str] | None = None,
        seeds: int | None = None,
        steps: int | None = None,
        task_options: list[tuple[str, str, Any]] | None = None,
        method_options: list[tuple[str, str, Any]] | None = None,
    ) -> Suite:
        """This suite narrowed or changed by command-line overrides; `task_options` and `method_options`
        are (task or method, option, value)."""
        out = Suite(**asdict(self))
        for kind, given, running, field_name in (
            ("task", task_options, tasks or out.tasks, "task_options"),
            ("method", method_options, methods or out.methods, "method_options"),
        ):
            for owner, key, value in given or ():
                if running != ["all"] and owner not in running:
                    raise UsageError(
                        f"--{kind}-option names {kind} '{owner}', which this run does not include{suggest(owner, running)}; "
                        f"its {kind}s: {', '.join(running)}"
                    )
                options = getattr(out, field_name)
                setattr(out, field_name, {**options, owner: {**options.get(owner, {}), key: value}})
        if tasks:
            out.tasks = tasks
        if methods:
            out.methods = methods
        if seeds is not None:
            if seeds < 1:
                raise UsageError(f"--seeds must be at least 1, got {seeds}")
            out.seeds = list(range(seeds))
        if steps is not None:
            if steps < 1:
                raise UsageError(f"--steps must be at least 1, got {steps}")
            out.budget = {**out.budget, "steps": steps}  # the command line's steps win over every task's own
            out.task_budget = {task: {k: v for k, v in b.items() if k != "steps"} for task, b in out.task_budget.items()}
        return out

    def cells(self) -> list[Cell]:
        """The grid: every task x method x seed, options resolved and checked against the registries."""
        from metricbench.methods import METHODS
        from metricbench.tasks import TASKS

        task_names = TASKS.names() if self.tasks == ["all"] else self.tasks
        method_names = METHODS.names() if self.methods == ["all"] else self.methods
        given_per_name = (
            (TASKS, self.task_options),
            (METHODS, self.method_options),
            (TASKS, self.targets),
            (TASKS, self.task_budget),
        )
        for registry, given in given_per_name:
            for key in given:
                registry.entry(key)  # settings for an unknown name are an error, not silently ignored
        cells = []
        for task_name in task_names:
            task_entry = TASKS.entry(task_name)
            task_options = task_entry.resolve_options("task", self.task_options.get(task_name, {}))
            overrides = {**self.budget, **self.task_budget.get(task_name, {})}
            eval_every = overrides.get("eval_every", 0)
            budget = task_entry.factory.budget.overridden(**{k: v for k, v in overrides.items() if k in ACCOUNTS})
            for target in self._targets_of(task_name, task_entry.factory.metrics):
                for method_name in method_names:
                    method_entry = METHODS.entry(method_name)
                    method_options = method_entry.resolve_options("method", self.method_options.get(method_name, {}))
                    for seed in self.seeds:
                        cells.append(
                            Cell(
                                self.name,
                                task_name,
                                task_options,
                                method_name,
                                method_options,
                                seed,
                                budget,
                                target,
                                eval_every,
                                self.anytime,
                            )
                        )
        return cells

    def _targets_of(self, task_name: str, metrics: tuple[str, ...]) -> list[str]:
        """The target metrics of a task's cells: the suite's `[targets]` entry, else its first metric."""
        targets = self.targets.get(task_name, [metrics[0]])
        for target in targets:
            if target not in metrics:
                raise UsageError(
                    f"target '{target}' of task '{task_name}' is not one of its metrics{suggest(target, metrics)}; "
                    f"its metrics are: {', '.join(metrics)}"
                )
        return list(dict.fromkeys(targets))


def builtin_suites() -> dict[str, Path]:
    folder = resources.files("metricbench.bench") / "suites"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def load_suite(spec: str) -> Suite:
    """A suite by built-in name or by path to a TOML file."""
    path = Path(spec)
    if not spec.endswith(".toml") or not path.exists():
        suites = builtin_suites()
        if spec in suites:
            path = suites[spec]
        elif spec.endswith(".toml"):
            raise UsageError(f"suite file '{spec}' does not exist")
        else:
            builtin = ", ".join(sorted(suites))
            raise UsageError(f"unknown suite '{spec}'{suggest(spec, suites)}; give a built-in name ({builtin}) or a .toml file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"suite file '{path}': invalid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"suite file '{path}' cannot be read: {exc.strerror}") from None
    return parse_suite(data, source=str(path), default_name=path.stem)


def _fail(source: str, message: str):
    raise UsageError(f"suite file '{source}': {message}")


def _budget_table(source: str, key: str, table: Any) -> dict[str, int]:
    """A `[budget]` or `[task_budget.TASK]` table, checked: accounts and `eval_every`, integers."""
    if not isinstance(table, dict):
        _fail(source, f"key '{key}' must be a table")
    for name, value in table.items():
        if name not in BUDGET_KEYS:
            _fail(
                source, f"unknown key '{key}.{name}'{suggest(name, BUDGET_KEYS)}; allowed keys: {', '.join(sorted(BUDGET_KEYS))}"
            )
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (name == "steps" and value == 0):
            _fail(
                source, f"key '{key}.{name}' must be a {'positive' if name == 'steps' else 'non-negative'} integer, got {value!r}"
            )
    return dict(table)


def _names(source: str, key: str, value: Any) -> list[str]:
    if value == "all":
        return ["all"]
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        _fail(source, f"key '{key}' must be \"all\" or a non-empty list of names, got {value!r}")
    return list(value)


def _listed(value: Any) -> list[str]:
    """The names a `tasks` or `methods` value lists, to suggest from (whatever its shape; it is checked later)."""
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def parse_suite(data: dict[str, Any], source: str, default_name: str) -> Suite:
    unknown = sorted(set(data) - SUITE_KEYS)
    if unknown:
        _fail(
            source, f"unknown key '{unknown[0]}'{suggest(unknown[0], SUITE_KEYS)}; allowed keys: {', '.join(sorted(SUITE_KEYS))}"
        )
    for key in ("tasks", "methods"):
        if key not in data:
            _fail(source, f"missing key '{key}'")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        _fail(source, f"key 'name' must be a non-empty string, got {name!r}")
    seeds = data.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        seeds = list(range(seeds))
    elif not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        _fail(source, f"key 'seeds' must be a positive integer or a list of integers, got {seeds!r}")
    anytime = data.get("anytime", False)
    if isinstance(anytime, bool):
        anytime = DEFAULT_ANYTIME_POINTS if anytime else 0
    elif not isinstance(anytime, int) or anytime < 0 or anytime == 1:
        _fail(source, f"key 'anytime' must be true, false or a number of points per axis (2 or more), got {anytime!r}")
    budget = _budget_table(source, "budget", data.get("budget", {}))
    targets = data.get("targets", {})
    if not isinstance(targets, dict) or not all(
        (isinstance(v, list) and v and all(isinstance(m, str) for m in v)) or isinstance(v, str) for v in targets.values()
    ):
        _fail(source, 'key \'targets\' must be a table of task = ["metric", ...], like [targets] then digits = ["aucpr"]')
    targets = {task: [v] if isinstance(v, str) else list(v) for task, v in targets.items()}
    for task in targets:
        if data["tasks"] != "all" and task not in data["tasks"]:
            _fail(
                source,
                f"[targets] names task '{task}', which the suite does not run{suggest(task, _listed(data['tasks']))}; "
                f"its tasks: {', '.join(_listed(data['tasks']))}",
            )
    tables = {}
    for key, per in (("task_options", "task"), ("method_options", "method"), ("task_budget", "task")):
        table = data.get(key, {})
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            _fail(source, f"key '{key}' must hold one table per {per}, like [{key}.NAME]")
        tables[key] = table
    tables["task_budget"] = {
        task: _budget_table(source, f"task_budget.{task}", table) for task, table in tables["task_budget"].items()
    }
    for key, listed in (("task_options", data["tasks"]), ("method_options", data["methods"]), ("task_budget", data["tasks"])):
        for entry_name in tables[key]:
            if listed != "all" and entry_name not in listed:
                _fail(
                    source,
                    f"[{key}.{entry_name}] names something the suite does not run{suggest(entry_name, _listed(listed))}; "
                    f"its {key.split('_')[0]}s: {', '.join(_listed(listed))}",
                )
    description = data.get("description", "")
    return Suite(
        name=name,
        description=str(description),
        tasks=_names(source, "tasks", data["tasks"]),
        methods=_names(source, "methods", data["methods"]),
        seeds=list(seeds),
        anytime=anytime,
        targets=targets,
        budget=budget,
        task_budget=tables["task_budget"],
        task_options=tables["task_options"],
        method_options=tables["method_options"],
        source=source,
    )
