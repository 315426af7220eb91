"""Everyday runs: stages sized from the cell's budget, one thread by default, plain progress lines when
no terminal shows bars, a Ctrl-C that only asks to stop, every output readable under the umask, and the
machine's load beside every cell's seconds."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

import pytest
from metricbench.bench.cli import main
from metricbench.bench.core import interrupts
from metricbench.bench.core.budget import Budget
from metricbench.bench.report import records, tables
from metricbench.bench.run.runner import DEFAULT_THREADS, RunSettings, run_suite
from metricbench.bench.run.suite import load_suite
from metricbench.methods import create_method


def _suite(tmp_path: Path, methods: list[str], steps: int = 4, anytime: int = 0):
    path = tmp_path / "suite.toml"
    path.write_text(
        f'name = "everyday"\ntasks = ["breast-cancer"]\nmethods = {json.dumps(methods)}\nanytime = {anytime}\n'
        f"[budget]\nsteps = {steps}\nqueries = 2\n"
    )
    return load_suite(str(path))


# ---- stages sized from the budget


@pytest.mark.parametrize(
    ("method", "steps", "meta_steps", "rule_meta_steps"),
    [("metricopt-adam", 8, 16, None), ("metricopt-adam", 100, 200, None), ("metricopt-adam", 2_000, 200, None),
     ("metricopt-learned", 8, 16, 8), ("metricopt-learned", 500, 200, 100)],
)  # fmt: skip
def test_metricopts_stage_is_sized_from_the_cells_step_budget(method, steps, meta_steps, rule_meta_steps):
    spec = create_method(method).stage(Budget(steps=steps, queries=1))
    assert spec.key["meta_steps"] == meta_steps
    assert spec.key["trajectory_steps"] == steps // 2
    if rule_meta_steps is None:
        assert "update_rule" not in spec.key
    else:
        assert spec.key["update_rule"]["rule_meta_steps"] == rule_meta_steps


def test_a_stage_size_given_as_an_option_is_used_whatever_the_budget():
    spec = create_method("metricopt-learned", meta_steps=7, rule_meta_steps=3).stage(Budget(steps=100, queries=1))
    assert spec.key["meta_steps"] == 7 and spec.key["update_rule"]["rule_meta_steps"] == 3


def test_the_metricopt_suite_pins_the_stage_sizes_its_committed_comparison_was_made_with():
    for cell in load_suite("metricopt").cells():
        if cell.method.startswith(("metricopt", "guided-es")):
            assert (cell.method_options["meta_steps"], cell.method_options["rule_meta_steps"]) == (200, 100)


def test_a_built_stage_meta_trains_for_the_sizes_its_key_names(tmp_path, cell_env, monkeypatch):
    import metricbench.methods.metricopt.method as metricopt
    from metricbench.bench.run.cell import run_cell

    lengths = {}
    real_meta_train, real_rule = metricopt.meta_train, metricopt.train_update_rule

    def meta_train(value_function, train, meta_steps, *args, **kwargs):
        lengths["reptile"] = meta_steps
        return real_meta_train(value_function, train, meta_steps, *args, **kwargs)

    def train_update_rule(*args):
        lengths["rule"] = args[7]  # rule_meta_steps, after (rule, value function, projection, start, sign, lr, generator)
        return real_rule(*args)

    monkeypatch.setattr(metricopt, "meta_train", meta_train)
    monkeypatch.setattr(metricopt, "train_update_rule", train_update_rule)
    small = {"trajectories": 2, "pairs": 1, "refine_steps": 1, "rule_unroll": 2}
    (cell,) = _suite(tmp_path, ["metricopt-learned"], steps=6).cells()
    cell = type(cell)(**{**cell.__dict__, "method_options": {**cell.method_options, **small}})
    record = run_cell(cell, cell_env)
    assert record["status"] == "ok", record.get("traceback")
    assert lengths == {"reptile": 12, "rule": 6}


# ---- threads


def test_one_thread_is_the_default_and_part_of_the_environment(smoke_run):
    out, _ = smoke_run
    assert DEFAULT_THREADS == 1
    assert json.loads((out / "environment.json").read_text())["torch_threads"] == "1"


# ---- progress without a terminal


def test_without_a_terminal_each_finished_cell_stage_and_pretraining_prints_one_plain_line(tmp_path, capfd):
    suite = _suite(tmp_path, ["surrogate", "metricopt-adam"])
    cache = tmp_path / "cache"  # empty: the pretraining is built here, and so is the stage
    run_suite(suite, RunSettings(out_dir=tmp_path / "out", device="cpu", cache_dir=cache))
    lines = capfd.readouterr().err.strip().splitlines()
    assert lines[0] == f"metricbench: suite everyday: 2 cells into {tmp_path / 'out'}"
    assert lines[1].startswith("metricbench: pretrained breast-cancer seed 0 in ") and lines[1].endswith(" s")
    assert lines[2].startswith("metricbench: cell 1/2 breast-cancer misclassification surrogate seed 0: ok in ")
    assert ", test misclassification 0." in lines[2]
    assert lines[3].startswith("metricbench: stage of metricopt-adam for breast-cancer/misclassification seed 0 built in ")
    assert lines[4].startswith("metricbench: cell 2/2 breast-cancer misclassification metricopt-adam seed 0: ok in ")
    assert len(lines) == 5
    run_suite(suite, RunSettings(out_dir=tmp_path / "out", device="cpu", cache_dir=cache))
    again = capfd.readouterr().err.strip().splitlines()
    assert again[1:] == [f"metricbench: 2 of 2 cells were already finished in {tmp_path / 'out'}"]


def test_quiet_prints_no_progress_lines(tmp_path, capfd, checkpoint_cache):
    run_suite(
        _suite(tmp_path, ["surrogate"]), RunSettings(out_dir=tmp_path, device="cpu", cache_dir=checkpoint_cache, quiet=True)
    )
    assert capfd.readouterr().err == ""


# ---- Ctrl-C only asks to stop


def test_a_sigint_only_records_the_request_and_the_next_safe_point_raises():
    with pytest.raises(KeyboardInterrupt), interrupts.ctrl_c_stops_the_suite():  # the request stands at the end too
        signal.raise_signal(signal.SIGINT)  # nothing raised inside whatever ran at that instant
        assert interrupts.requested()
        with pytest.raises(KeyboardInterrupt):
            interrupts.stop_if_requested()
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C does not wait for a safe point
            signal.raise_signal(signal.SIGINT)
    assert not interrupts.requested()  # the next suite starts afresh


def test_a_request_that_arrives_after_the_last_safe_point_still_stops():
    with pytest.raises(KeyboardInterrupt):
        with interrupts.ctrl_c_stops_the_suite():
            signal.raise_signal(signal.SIGINT)


def test_a_ctrl_c_during_a_method_stops_the_suite_at_its_next_step_and_writes_no_record(
    tmp_path, temporary_method, checkpoint_cache
):
    from metricbench.methods.base import Method

    class PressesCtrlC(Method):
        def finetune(self, model, task, oracle, ctx):
            import torch

            optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
            for step in range(ctx.budget.steps):
                if step == 1:
                    signal.raise_signal(signal.SIGINT)  # as the terminal would, mid-finetuning
                optimizer.step()
                ctx.step()
            return ctx.finish()

    temporary_method("presses-ctrl-c", PressesCtrlC)
    suite = _suite(tmp_path, ["presses-ctrl-c", "surrogate"])
    with pytest.raises(KeyboardInterrupt), interrupts.ctrl_c_stops_the_suite():
        run_suite(suite, RunSettings(out_dir=tmp_path / "out", device="cpu", cache_dir=checkpoint_cache, quiet=True))
    assert not list((tmp_path / "out" / "cells").glob("*.json"))  # neither the stopped cell nor the next one


def test_the_cli_turns_a_ctrl_c_into_one_line_and_exit_130(tmp_path, capsys, monkeypatch, checkpoint_cache):
    import metricbench.bench.run.runner as runner

    def presses_ctrl_c(*_args):
        signal.raise_signal(signal.SIGINT)
        return runner.apply_threads(1)

    monkeypatch.setattr(runner, "apply_threads", presses_ctrl_c)  # during validation, before any cell
    code = main(["run", "smoke", "--out", str(tmp_path / "out"), "--cache-dir", str(checkpoint_cache), "--quiet"])
    assert code == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        "metricbench: interrupted; finished cells are kept and a re-run resumes"
    ]


# ---- every output readable by others (the umask decides, as for any file)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_output_has_the_mode_the_umask_gives(tmp_path, umask, checkpoint_cache):
    previous = os.umask(umask)
    try:
        out = tmp_path / "out"
        suite = _suite(tmp_path, ["surrogate", "metricopt-adam"], anytime=2)
        run_suite(suite, RunSettings(out_dir=out, device="cpu", cache_dir=out / "cache", quiet=True))
        assert main(["report", "--out", str(out)]) == 0
    finally:
        os.umask(previous)
    kinds = {"table.md", "table.tex", "costs.csv", "environment.json", "report.html", "weights.pt", "stage.json"}
    seen = set()
    for path in out.rglob("*"):
        if path.name.endswith(".lock"):
            continue  # lock files are opened, never written for readers
        mode = stat.S_IMODE(path.lstat().st_mode)
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert mode == expected, f"{path.relative_to(out)}: {oct(mode)}, expected {oct(expected)} under umask {oct(umask)}"
        seen.add(path.name)
        seen.add(path.suffix)
    assert kinds <= seen and {".png", ".pdf"} <= seen and any(p.parent.name == "cells" for p in out.rglob("*.json"))


# ---- load beside the seconds


def test_every_record_carries_the_load_and_the_cost_table_shows_it(smoke_run):
    out, _ = smoke_run
    for path in (out / "cells").glob("*.json"):
        load = json.loads(path.read_text())["load_average"]
        assert set(load) == {"start", "end", "cores"} and load["cores"] == os.cpu_count()
    costs = (out / "costs.md").read_text()
    assert "| load |" in costs.splitlines()[0] and "measured under contention" in costs
    table = tables.build(records.load_records(out))
    assert all(cost.means["load_average"] >= 0 for (row, _), cost in table.costs.items() if "(stage)" not in row)
