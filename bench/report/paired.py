"""Per-seed paired differences against a baseline method: each seed has its own pretrained checkpoint,
and every method of a seed starts from it, so the difference a seed makes is method minus baseline on
that seed, never a difference of means whose spread between checkpoints could hide or fake an effect.

`paired(results, baseline)` pairs each method's finished cells with the baseline's of the same task
(and options, budget), target metric and seed, on the target metric's test value, signed so that a
positive difference is an improvement whichever the metric's direction. `to_markdown` renders them
with each method's mean change from the shared start and, optionally, the mean of logged diagnostics.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field

from metricbench.bench.core.errors import UsageError


@dataclass
class PairedRow:
    task: str
    target: str
    method: str
    baseline_mean: float
    method_mean: float
    seeds: list[int] = field(default_factory=list)
    improvements: list[float] = field(default_factory=list)  # per seed: method better than baseline by
    from_start: list[float] = field(default_factory=list)  # per seed: method better than its checkpoint by
    diagnostics: dict[str, float] = field(default_factory=dict)  # mean over the paired seeds

    @property
    def wins(self) -> int:
        return sum(d > 0 for d in self.improvements)

    @property
    def losses(self) -> int:
        return sum(d < 0 for d in self.improvements)


def _group(result) -> tuple:
    return (result.task, json.dumps(result.task_config, sort_keys=True), result.target or result.default_target)


def paired(results, baseline: str, diagnostics: tuple[str, ...] = ()) -> list[PairedRow]:
    finished = [r for r in results if r.status == "ok"]
    if not any(r.method == baseline for r in finished):
        held = sorted({r.method for r in finished})
        raise UsageError(f"no finished cell of baseline '{baseline}' to pair with; this folder's methods: {', '.join(held)}")
    base = {(*_group(r), r.seed): r for r in finished if r.method == baseline}
    rows: dict[tuple, PairedRow] = {}
    for r in finished:
        if r.method == baseline:
            continue
        group = _group(r)
        partner = base.get((*group, r.seed))
        if partner is None:
            continue
        target = group[2]
        sign = 1.0 if r.directions[target] == "higher" else -1.0
        key = (*group, r.method, json.dumps(r.method_config, sort_keys=True))
        row = rows.setdefault(key, PairedRow(r.task, target, r.method, 0.0, 0.0))
        row.seeds.append(r.seed)
        row.improvements.append(sign * (r.metrics[target] - partner.metrics[target]))
        row.from_start.append(sign * (r.metrics[target] - r.pretrained[target]))
        row.baseline_mean += partner.metrics[target]
        row.method_mean += r.metrics[target]
        for name in diagnostics:
            if name in r.diagnostics:
                row.diagnostics.setdefault(name, 0.0)
                row.diagnostics[name] += r.diagnostics[name]
    for row in rows.values():
        n = len(row.seeds)
        row.baseline_mean /= n
        row.method_mean /= n
        row.diagnostics = {k: v / n for k, v in row.diagnostics.items()}
    return sorted(rows.values(), key=lambda row: (row.task, row.target, row.method))


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def to_markdown(rows: list[PairedRow], baseline: str, diagnostics: tuple[str, ...] = ()) -> str:
    header = ["task", "target", "method", "n", baseline, "method", f"better than {baseline} by (mean ± std)", "W/L", "per seed"]
    header += ["better than start by", *diagnostics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        spread = statistics.stdev(row.improvements) if len(row.improvements) > 1 else 0.0
        per_seed = " ".join(f"{seed}:{_signed(d)}" for seed, d in zip(row.seeds, row.improvements, strict=True))
        cells = [
            row.task, row.target, row.method, str(len(row.seeds)), f"{row.baseline_mean:.4f}", f"{row.method_mean:.4f}",
            f"{_signed(statistics.fmean(row.improvements))} ± {spread:.4f}", f"{row.wins}/{row.losses}", per_seed,
            _signed(statistics.fmean(row.from_start)),
            *(f"{row.diagnostics[name]:.2f}" if name in row.diagnostics else "–" for name in diagnostics),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    caption = (
        f"\nTest value of each cell's target metric, paired by seed with `{baseline}` (same task, target, seed and "
        "starting checkpoint); a positive difference is an improvement whichever the metric's direction; W/L: seeds "
        "where the method did better / worse than the baseline (the rest tied); better than start: the mean change from "
        "the seed's pretrained checkpoint."
    )
    if diagnostics:
        caption += " Diagnostics: the mean over the paired seeds of the last logged value (`stage/` ones: its stage's)."
    return "\n".join(lines) + "\n" + caption + "\n"
