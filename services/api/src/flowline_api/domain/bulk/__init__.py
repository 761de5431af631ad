"""Bulk operations: cancelling, retrying or deleting many executions, and following the operation's progress."""
