"""Outbound webhooks: subscriptions to state events, their signed deliveries and the delivery log."""
