"""Tasks, the step executions of every execution: reading one."""
