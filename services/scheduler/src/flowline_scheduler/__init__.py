"""The scheduler service: timers, schedules, lease recovery, redrive, bulk operations and retention."""
