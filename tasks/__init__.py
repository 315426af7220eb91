"""Task registry: `register_task`, `create_task(name, **options)`, `list_tasks("pattern*")`.

Built-in tasks live in the modules below; a package registers more through the entry-point group
`metricbench.tasks` (each entry point names a module that calls `register_task` on import).
"""

from metricbench.bench.core.registry import Option, Registry

TASKS = Registry(
    "task",
    builtin_modules=(
        "metricbench.tasks.digits",
        "metricbench.tasks.breast_cancer",
        "metricbench.tasks.synthetic_binary",
        "metricbench.tasks.glyphs_retrieval",
        "metricbench.tasks.shapes_detection",
        "metricbench.tasks.cifar10",
        "metricbench.tasks.imagenet",
        "metricbench.tasks.sop",
        "metricbench.tasks.voc2007",
        "metricbench.tasks.libsvm_tasks",
    ),
    entry_point_group="metricbench.tasks",
)

register_task = TASKS.register
create_task = TASKS.create
list_tasks = TASKS.names

__all__ = ["TASKS", "Option", "create_task", "list_tasks", "register_task"]
