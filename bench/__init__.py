"""metricbench's harness, in layers that each import only those before them:

    core  <  (tasks)  <  api  <  (methods)  <  report  <  track  <  run  <  cli

`core` is the kernel tasks and methods import; `api` is what a method is handed; `run` runs suites;
`track` is the only code that talks to MLflow; `report` reads records into tables and figures. The
entry points stay at the top, beside the data they read: `cli` (the `metricbench` command), `listing`
(`metricbench list`, from `catalog.json` without importing torch), `dev` (the quick start's bootstrap,
standard library only) and `suites/` (the built-in suite files).

Kept free of heavy imports so that `metricbench --help` is instant.
"""

__version__ = "0.1.0"
