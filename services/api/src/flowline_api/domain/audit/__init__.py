"""The audit log: its routes and the service that reads it."""
