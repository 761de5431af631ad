"""Task logs: pages of an execution's or a task's log records, and their streamed download."""
