"""What a task that reads a real dataset needs on disk, and where a user gets it.

A task with `data = DatasetFiles(...)` is checked before anything runs: every `required` path must
exist under the user's `--data-dir`, or the run stops with one line naming the first missing path and
the command that fetches it (`metricbench data download TASK --data-dir DIR`), or, for a dataset with
no public download (ImageNet), where to get it and the layout expected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from metricbench.bench.core.errors import DataError


@dataclass(frozen=True)
class DatasetFiles:
    """A dataset's files: `required` (paths relative to the data folder that must exist), `resources`
    (`tasks.data.resources.Resource`s that `metricbench data download` fetches; empty when none is public),
    `manual` (where to get it by hand and the layout, for datasets without `resources`) and `source`
    (the official page, for the README and messages); `fixture(data_dir)` writes a tiny dataset in the
    same format (for tests and for trying a paper suite without the real data)."""

    name: str
    required: tuple[str, ...]
    resources: tuple = ()
    manual: str = ""
    source: str = ""
    fixture: Callable[[Path], object] | None = None

    def how_to_get(self, task: str, data_dir: Path | str) -> str:
        if self.resources:
            return f"run `metricbench data download {task} --data-dir {data_dir}`"
        return self.manual

    def missing(self, data_dir: Path) -> str | None:
        """The first required path that does not exist, or None."""
        return next((path for path in self.required if not (Path(data_dir) / path).exists()), None)

    def check(self, task: str, data_dir: Path | None) -> None:
        if data_dir is None:
            raise DataError(f"task '{task}' reads {self.name} from disk: pass --data-dir DIR ({self.how_to_get(task, 'DIR')})")
        missing = self.missing(data_dir)
        if missing is not None:
            raise DataError(f"task '{task}': {Path(data_dir) / missing} not found; {self.how_to_get(task, data_dir)}")
