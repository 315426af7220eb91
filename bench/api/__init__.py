"""What a method is handed: the task view and the oracle (`oracle`), the finetune context (`context`, with
the step meter as a Protocol in `meter`) and the stage types (`stages`). Imports only `bench.core` and
`tasks`."""
