"""metricbench harness: suites, runner, sealed metric oracle, MLflow tracking, tables and the CLI.

Kept free of heavy imports so that `metricbench --help` is instant.
"""

__version__ = "0.1.0"
