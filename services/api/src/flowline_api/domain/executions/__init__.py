"""Executions: starting, reading and listing them, their history and relations, and promises."""
