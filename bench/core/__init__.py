"""The kernel every task, method and harness module may import: registry, errors, budget, training recipes,
files and digests, seeding, the metric seal, fault points and stop requests. It imports nothing else
of the project."""
