"""What every service runs on: its runtime and loops, health, metrics, ids, outages, outbound policy."""
