"""Name -> factory registries with typed options, in the style of timm's model registry.

A registry holds entries registered by decorator. Built-in entries live in modules that are
imported on first lookup, plugins arrive through an entry-point group, so that `metricbench --help`
imports nothing heavy and another package can add tasks or methods without editing this repository.
`metricbench list` loads the plugins alone (`load_plugins`, `registered`) and reads the built-ins'
rows from a catalog (`bench.listing`), so listing imports none of the built-in modules either.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from metricbench.bench.core.errors import UsageError

_MISSING = object()


def positive(value) -> bool:
    """An `Option.check`: the value is greater than 0 (requirement "positive" or "at least 1")."""
    return value > 0


def non_negative(value) -> bool:
    """An `Option.check`: the value is 0 or more."""
    return value >= 0


@dataclass(frozen=True)
class Option:
    """One typed option of a task or method: its type, its default and what it means."""

    type: type
    default: Any
    help: str = ""
    choices: tuple | None = None
    check: Callable[[Any], bool] | None = None  # a further condition on the value...
    requirement: str = ""  # ...and what it requires, in words ("an even number of at least 2")

    def coerce(self, owner: str, name: str, value: Any) -> Any:
        """Return `value` as this option's type, or raise a UsageError that says what is expected."""
        expected = self.type
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is tuple and isinstance(value, list):
            value = tuple(value)
        ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
        if not ok:
            raise UsageError(
                f"option '{name}' of {owner} must be {expected.__name__}, got {value!r} "
                f"({type(value).__name__}); default is {self.default!r}"
            )
        if self.choices is not None and value not in self.choices:
            raise UsageError(f"option '{name}' of {owner} must be one of {', '.join(map(repr, self.choices))}, got {value!r}")
        if self.check is not None and not self.check(value):
            raise UsageError(f"option '{name}' of {owner} must be {self.requirement}, got {value!r}")
        return value


@dataclass(frozen=True)
class Entry:
    """A registered factory with its name, one-line description, options, and the defaults this name
    gives them (a variant: `metricopt-adam` is `metricopt` with `optimizer = "adam"`)."""

    name: str
    factory: Callable[..., Any]
    description: str
    options: dict[str, Option] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)

    def resolve_options(self, kind: str, given: dict[str, Any]) -> dict[str, Any]:
        """Option defaults, overlaid with this name's defaults, then with `given`; each checked."""
        owner = f"{kind} '{self.name}'"
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            raise UsageError(
                f"unknown option '{unknown[0]}' for {owner}{suggest(unknown[0], self.options)}; "
                f"its options are: {', '.join(sorted(self.options)) or '(none)'}"
            )
        resolved = {k: opt.default for k, opt in self.options.items()}
        for key, value in {**self.defaults, **given}.items():
            resolved[key] = self.options[key].coerce(owner, key, value)
        return resolved


def suggest(name: str, candidates) -> str:
    """' (did you mean ...?)' naming the closest candidates, or ''."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


class Registry:
    """Entries of one kind ('task', 'method', 'metric').

    `builtin_modules` are imported on first lookup (they register themselves); `entry_point_group`
    names the plugin group whose entry points are loaded then too.
    """

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = (), entry_point_group: str | None = None):
        self.kind = kind
        self._builtin_modules = builtin_modules
        self._group = entry_point_group
        self._entries: dict[str, Entry] = {}
        self._broken: dict[str, str] = {}  # entry point -> why it failed to load
        self._loaded = False  # the built-in modules imported and the plugins loaded
        self._plugins_loaded = False

    def register(
        self, name: str, description: str, options: dict[str, Option] | None = None, defaults: dict[str, Any] | None = None
    ):
        """Decorator registering a class or function under `name`; `defaults` override option defaults
        for this name only, so one class can be registered as several variants."""
        if not description or "\n" in description:
            raise ValueError(f"{self.kind} '{name}' needs a one-line description")

        def decorate(factory):
            if name in self._entries and self._entries[name].factory is not factory:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            entry = Entry(name, factory, description, dict(options or {}), dict(defaults or {}))
            unknown = sorted(set(entry.defaults) - set(entry.options))
            if unknown:
                raise ValueError(f"{self.kind} '{name}': default for unknown option '{unknown[0]}'")
            self._entries[name] = entry
            # the first name it is registered under (its own, not a base class's), for direct construction
            factory.registered_name = vars(factory).get("registered_name", name)
            return factory

        return decorate

    @property
    def builtin_modules(self) -> tuple[str, ...]:
        return self._builtin_modules

    @property
    def loaded(self) -> bool:
        """Whether the built-in modules have been imported (every lookup but `registered` does it)."""
        return self._loaded

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)
        self.load_plugins()

    def load_plugins(self) -> None:
        """Load the entry points of the plugin group (once), without importing the built-in modules."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        if self._group:
            for ep in entry_points(group=self._group):
                try:
                    ep.load()
                except Exception as exc:  # a broken plugin must not take the harness down: only what asks for it fails
                    reason = " ".join(f"{type(exc).__name__}: {exc}".split())
                    self._broken[ep.name] = f"plugin '{ep.name}' ({ep.value}) failed to load ({reason})"
                    print(f"metricbench: warning: {self._broken[ep.name]}; its {self.kind}s are unavailable", file=sys.stderr)

    def unregister(self, name: str) -> None:
        """Remove an entry (tests and interactive sessions that re-register)."""
        self._entries.pop(name, None)

    def reload_plugins(self) -> None:
        """Look at entry points again (after installing a plugin in a running process)."""
        self._loaded = self._plugins_loaded = False
        self._broken.clear()
        self._load()

    def entry(self, name: str) -> Entry:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            broken = "".join(f"; {why}" for why in self._broken.values())
            raise UsageError(
                f"unknown {self.kind} '{name}'{suggest(name, self._entries)}; see `metricbench list {self.kind}s`{broken}"
            ) from None

    def create(self, name: str, **options: Any) -> Any:
        entry = self.entry(name)
        instance = entry.factory(**entry.resolve_options(self.kind, options))
        if hasattr(instance, "__dict__"):
            instance.name = name  # the name it was created by, also for a class registered under several
        return instance

    def names(self, pattern: str = "*") -> list[str]:
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def registered(self, pattern: str = "*") -> list[Entry]:
        """The entries registered so far, by name, without importing the built-in modules (what plugins
        and this process have registered, and the built-ins only once something imported them)."""
        return [self._entries[n] for n in sorted(self._entries) if fnmatch.fnmatch(n, pattern)]
