"""Registries: create and list, typed options, close-match errors, plugins through entry points."""

from __future__ import annotations

import pytest
from helpers.plugin_package import write_plugin
from metricbench.bench.core.errors import UsageError
from metricbench.methods import METHODS, create_method, list_methods
from metricbench.tasks import TASKS, create_task, list_tasks


def test_builtin_tasks_and_methods_are_listed():
    assert {"digits", "breast-cancer", "synthetic-binary"} <= set(list_tasks())
    assert list_tasks("synthetic*") == ["synthetic-binary"]
    assert "surrogate" in list_methods()


def test_create_resolves_defaults_and_coerces_ints_to_floats():
    task = create_task("digits", width=8)
    assert task.options["width"] == 8 and task.options["split_seed"] == 0
    method = create_method("surrogate", lr=1)
    assert method.options["lr"] == 1.0 and isinstance(method.options["lr"], float)


def test_unknown_names_and_options_name_the_closest_match():
    with pytest.raises(UsageError, match=r"unknown task 'digit'.*did you mean 'digits'"):
        create_task("digit")
    with pytest.raises(UsageError, match=r"unknown method 'surogate'.*'surrogate'"):
        create_method("surogate")
    with pytest.raises(UsageError, match=r"unknown option 'widht'.*did you mean 'width'"):
        create_task("digits", widht=3)


def test_option_type_and_choices_are_checked():
    with pytest.raises(UsageError, match="option 'width' of task 'digits' must be int, got 'wide'"):
        create_task("digits", width="wide")
    with pytest.raises(UsageError, match="must be int, got True"):
        create_task("digits", width=True)
    with pytest.raises(UsageError, match="must be one of 'task', 'sgd', 'adam'"):
        create_method("surrogate", optimizer="lbfgs")


def test_a_plugin_package_registers_through_entry_points(tmp_path, monkeypatch):
    write_plugin(
        tmp_path,
        "mb_plugin_demo",
        """
        from metricbench.methods import register_method
        from metricbench.methods.base import Method
        from metricbench.tasks import register_task
        from metricbench.tasks.digits import DigitsTask

        @register_task("plugin-digits", "digits again, from a plugin package")
        class PluginDigits(DigitsTask):
            pass

        @register_method("plugin-noop", "does nothing, from a plugin package")
        class PluginNoop(Method):
            def finetune(self, model, task, oracle, ctx):
                return ctx.finish()
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        TASKS.reload_plugins()
        METHODS.reload_plugins()
        assert "plugin-digits" in list_tasks()
        assert "plugin-noop" in list_methods()
        assert create_task("plugin-digits").name == "plugin-digits"
    finally:
        TASKS.unregister("plugin-digits")
        METHODS.unregister("plugin-noop")


def test_a_class_registered_as_two_variants_keeps_each_name_and_its_defaults():
    from metricbench.methods import METHODS, Option, create_method
    from metricbench.methods.base import Method

    class Stepper(Method):
        def finetune(self, model, task, oracle, ctx):
            return ctx.finish()

    options = {"optimizer": Option(str, "sgd", "optimizer", ("sgd", "adam"))}
    METHODS.register("test-stepper-sgd", "test variant", options)(Stepper)
    METHODS.register("test-stepper-adam", "test variant", options, defaults={"optimizer": "adam"})(Stepper)
    try:
        sgd, adam = create_method("test-stepper-sgd"), create_method("test-stepper-adam")
        assert (sgd.name, sgd.options["optimizer"]) == ("test-stepper-sgd", "sgd")
        assert (adam.name, adam.options["optimizer"]) == ("test-stepper-adam", "adam")
        assert create_method("test-stepper-adam", optimizer="sgd").options["optimizer"] == "sgd"
        with pytest.raises(ValueError, match="default for unknown option 'lr'"):
            METHODS.register("test-stepper-bad", "test variant", options, defaults={"lr": 1.0})(Stepper)
    finally:
        METHODS.unregister("test-stepper-sgd")
        METHODS.unregister("test-stepper-adam")


def test_a_plugin_that_fails_to_import_is_one_warning_and_only_what_asks_for_it_fails(tmp_path, monkeypatch, capsys):
    write_plugin(tmp_path, "mb_broken_plugin", "import a_module_that_does_not_exist\n", ("methods",), "broken")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        METHODS.reload_plugins()
        warning = capsys.readouterr().err.strip().splitlines()
        assert len(warning) == 1 and "plugin 'broken' (mb_broken_plugin) failed to load" in warning[0]
        assert "ModuleNotFoundError" in warning[0]
        assert "surrogate" in list_methods()  # everything else still works
        with pytest.raises(UsageError, match="unknown method 'broken-method'.*plugin 'broken'"):
            create_method("broken-method")
    finally:
        monkeypatch.undo()
        METHODS.reload_plugins()
