"""Kafka plumbing: the producer, the outbox and inbox, consumers with dead letters, and the broker's differences."""
