"""What every Flowline service shares: settings, messages, errors, definitions, starting executions and plumbing."""
