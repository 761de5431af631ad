"""Live streams (Server-Sent Events) of an execution's events, its whole tree's, and one task's logs."""
