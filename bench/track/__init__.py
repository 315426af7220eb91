"""The only code that talks to MLflow, both ways: tracking URIs, environment tags, logging a suite's
cells, reading runs back, and the UI."""
