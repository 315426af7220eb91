"""The harness: suite files, the runner and its cells, pretraining, stages, the artifact store, step
metering, anytime curves and the `data` command. Reaches concrete tasks and methods only through
their registries."""
