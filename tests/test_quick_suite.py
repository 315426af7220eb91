"""End-to-end: the quick suite through the installed console script, as the README runs it, and the
committed `results/quick/` reproduced by the code beside it. The suite runs once (resuming a finished
folder is proven on smoke, in tests/test_reliability.py), with the thread count the committed run used
and the session's shared checkpoint cache."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "quick"


def _rows(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(path) as handle:
        return {(r["method"], r["task"], r["metric"]): r for r in csv.DictReader(handle)}


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_quick_suite_runs_end_to_end_and_reproduces_the_committed_results(tmp_path, suite_cache):
    exe = shutil.which("metricbench", path=str(Path(sys.executable).parent)) or shutil.which("metricbench")
    assert exe, "the metricbench console script is not installed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = tmp_path / "quick"
    committed_env = json.loads((COMMITTED / "environment.json").read_text())
    command = [exe, "run", "quick", "--out", str(out), "--quiet", "--cache-dir", str(suite_cache)]
    first = subprocess.run([*command, "--threads", committed_env["torch_threads"]], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    for row in ("| synthetic-binary | misclassification ↓ |", "| glyphs-retrieval | recall@1 ↑ |", "| digits | aucpr ↑ |"):
        assert row in first.stdout
    assert first.stdout.startswith("| task | metric | (pretrained) | ala | dab | es | metricopt-adam | surrogate |")
    assert f"MLflow store: sqlite:///{out.resolve()}/mlflow.db" in first.stdout
    assert f"metricbench ui --out {out.resolve()}" in first.stdout
    assert f"cells: {len(list((out / 'cells').glob('*.json')))} computed, 0 already finished, 0 failed" in first.stdout

    # the committed tables are what this code produces: bit for bit on the machine kind that made them
    fresh_env = json.loads((out / "environment.json").read_text())
    same_kind = all(fresh_env[k] == committed_env[k] for k in ("cpu", "torch_version", "numpy_version", "torch_threads"))
    fresh, committed = _rows(out / "table.csv"), _rows(COMMITTED / "table.csv")
    assert fresh.keys() == committed.keys(), (
        "results/quick/ is stale: regenerate it (docs/results.md, 'Reproducing the committed results')"
    )
    if same_kind:
        assert (out / "table.md").read_text() == (COMMITTED / "table.md").read_text()
        assert (out / "table.csv").read_text() == (COMMITTED / "table.csv").read_text()
    else:  # other CPU kernels round differently; training amplifies it, so only closeness is expected
        for key, row in fresh.items():
            assert float(row["mean"]) == pytest.approx(float(committed[key]["mean"]), abs=0.05), key
