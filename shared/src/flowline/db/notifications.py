"""The NOTIFY channels the scheduler's loops are woken by (``flowline.runtime.wakeups``).

Triggers send them (migration 0014), in the transaction that changes the rows, so every writer wakes the
scheduler, the api and an operator's SQL alike, and a notification is delivered only once that transaction
commits. They fire only for changes that add work or bring it sooner; the scheduler's own bookkeeping (a
schedule's next fire time moved on, a delivery claimed or retried later) sends nothing:

- ``SCHEDULES``: a schedule inserted or updated so that it is unpaused and due sooner than before (created,
  resumed, its timing changed);
- ``WEBHOOKS``: a webhook inserted or deleted, or enabled or disabled (what the scheduler caches of them);
- ``WEBHOOK_DELIVERIES``: deliveries inserted, or a pending delivery due sooner (a retry now, a webhook enabled);
- ``BULK_OPERATIONS``: a bulk operation (or backfill) created.
"""

from __future__ import annotations

SCHEDULES = "flowline_schedules"
WEBHOOKS = "flowline_webhooks"
WEBHOOK_DELIVERIES = "flowline_webhook_deliveries"
BULK_OPERATIONS = "flowline_bulk_operations"
