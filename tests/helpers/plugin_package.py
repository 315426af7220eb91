"""A plugin package as `pip install` would leave it, for the registry and listing tests: the module in a
folder meant for `sys.path` (or `PYTHONPATH`) and its dist-info beside it, whose entry points name it.

    write_plugin(tmp_path, "mb_plugin_demo", source)  # registers under metricbench.tasks and .methods
    monkeypatch.syspath_prepend(str(tmp_path))
"""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_plugin(folder: Path, module: str, source: str, groups=("tasks", "methods"), entry: str = "demo") -> None:
    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    dist = folder / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("\n".join(f"[metricbench.{group}]\n{entry} = {module}\n" for group in groups))
