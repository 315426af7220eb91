"""Suite files: parsing, errors that name the key, grid expansion and stable cell ids."""

from __future__ import annotations

import pickle

import pytest
from metricbench.bench.errors import UsageError
from metricbench.bench.suite import load_suite, parse_suite
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
