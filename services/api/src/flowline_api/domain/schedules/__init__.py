"""Schedules: the routes and service of cron and interval runs of a workflow, fired by the scheduler."""
