"""Commands on executions: cancel, pause, resume, retry."""
