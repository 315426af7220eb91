"""The task API (`base.Task`) and its four kinds: classification, tabular, retrieval, detection."""
