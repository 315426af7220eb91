"""What `metricbench list tasks|methods` prints, without importing the tasks and methods it describes.

Importing the built-in tasks and methods imports torch, torchvision and scikit-learn: seconds and
hundreds of MB for a listing. Their rows (description, options and, for a task, its kind, metrics with
their direction, default budget, recipes and split sizes) are read instead from `catalog.json` beside
this module. `python -m metricbench.bench.listing --write` rebuilds that file from the live registries
in a fresh process, and `--check` (run by `tests/test_listing.py`) fails when the file differs from
what the registries and tasks report, so a change to a built-in task or method that changes its row
fails the tests until the catalog is rewritten.

Whatever else a registry holds is described live: plugins (their entry points are loaded, as for a
run, which imports what they import), and anything this process has registered or imported already.
A name the registry holds live is always shown from the live entry.

The tasks and methods are reached through their registries only (`metricbench.tasks.TASKS`,
`metricbench.methods.METHODS`): nothing here imports a task or method module by name.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from metricbench.bench.core.budget import ACCOUNTS
from metricbench.bench.core.errors import UsageError
from metricbench.bench.core.registry import Entry, Registry

CATALOG = Path(__file__).with_name("catalog.json")
WRITE_COMMAND = "python -m metricbench.bench.listing --write"
ARROWS = {"lower": "↓", "higher": "↑"}


def _registry(what: str) -> Registry:
    if what == "tasks":
        from metricbench.tasks import TASKS

        return TASKS
    from metricbench.methods import METHODS

    return METHODS


# ---- rows, from live entries


def option_rows(kind: str, entry: Entry) -> list[dict[str, Any]]:
    """Each option with its type, choices, help and the default this name resolves it to."""
    defaults = entry.resolve_options(kind, {})
    return [
        {
            "name": key,
            "type": option.type.__name__,
            "choices": [str(choice) for choice in option.choices] if option.choices else None,
            "default": repr(defaults[key]),
            "help": option.help,
        }
        for key, option in entry.options.items()
    ]


def describe_task(entry: Entry) -> dict[str, Any]:
    """A task's row: the task built with its default options, as a run would build it."""
    task = entry.factory(**entry.resolve_options("task", {}))
    sizes = task.split_sizes()
    budget = task.budget
    return {
        "name": entry.name,
        "description": entry.description,
        "kind": task.kind,
        "metrics": dict(task.metric_directions()),
        "budget": {account: getattr(budget, account) for account in ACCOUNTS if getattr(budget, account) is not None},
        "splits": None
        if sizes is None
        else {"train": sizes.train, "val": sizes.val, "test": sizes.test, "approximate": list(sizes.approximate)},
        "pretrain": task.pretrain.to_dict(),
        "finetune": task.finetune_recipe.to_dict(),
        "options": option_rows("task", entry),
    }


def describe_method(entry: Entry) -> dict[str, Any]:
    return {"name": entry.name, "description": entry.description, "options": option_rows("method", entry)}


def describe(what: str, entry: Entry) -> dict[str, Any]:
    """The row of a live entry, as JSON would hold it (lists, not tuples)."""
    row = describe_task(entry) if what == "tasks" else describe_method(entry)
    return json.loads(json.dumps(row))


def live_catalog() -> dict[str, dict[str, dict[str, Any]]]:
    """The built-ins' rows from the live registries: their built-in modules are imported, the plugins
    are not, so in a fresh process (as `--write` and `--check` run) these are exactly the built-ins."""
    catalog = {}
    for what in ("tasks", "methods"):
        registry = _registry(what)
        for module in registry.builtin_modules:
            importlib.import_module(module)
        catalog[what] = {entry.name: describe(what, entry) for entry in registry.registered()}
    return catalog


def read_catalog() -> dict[str, dict[str, dict[str, Any]]]:
    data = json.loads(CATALOG.read_text(encoding="utf-8"))
    return {"tasks": data["tasks"], "methods": data["methods"]}


def rows(what: str, pattern: str = "*") -> list[dict[str, Any]]:
    """The rows `metricbench list WHAT PATTERN` shows: built-ins from the catalog (unless the process has
    imported them already), plugins and anything else registered here from the live entries."""
    registry = _registry(what)
    registry.load_plugins()
    found = {}
    if not registry.loaded:
        from fnmatch import fnmatch

        found = {name: row for name, row in read_catalog()[what].items() if fnmatch(name, pattern)}
    for entry in registry.registered(pattern):
        try:
            found[entry.name] = describe(what, entry)
        except Exception as exc:  # one plugin that cannot be built with its defaults must not hide the others
            found[entry.name] = _undescribed(what, entry, " ".join(f"{type(exc).__name__}: {exc}".split()))
    return [found[name] for name in sorted(found)]


def _undescribed(what: str, entry: Entry, why: str) -> dict[str, Any]:
    row: dict[str, Any] = {"name": entry.name, "description": f"{entry.description} (not described: {why})", "options": []}
    if what == "tasks":
        row.update(kind="?", metrics={}, budget={}, splits=None, pretrain=None, finetune=None)
    return row


# ---- text


def _recipe(recipe: dict[str, Any], steps: bool = True) -> str:
    text = f"{recipe['steps']:,} steps, " if steps else ""
    text += f"batch {recipe['batch_size']}, {recipe['optimizer']} lr {recipe['lr']:g}"
    if recipe["optimizer"] == "sgd":
        text += f" momentum {recipe['momentum']:g}"
    if recipe["weight_decay"]:
        text += f", weight decay {recipe['weight_decay']:g}"
    return f"{text}, {recipe['schedule']} schedule"


def _option_lines(row: dict[str, Any]) -> list[str]:
    lines = []
    for option in row["options"]:
        choices = f" {{{', '.join(option['choices'])}}}" if option["choices"] else ""
        lines.append(f"    {option['name']} ({option['type']}{choices}, default {option['default']}): {option['help']}")
    return lines


def _table(header: tuple[str, ...], body: list[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = []
    for line in [header, *body]:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _count(row: dict[str, Any], split: str) -> str:
    sizes = row["splits"]
    if sizes is None:
        return "?"
    return f"{'~' if split in sizes['approximate'] else ''}{sizes[split]:,}"


def task_lines(rows_: list[dict[str, Any]], options: bool = False) -> list[str]:
    """A table (task, kind, train / val / test sizes, default budget, metrics with their direction), each
    task's description under its row, and with `options` its recipes and options."""
    header = ("TASK", "KIND", "TRAIN", "VAL", "TEST", "BUDGET", "METRICS (↓ lower / ↑ higher is better)")
    body = [
        (
            row["name"],
            row["kind"],
            _count(row, "train"),
            _count(row, "val"),
            _count(row, "test"),
            ", ".join(f"{limit:,} {account}" for account, limit in row["budget"].items()),
            ", ".join(f"{metric} {ARROWS.get(direction, direction)}" for metric, direction in row["metrics"].items()),
        )
        for row in rows_
    ]
    table = _table(header, body, right={2, 3, 4})
    lines = [table[0]]
    for row, line in zip(rows_, table[1:], strict=True):
        lines += [line, f"    {row['description']}"]
        if options:
            if row["pretrain"] is not None:
                lines.append(f"    pretraining: {_recipe(row['pretrain'])}")
                lines.append(f"    finetuning (loss-based methods; steps: the budget's): {_recipe(row['finetune'], steps=False)}")
            lines += _option_lines(row)
    if any(row["splits"] and row["splits"]["approximate"] for row in rows_):
        lines.append("~: an estimate (val is whole classes, and classes differ in size)")
    return lines


def method_lines(rows_: list[dict[str, Any]], options: bool = False) -> list[str]:
    width = max(20, *(len(row["name"]) + 1 for row in rows_))
    lines = []
    for row in rows_:
        lines.append(f"{row['name']:<{width}} {row['description']}")
        if options:
            lines += _option_lines(row)
    return lines


def print_listing(what: str, pattern: str = "*", options: bool = False) -> int:
    found = rows(what, pattern)
    if not found:
        raise UsageError(f"no {what} match '{pattern}'")
    print("\n".join((task_lines if what == "tasks" else method_lines)(found, options)))
    return 0


# ---- the catalog file


def _differences(written: dict, live: dict) -> list[str]:
    problems = []
    for what in ("tasks", "methods"):
        for name in sorted(set(written[what]) | set(live[what])):
            if name not in live[what]:
                problems.append(f"{what[:-1]} '{name}' is in the catalog but not registered")
            elif name not in written[what]:
                problems.append(f"{what[:-1]} '{name}' is registered but not in the catalog")
            elif written[what][name] != live[what][name]:
                fields = sorted(k for k in live[what][name] if written[what][name].get(k) != live[what][name][k])
                problems.append(f"{what[:-1]} '{name}' differs in: {', '.join(fields)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metricbench.bench.listing", description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help=f"rewrite {CATALOG.name} from the live registries")
    action.add_argument("--check", action="store_true", help=f"exit 1 if {CATALOG.name} differs from the live registries")
    args = parser.parse_args(argv)
    live = live_catalog()
    if args.write:
        note = f"generated by `{WRITE_COMMAND}` from the live registries: do not edit"
        text = json.dumps({"note": note, **live}, indent=1, ensure_ascii=False) + "\n"
        CATALOG.write_text(text, encoding="utf-8")
        print(f"wrote {CATALOG} ({len(live['tasks'])} tasks, {len(live['methods'])} methods)")
        return 0
    problems = _differences(read_catalog(), live) if CATALOG.exists() else [f"{CATALOG} is missing"]
    for problem in problems:
        print(f"{CATALOG.name}: {problem}", file=sys.stderr)
    if problems:
        print(f"rewrite it with `{WRITE_COMMAND}`", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
