"""Reading what a suite produced: records, tables and their renderers, costs, published rows,
statistics, paired differences, profiles, plots and the HTML report. Reads records, never MLflow."""
