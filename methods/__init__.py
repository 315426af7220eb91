"""Method registry: `register_method`, `create_method(name, **options)`, `list_methods("pattern*")`.

Built-in methods live in the modules below; a package registers more through the entry-point
group `metricbench.methods`.
"""

from metricbench.bench.core.budget import Budget
from metricbench.bench.core.registry import Option, Registry, non_negative, positive

METHODS = Registry(
    "method",
    builtin_modules=(
        "metricbench.methods.surrogate",
        "metricbench.methods.es",
        "metricbench.methods.ala",
        "metricbench.methods.dab",
        "metricbench.methods.metricopt.method",
    ),
    entry_point_group="metricbench.methods",
)

register_method = METHODS.register
create_method = METHODS.create
list_methods = METHODS.names

__all__ = ["METHODS", "Budget", "Option", "create_method", "list_methods", "non_negative", "positive", "register_method"]
