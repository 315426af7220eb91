"""Suite files: parsing, errors that name the key, grid expansion and stable cell ids."""

from __future__ import annotations

import pickle

import pytest
from metricbench.bench.core.errors import UsageError
from metricbench.bench.run.suite import load_suite, parse_suite
from metricbench.methods import list_methods


def _parse(text, tmp_path):
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return load_suite(str(path))


def test_builtin_suites_expand_to_the_full_grid():
    quick = load_suite("quick")
    cells = quick.cells()
    # every embedded task (digits with two targets) x 3 seeds x the five methods it names
    assert len(cells) == 6 * 3 * 5
    assert {c.method for c in cells} == {"surrogate", "es", "ala", "dab", "metricopt-adam"}
    comparison = load_suite("metricopt").cells()
    assert len(comparison) == 6 * 5 * 8 and {c.method for c in comparison} >= set(list_methods("metricopt-*"))
    assert {c.task for c in cells} == {"digits", "breast-cancer", "synthetic-binary", "glyphs-retrieval", "shapes-detection"}
    assert {c.target for c in cells if c.task == "digits"} == {"misclassification", "aucpr"}
    assert sorted({c.seed for c in cells}) == [0, 1, 2]


def test_overrides_narrow_the_grid_and_set_the_budget():
    cells = load_suite("quick").select(tasks=["breast-cancer"], methods=["surrogate"], seeds=2, steps=7).cells()
    assert [(c.task, c.method, c.seed, c.budget.steps) for c in cells] == [
        ("breast-cancer", "surrogate", 0, 7),
        ("breast-cancer", "surrogate", 1, 7),
    ]


def test_command_line_method_options_reach_the_cells_of_that_method_only():
    cells = load_suite("quick").select(tasks=["digits"], seeds=1, method_options=[("ala", "beta", 0.02)]).cells()
    assert {c.method_options["beta"] for c in cells if c.method == "ala"} == {0.02}
    assert all("beta" not in c.method_options for c in cells if c.method == "surrogate")
    with pytest.raises(UsageError, match="--method-option names method 'dab', which this run does not include"):
        load_suite("quick").select(methods=["ala"], method_options=[("dab", "weight", 2.0)])
    with pytest.raises(UsageError, match="bta"):
        load_suite("quick").select(methods=["ala"], method_options=[("ala", "bta", 0.1)]).cells()


def test_cells_are_picklable_and_their_id_follows_the_config():
    (a,) = load_suite("smoke").select(tasks=["digits"], methods=["surrogate"]).cells()
    assert pickle.loads(pickle.dumps(a)) == a
    (b,) = load_suite("smoke").select(tasks=["digits"], methods=["surrogate"], steps=9).cells()
    assert a.cell_id != b.cell_id and a.cell_id.startswith("digits--misclassification--surrogate--seed0--")


def test_options_from_the_suite_reach_the_cell(tmp_path):
    suite = _parse('tasks = ["digits"]\nmethods = ["surrogate"]\n[method_options.surrogate]\nlr = 0.5\n', tmp_path)
    (cell,) = suite.cells()
    assert cell.method_options["lr"] == 0.5 and cell.budget.steps == 100  # the task's default budget


def test_a_task_budget_overrides_the_suites_budget_for_that_task_only_and_the_command_line_steps_win(tmp_path):
    text = (
        'tasks = ["digits", "breast-cancer"]\nmethods = ["surrogate"]\n[budget]\nsteps = 30\nqueries = 4\neval_every = 10\n'
        "[task_budget.digits]\nsteps = 12\neval_every = 3\n"
    )
    suite = _parse(text, tmp_path)
    by_task = {c.task: c for c in suite.cells()}
    assert (by_task["digits"].budget.steps, by_task["digits"].budget.queries, by_task["digits"].eval_every) == (12, 4, 3)
    assert (by_task["breast-cancer"].budget.steps, by_task["breast-cancer"].eval_every) == (30, 10)
    assert by_task["digits"].cell_id != _parse(text.replace("steps = 12", "steps = 13"), tmp_path).cells()[0].cell_id
    assert {c.budget.steps for c in suite.select(steps=5).cells()} == {5}  # --steps: every cell, whatever its task's budget
    assert {c.eval_every for c in suite.select(steps=5).cells() if c.task == "digits"} == {3}
    quick = {c.task: c.budget.steps for c in load_suite("quick").cells()}
    assert quick["shapes-detection"] < 40 and quick["glyphs-retrieval"] < 100 and quick["breast-cancer"] == 60


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('tasks = ["digits"]\nmethods = "all"\ntask_budget = 3\n', "key 'task_budget' must hold one table per task"),
        ('tasks = ["digits"]\nmethods = "all"\n[task_budget.digits]\nstepz = 3\n', "unknown key 'task_budget.digits.stepz'"),
        (
            'tasks = ["digits"]\nmethods = "all"\n[task_budget.digits]\nsteps = 0\n',
            "'task_budget.digits.steps' must be a positive",
        ),
        (
            'tasks = ["digits"]\nmethods = "all"\n[task_budget.breast-cancer]\nsteps = 3\n',
            "names something the suite does not run",
        ),
    ],
)
def test_malformed_task_budgets_name_the_key(tmp_path, text, message):
    with pytest.raises(UsageError, match=message):
        _parse(text, tmp_path)


def test_a_task_budget_for_an_unknown_task_is_an_error():
    with pytest.raises(UsageError, match="unknown task 'digts'"):
        parse_suite({"tasks": "all", "methods": "all", "task_budget": {"digts": {"steps": 2}}}, "x.toml", "x").cells()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('tasks = ["digits"]\nmethods = "all"\nsedes = 3\n', "unknown key 'sedes'"),
        ('methods = "all"\n', "missing key 'tasks'"),
        ('tasks = ["digits"]\nmethods = "all"\nseeds = "three"\n', "key 'seeds' must be"),
        ('tasks = ["digits"]\nmethods = "all"\n[budget]\nsteps = "ten"\n', "key 'budget.steps' must be a positive integer"),
        ('tasks = ["digits"]\nmethods = "all"\n[budget]\nstep = 10\n', "unknown key 'budget.step'"),
        ('tasks = []\nmethods = "all"\n', "key 'tasks' must be"),
        ('tasks = ["digits"\nmethods = "all"\n', "invalid TOML"),
    ],
)
def test_malformed_suite_files_name_the_key(tmp_path, text, message):
    with pytest.raises(UsageError, match=message) as info:
        _parse(text, tmp_path)
    assert "suite.toml" in str(info.value)


def test_bad_names_and_options_inside_a_suite_are_caught_before_running():
    with pytest.raises(UsageError, match="unknown task 'digts'"):
        parse_suite({"tasks": ["digts"], "methods": "all"}, "x.toml", "x").cells()
    with pytest.raises(UsageError, match="option 'lr' of method 'surrogate' must be float"):
        parse_suite(
            {"tasks": ["digits"], "methods": "all", "method_options": {"surrogate": {"lr": "big"}}}, "x.toml", "x"
        ).cells()
    with pytest.raises(UsageError, match=r"\[method_options.ala\] names something the suite does not run"):
        parse_suite({"tasks": ["digits"], "methods": ["surrogate"], "method_options": {"ala": {}}}, "x.toml", "x")
    with pytest.raises(UsageError, match="unknown method 'alaa'"):
        parse_suite({"tasks": ["digits"], "methods": "all", "method_options": {"alaa": {}}}, "x.toml", "x").cells()


def test_unknown_suite_name_suggests_builtin_ones():
    with pytest.raises(UsageError, match="did you mean 'quick'"):
        load_suite("quik")


def test_the_suite_keeps_its_name():
    assert load_suite("smoke").name == "smoke" and load_suite("quick").select(tasks=["digits"]).name == "quick"
