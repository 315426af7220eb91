"""mkdocs hook: the reference pages' source tree.

The repository's folders install as `metricbench.bench`, `metricbench.tasks` and `metricbench.methods`
(pyproject's package-dir mapping), which griffe, reading the code statically, cannot follow. This lays
out `build/docs-src/metricbench/` as links to the three folders, so the reference renders the
docstrings of the checkout being built, whatever is installed.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "build" / "docs-src" / "metricbench"


def on_startup(**_kwargs) -> None:
    SOURCE.mkdir(parents=True, exist_ok=True)
    for folder in ("bench", "tasks", "methods"):
        link = SOURCE / folder
        if not link.is_symlink() or os.readlink(link) != str(ROOT / folder):
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(ROOT / folder, target_is_directory=True)
